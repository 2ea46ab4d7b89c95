"""Bad input: clear errors before the job starts, or dead letters with nothing lost."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from beam_pipelines import launcher
from beam_pipelines.coco_scan import AnnotationFileError
from model.dataset.image_ids import image_id_from_path
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.record_reading import (as_text, read_errors, read_label_map, read_records,
                                  run_make_records)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rewrite_image(path, mode=None, size=None, fmt=None):
    image = Image.open(path).convert("RGB")
    if size:
        image = image.resize(size)
    if mode:
        image = image.convert(mode)
    image.save(path, format=fmt or Image.open(path).format)


@pytest.fixture
def hostile_dataset(tmp_path):
    """A dataset with broken images and annotations; returns (json_path, image_dir, expectations)."""
    config = SyntheticConfig(image_size=64, min_objects=2, max_objects=3, seed=3)
    json_path = generate_split(str(tmp_path), "bad", 14, config)
    image_dir = str(tmp_path / "bad")
    with open(json_path) as stream:
        document = json.load(stream)
    images = document["images"]
    path = [os.path.join(image_dir, image["file_name"]) for image in images]

    with open(path[0], "rb") as stream:
        data = stream.read()
    with open(path[0], "wb") as stream:
        stream.write(data[: len(data) // 2])                      # truncated
    os.remove(path[1])                                             # missing
    open(path[2], "wb").close()                                    # zero bytes
    with open(path[3], "wb") as stream:
        stream.write(np.random.default_rng(0).bytes(3000))         # not an image
    _rewrite_image(path[4], mode="L")                              # grayscale
    _rewrite_image(path[5], mode="CMYK")                           # CMYK JPEG
    _rewrite_image(path[6], mode="RGBA", fmt="PNG")                # RGBA (PNG bytes, .jpg name)
    _rewrite_image(path[7], size=(48, 40))                         # size differs from JSON
    _rewrite_image(path[8], mode="P", fmt="PNG")                   # palette
    images[9].pop("width")                                         # malformed entry
    images.append({"id": "x", "file_name": "nope.jpg", "width": 5, "height": 5})  # non-int id

    by_image = {}
    for annotation in document["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    good = [by_image[images[k]["id"]] for k in (10, 11, 12, 13)]
    good[0][0]["segmentation"] = [[1, 1, 5, 5]]                     # degenerate polygon
    good[0][1]["bbox"] = [3, 3, 0, 7]                               # zero-size bbox
    good[1][0]["bbox"] = [500, 500, 10, 10]                         # outside the image
    good[1][1]["category_id"] = 999                                 # unknown category
    good[2][0]["attribute_ids"] = [1, 400]                          # attribute out of range
    good[2][1]["segmentation"] = {"size": [10, 10], "counts": "abc"}  # RLE of another size
    good[3][0]["segmentation"] = {"size": [64, 64], "counts": [5, 10]}  # runs do not cover
    document["annotations"].append({"id": 90001, "image_id": 424242, "category_id": 0,
                                    "segmentation": [[1, 1, 9, 1, 9, 9]]})  # unknown image
    document["annotations"].append({"id": 90002, "image_id": None, "category_id": 0})
    with open(json_path, "w") as stream:
        json.dump(document, stream)
    expected_failed = {
        images[0]["file_name"]: "undecodable_image",
        images[1]["file_name"]: "missing_file",
        images[2]["file_name"]: "empty_file",
        images[3]["file_name"]: "undecodable_image",
        images[9]["file_name"]: "malformed_image_entry",
        "nope.jpg": "malformed_image_entry",
    }
    expected_skips = {"degenerate_polygon": 1, "zero_size_bbox": 1, "bbox_outside_image": 1,
                      "unknown_category": 1, "unknown_attribute": 1,
                      "segmentation_size_mismatch": 1, "invalid_rle": 1, "unknown_image": 1,
                      "malformed_annotation": 1}
    return json_path, image_dir, document, expected_failed, expected_skips


def test_hostile_inputs_are_accounted_for(hostile_dataset, tmp_path):
    json_path, image_dir, document, expected_failed, expected_skips = hostile_dataset
    prefix = str(tmp_path / "out" / "bad")
    counters = run_make_records("--image_dir", image_dir, "--object_annotations_file", json_path,
                                "--output_file_prefix", prefix, "--num_shards", "2")
    num_images = len(document["images"])
    num_annotations = len(document["annotations"])
    assert counters["images_read"] == num_images
    assert counters["images_read"] == counters["images_written"] + counters["images_failed"]
    assert counters["images_failed"] == len(expected_failed)
    assert counters["annotations_read"] == num_annotations
    assert counters["annotations_written"] + counters["annotations_skipped"] == num_annotations
    assert counters["images_converted"] == 4 and counters["images_resized"] == 1

    errors = read_errors(prefix)
    assert all(row["reason"] and row["code"] for row in errors)
    failed = {row["filename"]: row["code"] for row in errors if "annotation_id" not in row}
    assert failed == expected_failed
    skip_rows = [row for row in errors if "annotation_id" in row]
    skipped_codes = {}
    for row in skip_rows:
        skipped_codes[row["code"]] = skipped_codes.get(row["code"], 0) + 1
    assert skipped_codes == expected_skips
    # Annotations of failed images are counted as skipped (covered by the image's row).
    lost_with_images = sum(row.get("num_annotations", 0) for row in errors if "annotation_id" not in row)
    assert counters["annotations_skipped"] == len(skip_rows) + lost_with_images

    label_map = read_label_map(prefix)
    records = read_records(prefix, label_map.num_attributes)
    assert len(records) == counters["images_written"]
    assert sum(len(r["groundtruth_classes"]) for r in records) == counters["annotations_written"]
    for record in records:  # converted and resized images decode to the annotated size
        assert record["image"].shape == (64, 64, 3)


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "beam_pipelines.make_records", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_malformed_json_fails_before_the_pipeline(tmp_path):
    bad = tmp_path / "bad.json"
    text = '{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2,, }], "categories": []}'
    bad.write_text(text)
    with pytest.raises(json.JSONDecodeError) as stdlib_error:
        json.loads(text)
    result = _run_cli("--image_dir", str(tmp_path), "--object_annotations_file", str(bad),
                      "--output_file_prefix", str(tmp_path / "out" / "x"))
    assert result.returncode != 0
    assert "not valid COCO JSON" in result.stderr
    assert f"at byte {stdlib_error.value.pos}" in result.stderr  # ASCII: bytes are characters
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, message", [
    ('{"images": [], "annotations": []}', "no top-level 'categories'"),
    ('{"images": [{"id": 3}, {"id": 3}], "categories": [{"id": 0}]}', "image id 3 appears twice"),
    ('{"images": [], "categories": [{"id": 0}, {"id": 0}]}', "categories id 0 appears more than once"),
    ('[1, 2]', "expected '{'"),
    ('{"images": [], "categories": [{"id": 0}]', "expected ','"),
])
def test_unusable_annotation_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(AnnotationFileError, match=message):
        run_make_records("--image_dir", str(tmp_path), "--object_annotations_file", str(path),
                         "--output_file_prefix", str(tmp_path / "x"))


def test_missing_annotation_file_is_a_clear_error(tmp_path):
    with pytest.raises(AnnotationFileError, match="cannot open annotation file"):
        run_make_records("--image_dir", str(tmp_path), "--object_annotations_file",
                         str(tmp_path / "absent.json"), "--output_file_prefix", str(tmp_path / "x"))


def test_image_only_records(tmp_path):
    image_dir = tmp_path / "photos"
    image_dir.mkdir()
    rng = np.random.default_rng(1)
    sizes = {"a.jpg": (30, 40), "b.png": (20, 10), "c.jpg": (16, 16)}
    for name, (height, width) in sizes.items():
        Image.fromarray(rng.integers(0, 255, (height, width, 3), np.uint8)).save(image_dir / name)
    (image_dir / "empty.jpg").write_bytes(b"")
    (image_dir / "notes.txt").write_text("not an image")
    prefix = str(tmp_path / "out" / "predict")
    counters = run_make_records("--image_dir", str(image_dir), "--output_file_prefix", prefix,
                                "--num_shards", "1")
    assert counters["images_read"] == 5
    assert counters["images_written"] == 3 and counters["images_failed"] == 2
    assert not os.path.exists(prefix + "-labels.json")
    failed = {row["filename"]: row["code"] for row in read_errors(prefix)}
    assert failed == {"empty.jpg": "empty_file", "notes.txt": "undecodable_image"}
    records = read_records(prefix, num_attributes=0)
    seen = {}
    for record in records:
        name = as_text(record["filename"])
        assert as_text(record["source_id"]) == str(image_id_from_path(name))
        assert record["image"].shape[:2] == sizes[name]
        assert len(record["groundtruth_classes"]) == 0
        assert record["groundtruth_instance_masks"].shape == (0,) + sizes[name]
        seen[name] = True
    assert set(seen) == set(sizes)


def test_image_only_glob_keeps_paths_relative_to_the_fixed_part(tmp_path):
    nested = tmp_path / "root" / "day1"
    nested.mkdir(parents=True)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="PNG")
    (nested / "x.png").write_bytes(buffer.getvalue())
    (nested / "y.jpg").write_bytes(b"junk")
    prefix = str(tmp_path / "out" / "g")
    counters = run_make_records("--image_dir", str(tmp_path / "root" / "day*" / "*.png"),
                                "--output_file_prefix", prefix, "--num_shards", "1")
    assert counters["images_read"] == counters["images_written"] == 1
    (record,) = read_records(prefix, num_attributes=0)
    assert as_text(record["filename"]) == "day1/x.png"


def test_no_matching_image_is_a_clear_error(tmp_path):
    with pytest.raises(launcher.InputError, match="no file matches"):
        run_make_records("--image_dir", str(tmp_path / "empty" / "*.jpg"),
                         "--output_file_prefix", str(tmp_path / "x"))


def test_scan_cuts_arrays_into_ranges_that_cover_every_element(all_forms_dataset):
    from beam_pipelines.coco_scan import scan_annotations
    from model.dataset.json_stream import read_elements
    json_path, _ = all_forms_dataset
    with open(json_path) as stream:
        document = json.load(stream)
    summary = scan_annotations(json_path, elements_per_range=7)
    for key in ("images", "annotations"):
        ranges = [r for r in summary.ranges if r.key == key]
        assert [r.count for r in ranges[:-1]] == [7] * (len(ranges) - 1)
        elements = []
        with open(json_path, "rb") as stream:
            for element_range in ranges:
                elements += read_elements(stream, element_range.start, element_range.end)
        assert elements == document[key]
