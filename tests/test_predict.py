"""beam_pipelines.predict end to end on DirectRunner: images, the fixture photo, TFRecords."""
import copy
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from pycocotools import mask as coco_mask

from model.dataset.image_ids import image_id_from_path
from model.masks.paste import paste_masks
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.conftest import FIXTURES
from tests.prediction_helpers import (check_detections, coco_ground_truth, image_sizes,
                                      read_detections, read_errors, run_predict, tiny_model)
from tests.record_reading import run_make_records

_ = tiny_model  # a fixture used by name below
SUMMARY = ("images_read", "images_predicted", "images_failed", "detections_written")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Synthetic JPEG/PNG images plus two of other sizes in a sub-directory; returns
    (root, json path, {relative name: (height, width)})."""
    root = tmp_path_factory.mktemp("predict_photos")
    json_path = generate_split(str(root), "val", 5, SyntheticConfig(
        image_size=96, image_format="mixed", seed=4))
    image_dir = root / "val"
    (image_dir / "more").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 200, 3), np.uint8)).save(image_dir / "more" / "wide.png")
    Image.fromarray(rng.integers(0, 255, (300, 50, 3), np.uint8)).save(image_dir / "more" / "tall.jpg")
    sizes = image_sizes(str(image_dir))
    sizes.update({f"more/{name}": size for name, size in image_sizes(str(image_dir / "more")).items()})
    return str(image_dir), json_path, sizes


@pytest.fixture(scope="module")
def predicted(photos, tiny_model, tmp_path_factory):
    image_dir, _, sizes = photos
    prefix = str(tmp_path_factory.mktemp("predict_out") / "photos")
    counters = run_predict("--model", tiny_model, "--images", image_dir + "/**", "--output", prefix,
                           "--min_score_threshold", "0", "--batch_size", "3", "--num_shards", "2")
    return prefix, counters, read_detections(prefix)


def test_images_end_to_end(predicted, photos, capsys):
    prefix, counters, rows = predicted
    _, _, sizes = photos
    assert counters["images_read"] == counters["images_predicted"] == len(sizes) == 7
    assert counters["images_failed"] == 0 and read_errors(prefix) == []
    assert counters["detections_written"] == len(rows) > 0
    assert sorted(os.path.basename(p) for p in os.listdir(os.path.dirname(prefix))) == [
        "photos-00000-of-00002.jsonl", "photos-00001-of-00002.jsonl",
        "photos-errors.jsonl"]
    check_detections(rows, sizes)
    assert {row["filename"] for row in rows} <= set(sizes)
    for row in rows:
        assert row["image_id"] == image_id_from_path(row["filename"])

    image_ids = {name: image_id_from_path(name) for name in sizes}
    ground_truth = coco_ground_truth(sizes, image_ids, range(6))
    results = ground_truth.loadRes(copy.deepcopy(rows))  # loadRes rewrites ids in place
    assert len(results.getAnnIds()) == len(rows)
    # loadRes checks every image_id against the ground truth; the masks survive as written.
    loaded = results.loadAnns(results.getAnnIds())
    assert sorted(a["segmentation"]["counts"] for a in loaded) == sorted(
        r["segmentation"]["counts"] for r in rows)


def test_detections_are_the_models_own(predicted, photos, tiny_model):
    """Each line matches the SavedModel run directly on its image: category, score, and a
    mask that holds every pixel with probability > 0.55 and none <= 0.45 (a batch of 3 and
    a batch of 1 may differ in the last float bits, and untrained masks sit near 0.5)."""
    _, _, rows = predicted
    image_dir, _, sizes = photos
    signature = tf.saved_model.load(tiny_model).signatures["serving_default"]
    compared = 0
    for name in ("00000001.jpg", "more/wide.png", "more/tall.jpg"):
        with open(os.path.join(image_dir, name), "rb") as stream:
            outputs = {k: v.numpy()[0] for k, v in signature(
                image_bytes=tf.constant([stream.read()])).items()}
        height, width = sizes[name]
        boxes = outputs["detection_boxes"][:, [1, 0, 3, 2]]
        surely_on = paste_masks(outputs["detection_masks"], boxes, height, width, 0.55)
        maybe_on = paste_masks(outputs["detection_masks"], boxes, height, width, 0.45)
        mine = {row["id"] % 1024: row for row in rows if row["filename"] == name}
        compared += len(mine)
        for slot in range(int(outputs["num_detections"])):
            if surely_on[slot].any():
                assert slot in mine
        for slot, row in mine.items():
            assert row["category_id"] == outputs["detection_classes"][slot]
            assert row["score"] == pytest.approx(outputs["detection_scores"][slot], abs=1e-4)
            mask = coco_mask.decode(dict(row["segmentation"],
                                         counts=row["segmentation"]["counts"].encode()))
            assert (mask >= surely_on[slot]).all() and (mask <= maybe_on[slot]).all()
    assert compared > 0


def test_fixture_photo(tiny_model, tmp_path, capsys):
    photo_dir = os.path.abspath(os.path.join(FIXTURES, "imat2020-photo"))
    if not os.path.isdir(photo_dir):
        pytest.skip(f"iMaterialist photo fixture not found at {photo_dir} (it ships beside the "
                    "repo, not in it)")
    prefix = str(tmp_path / "photo")
    counters = run_predict("--model", tiny_model, "--images", photo_dir + "/*.jpg",
                           "--output", prefix, "--min_score_threshold", "0")
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_line == " ".join(f"{name}={counters[name]}" for name in SUMMARY)
    sizes = image_sizes(photo_dir)
    assert counters["images_read"] == counters["images_predicted"] == len(sizes)
    rows = read_detections(prefix)
    assert counters["detections_written"] == len(rows) > 0
    check_detections(rows, sizes)
    ground_truth = coco_ground_truth(sizes, {n: image_id_from_path(n) for n in sizes}, range(6))
    assert len(ground_truth.loadRes(rows).getAnnIds()) == len(rows)


def test_image_only_records_give_the_same_detections(predicted, photos, tiny_model, tmp_path):
    """make_records image-only output through tfx-bsl's handler: same ids and detections."""
    _, _, rows = predicted
    image_dir, _, sizes = photos
    records = str(tmp_path / "records" / "photos")
    run_make_records("--image_dir", image_dir + "/**", "--output_file_prefix", records,
                     "--num_shards", "2")
    prefix = str(tmp_path / "from_records")
    counters = run_predict("--model", tiny_model, "--tfrecords", records + "-*.tfrecord",
                           "--output", prefix, "--min_score_threshold", "0", "--batch_size", "4")
    assert counters["images_read"] == counters["images_predicted"] == len(sizes)
    from_records = {row["id"]: row for row in read_detections(prefix)}
    from_images = {row["id"]: row for row in rows}
    assert len(from_records.keys() ^ from_images.keys()) <= 2
    for key in from_records.keys() & from_images.keys():
        assert from_records[key]["filename"] == from_images[key]["filename"]
        assert from_records[key]["category_id"] == from_images[key]["category_id"]
        assert from_records[key]["score"] == pytest.approx(from_images[key]["score"], abs=1e-4)


def test_annotated_records_keep_coco_image_ids(photos, tiny_model, tmp_path, capsys):
    image_dir, json_path, _ = photos
    flat = tmp_path / "flat"
    shutil.copytree(image_dir, flat, ignore=shutil.ignore_patterns("more"))
    records = str(tmp_path / "records" / "val")
    run_make_records("--image_dir", str(flat), "--object_annotations_file", json_path,
                     "--output_file_prefix", records, "--num_shards", "1")
    prefix = str(tmp_path / "annotated")
    counters = run_predict("--model", tiny_model, "--tfrecords", records + "-*.tfrecord",
                           "--output", prefix, "--min_score_threshold", "0.0",
                           "--notfx_bsl_handler")
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_line == " ".join(f"{name}={counters[name]}" for name in SUMMARY)
    assert counters["images_read"] == counters["images_predicted"] == 5
    rows = read_detections(prefix)
    check_detections(rows, image_sizes(str(flat)))
    names_to_ids = {f"{i:08d}": i for i in range(1, 6)}
    for row in rows:
        assert row["image_id"] == names_to_ids[row["filename"].split(".")[0]]
        assert row["id"] == row["image_id"] * 1024 + row["id"] % 1024
