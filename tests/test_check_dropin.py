"""beam_pipelines.check on the older scripts' INDEX_CATEGORYNAME.npy masks, against the
committed fixture: the demo pipeline's own trained ``tiny`` model (tests/make_check_fixture.py)."""
import json
import os
import shutil
import sys

import numpy as np
import pytest

from beam_pipelines import check
from model.label_map import LabelMap
from tests.conftest import FIXTURES

RESOURCES = os.path.join(os.path.dirname(__file__), "resources", "check")
MODEL = os.path.join(RESOURCES, "saved_model")
IMAGES = os.path.join(RESOURCES, "images")
MASKS = os.path.join(RESOURCES, "masks")

# The category names of the older scripts' check (their file names), in category id order.
OLDER_NAMES = [
    "shirt|blouse", "top|t-shirt|sweatshirt", "sweater", "cardigan", "jacket", "vest", "pants",
    "shorts", "skirt", "coat", "dress", "jumpsuit", "cape", "glasses", "hat",
    "headband|head_covering|hair_accessory", "tie", "glove", "watch", "belt", "leg_warmer",
    "tights|stockings", "sock", "shoe", "bag|wallet", "scarf", "umbrella"]


def _argv(masks, out):
    return ["--model", MODEL, "--images", IMAGES, "--expected_masks", str(masks),
            "--out_qual", str(out)]


def _masks_copy(tmp_path):
    copy = tmp_path / "masks"
    shutil.copytree(MASKS, copy)
    return copy


def _main(argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["check", *argv])
    with pytest.raises(SystemExit) as stopped:
        check.main()
    return stopped.value


def test_the_fixture_is_the_trained_model_and_its_masks():
    (image,) = os.listdir(IMAGES)
    masks = sorted(os.listdir(MASKS))
    assert len(masks) >= 2 and all(name.endswith(".npy") for name in masks)
    with open(os.path.join(MODEL, "assets", "labels.json")) as stream:
        names = [c["name"] for c in json.load(stream)["categories"]]
    assert names == ["disc", "square", "triangle", "ring", "cross", "pair"]
    for name in masks:
        mask = np.load(os.path.join(MASKS, name))
        assert mask.shape == (128, 128) and 0 < mask.sum() < mask.size


def test_drop_in_masks_pass_with_the_same_lines_and_pictures(tmp_path, capsys):
    out = tmp_path / "qual"
    assert check.run(_argv(MASKS, out)) == []
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{os.path.join(MASKS, name)}: OK" for name in sorted(os.listdir(MASKS))]

    detections = check.Predictor(MODEL, 0.05).detections(
        open(os.path.join(IMAGES, os.listdir(IMAGES)[0]), "rb").read())
    names = check.category_names(check.read_label_map(MODEL))
    every = [f"{i}_{names[d['category_id']]}" for i, d in enumerate(detections)]
    expected = [os.path.splitext(name)[0] for name in os.listdir(MASKS)]
    pictures = {name for name in os.listdir(out) if name.endswith(".png")}
    assert pictures == {f"actual_{s}.png" for s in every} | {f"expected_{s}.png" for s in expected}
    # The masks were taken from detections in this order: their names are among the drawn ones.
    assert set(expected) <= set(every)
    assert sorted(os.listdir(out / check.ACTUAL_MASKS_DIR)) == sorted(f"{s}.npy" for s in every)
    for stem in expected:
        np.testing.assert_array_equal(np.load(out / check.ACTUAL_MASKS_DIR / f"{stem}.npy") != 0,
                                      np.load(os.path.join(MASKS, f"{stem}.npy")) != 0)


def test_a_moved_mask_fails_with_the_older_message(tmp_path, capsys, monkeypatch):
    masks = _masks_copy(tmp_path)
    moved = sorted(os.listdir(masks))[0]
    mask = np.load(masks / moved)
    np.save(masks / moved, np.roll(mask, (64, 64), axis=(0, 1)))
    stopped = _main(_argv(masks, tmp_path / "qual"), monkeypatch)
    printed = capsys.readouterr().out.splitlines()
    assert f"{moved} mask doesn't exist in the prediction." in printed
    assert sum(line.endswith(": OK") for line in printed) == len(os.listdir(masks)) - 1
    assert str(stopped) == f"missing 1 expected mask(s): {os.path.splitext(moved)[0]}"


