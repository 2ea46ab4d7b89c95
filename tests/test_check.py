"""beam_pipelines.check: passes when the model finds the expected masks, names them when not."""
import os
import sys

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from beam_pipelines import check
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.prediction_helpers import tiny_model

_ = tiny_model  # a fixture used by name below


def _decoded(detection):
    return coco_mask.decode(dict(detection["segmentation"],
                                 counts=detection["segmentation"]["counts"].encode()))


@pytest.fixture
def expected_from_the_model(tiny_model, tmp_path):
    """Images and expected masks taken from the model's own detections (one PNG, one .npy)."""
    generate_split(str(tmp_path), "check", 2, SyntheticConfig(image_size=96, seed=11))
    image_dir = tmp_path / "check"
    expected_dir = tmp_path / "expected"
    expected_dir.mkdir()
    predictor = check.Predictor(tiny_model, min_score=0.0)
    names = sorted(os.listdir(image_dir))
    written = []
    for name, suffix in zip(names, (".png", ".npy")):
        detections = predictor.detections((image_dir / name).read_bytes())
        assert detections, "the random-weight export keeps every detection"
        best = detections[0]
        stem = f"{os.path.splitext(name)[0]}_{best['category_id']}"
        if suffix == ".png":
            Image.fromarray(_decoded(best) * 255).save(expected_dir / (stem + suffix))
        else:
            np.save(expected_dir / (stem + suffix), _decoded(best))
        written.append(stem)
    return image_dir, expected_dir, written, names


def test_check_passes_and_fails_naming_the_missing_masks(expected_from_the_model, tiny_model,
                                                         tmp_path, capsys, monkeypatch):
    image_dir, expected_dir, written, names = expected_from_the_model
    out = tmp_path / "qual"
    argv = ["--model", tiny_model, "--images", str(image_dir), "--expected_masks", str(expected_dir),
            "--min_score_threshold", "0", "--out_qual", str(out)]
    assert check.run(argv) == []
    printed = capsys.readouterr().out
    for stem in written:
        assert f"{stem}: OK" in printed
        for prefix in ("expected_", "actual_"):
            with Image.open(out / f"{prefix}{stem}.png") as picture:
                assert picture.size == (96, 96)

    # A mask the model does not produce: a category it never predicts, and a box in a corner.
    absent = f"{os.path.splitext(names[0])[0]}_99_2"
    corner = np.zeros((96, 96), np.uint8)
    corner[:10, :10] = 1
    np.save(expected_dir / f"{absent}.npy", corner)
    monkeypatch.setattr(sys, "argv", ["check", *argv])
    with pytest.raises(SystemExit) as stopped:
        check.main()
    assert str(stopped.value) == f"missing 1 expected mask(s): {absent}"
    assert f"{absent}: MISSING" in capsys.readouterr().out


def test_expected_mask_names(tmp_path):
    images = ["a_1.jpg", "b.png"]
    for name in ["a_1_3.npy", "a_1_3_2.png", "b_0.png", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    found = {(e.name, e.image, e.category_id) for e in check.find_expected(str(tmp_path), images)}
    assert found == {("a_1_3", "a_1.jpg", 3), ("a_1_3_2", "a_1.jpg", 3), ("b_0", "b.png", 0)}
    (tmp_path / "c_4.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="c_4.npy names no image"):
        check.find_expected(str(tmp_path), images)