def test_the_same_masks_under_the_own_names(tmp_path, capsys):
    """IMAGE_CATEGORYID[_N].npy: the model's category ids instead of names."""
    (image,) = os.listdir(IMAGES)
    ids = {name: c.id for c in check.read_label_map(MODEL).categories
           for name in [check.file_name_of_category(c.name)]}
    own = tmp_path / "own"
    own.mkdir()
    for n, name in enumerate(sorted(os.listdir(MASKS))):
        category = ids[os.path.splitext(name)[0].split("_", 1)[1]]
        shutil.copyfile(os.path.join(MASKS, name),
                        own / f"{os.path.splitext(image)[0]}_{category}_{n}.npy")
    assert check.run(_argv(own, tmp_path / "qual")) == []
    assert capsys.readouterr().out.count(": OK (IoU ") == len(os.listdir(MASKS))


def test_a_category_name_the_model_lacks_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    masks = _masks_copy(tmp_path)
    shutil.copyfile(masks / sorted(os.listdir(masks))[0], masks / "15_coat.npy")
    stopped = _main(_argv(masks, tmp_path / "qual"), monkeypatch)
    assert stopped.code == 2
    error = capsys.readouterr().err.strip()
    assert error == ("error: 15_coat.npy: category 'coat' is not in the model's label map "
                     "(its names: disc, square, triangle, ring, cross, pair)")


def test_drop_in_names_need_one_image_and_a_label_map(tmp_path):
    (tmp_path / "15_coat.npy").write_bytes(b"")
    label_map = LabelMap.from_coco([{"id": 9, "name": "coat"}])
    with pytest.raises(ValueError, match=r"^15_coat.npy: an INDEX_CATEGORYNAME mask is of the only "
                                         r"image of --images, and --images holds 2 files$"):
        check.find_expected(str(tmp_path), ["a.jpg", "b.jpg"], label_map)
    with pytest.raises(ValueError, match="needs the model's label map"):
        check.find_expected(str(tmp_path), ["a.jpg"], None)
    (found,) = check.find_expected(str(tmp_path), ["a.jpg"], label_map)
    assert (found.image, found.category_id, found.drop_in) == ("a.jpg", 9, True)
    # A stem ending in digits is an own name: an image that does not exist, not a category "4".
    (tmp_path / "15_4.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="15_4.npy names no image"):
        check.find_expected(str(tmp_path), ["a.jpg"], label_map)


def test_older_names_with_separators_map_to_label_map_names(tmp_path):
    label_map = LabelMap.from_coco([
        {"id": 1, "name": "top, t-shirt, sweatshirt"}, {"id": 20, "name": "leg warmer"},
        {"id": 15, "name": "headband, head covering, hair accessory"}, {"id": 21, "name": "tights, stockings"}])
    for name in ["45_top|t-shirt|sweatshirt.npy", "0_tights|stockings.npy", "1_tights|stockings.npy",
                 "3_leg_warmer.npy", "7_headband|head_covering|hair_accessory.npy"]:
        (tmp_path / name).write_bytes(b"")
    found = {e.name: e.category_id for e in check.find_expected(str(tmp_path), ["photo.jpg"], label_map)}
    assert found == {"45_top|t-shirt|sweatshirt": 1, "0_tights|stockings": 21, "1_tights|stockings": 21,
                     "3_leg_warmer": 20, "7_headband|head_covering|hair_accessory": 15}


def test_the_older_names_are_the_fashionpedia_2020_names():
    path = os.path.join(FIXTURES, "fashionpedia-sample", "category_attributes_descriptions.json")
    if not os.path.exists(path):
        pytest.skip(f"Fashionpedia 2020 taxonomy not found at {path} (it ships beside the repo)")
    with open(path) as stream:
        categories = json.load(stream)["categories"]
    names = check.category_names(LabelMap.from_coco(categories))
    assert [names[i] for i in range(len(OLDER_NAMES))] == OLDER_NAMES
