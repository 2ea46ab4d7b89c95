"""Entries that would make make_records allocate without bound are refused before the allocation.

The end-to-end test runs the real CLI in a child process under a memory
watchdog (tests/memory_watchdog.py) and asserts its peak, not only the outcome:
first on a normal dataset to measure the baseline, then on the same dataset
with every probe added.
"""
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from beam_pipelines.file_reads import read_file
from model.dataset.coco_annotations import (
    MAX_BOUNDARY_FACTOR, MAX_POLYGON_PARTS, InvalidAnnotation, outside_margin, parse_annotation,
    segmentation_to_rle)
from model.dataset.image_files import (
    DEFAULT_MAX_PIXELS, MAX_RESIZE_FACTOR, InvalidImage, check_pixels, prepare_image)
from model.dataset.record_builder import build_image_only_record, parse_image_entry
from model.label_map import LabelMap
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.memory_watchdog import run_watched
from tests.record_reading import read_errors, read_label_map, read_records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABELS = LabelMap.from_coco([{"id": 3, "name": "shirt"}], [])
MiB = 1 << 20


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height`` (valid chunk CRC)."""
    data = bytearray(_encode(Image.new("RGB", (1, 1)), "PNG"))
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def _code(annotation, height=20, width=30):
    with pytest.raises(InvalidAnnotation) as error:
        parse_annotation(annotation, height, width, LABELS, include_masks=False)
    assert str(error.value)
    return error.value.code


# --- annotations ---------------------------------------------------------------------------

def test_polygon_slightly_outside_the_image_is_clipped_like_pycocotools():
    polygon = [[-6.5, -3, 33, -2, 34, 25, -4, 22]]  # every vertex a few pixels outside 30x20
    instance = parse_annotation({"category_id": 3, "segmentation": polygon}, 20, 30, LABELS,
                                include_masks=True)
    expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon, 20, 30)))
    np.testing.assert_array_equal(instance.mask, expected)
    assert instance.mask.all() and instance.box == (0.0, 0.0, 30.0, 20.0)


@pytest.mark.parametrize("polygon", [
    [[1, 1, 1e7, 1, 1e7, 1e7]],
    [[1, 1, 1e300, 1, 1e300, 1e300]],
    [[1, 1, 9, 1, 9, 9], [-1e9, 0, 5, 5, 0, 5]],  # the far vertex in a later part
    [[1, 1, 9, 1, 9, 20 + 129]],
])
def test_polygon_far_outside_the_image_is_refused(polygon):
    assert _code({"category_id": 3, "segmentation": polygon}) == "polygon_outside_image"


def test_the_margin_is_the_larger_of_a_fixed_band_and_half_the_side():
    assert outside_margin(20) == 128 and outside_margin(1000) == 500
    inside = [[1, 1, 1500 - 1, 1, 1500 - 1, 1000 + 499]]  # 1000 high, 1000 wide: 500 margin
    parse_annotation({"category_id": 3, "segmentation": inside}, 1000, 1000, LABELS, False)
    outside = [[1, 1, 1500 + 1, 1, 9, 9]]
    assert _code({"category_id": 3, "segmentation": outside}, 1000, 1000) == "polygon_outside_image"


def test_polygon_boundary_and_parts_are_bounded():
    height, width = 20, 30
    # A zigzag across the image whose boundary is just over the limit.
    crossings = MAX_BOUNDARY_FACTOR * (height + width) // width + 2
    zigzag = [v for k in range(crossings) for v in ((0, k % height) if k % 2 else (width, k % height))]
    assert _code({"category_id": 3, "segmentation": [zigzag]}) == "polygon_too_complex"
    parts = [[1, 1, 1.5, 1, 1, 1.5]] * (MAX_POLYGON_PARTS + 1)  # boundary 1.5 each
    assert _code({"category_id": 3, "segmentation": parts}) == "polygon_too_complex"
    assert segmentation_to_rle(parts[:MAX_POLYGON_PARTS], height, width)["size"] == [20, 30]


@pytest.mark.parametrize("bbox", [[0, 0, 1e300, 5], [-1e7, 0, 1e7 + 5, 5], [1, 1, 5, 20 + 129]])
def test_bbox_far_outside_the_image_is_refused(bbox):
    assert _code({"category_id": 3, "bbox": bbox}) == "bbox_outside_image"


# --- images --------------------------------------------------------------------------------

def test_annotated_size_over_the_pixel_limit_fails_before_the_file_is_read():
    entry = {"id": 1, "file_name": "a.jpg", "height": 60000, "width": 60000}
    with pytest.raises(InvalidImage, match="60000x60000 = 3600000000 pixels") as error:
        parse_image_entry(entry)
    assert error.value.code == "image_too_large"
    assert parse_image_entry(entry, max_pixels=60000 * 60000).height == 60000


def test_file_over_the_pixel_limit_fails_on_its_header():
    huge = _png_declaring(12000, 12000)  # 144 MP, 70 bytes
    for call in (lambda: prepare_image(huge, (12000, 12000), DEFAULT_MAX_PIXELS),
                 lambda: build_image_only_record("h.png", "1", huge),
                 lambda: check_pixels(huge, DEFAULT_MAX_PIXELS)):
        with pytest.raises(InvalidImage, match="12000x12000 = 144000000 pixels") as error:
            call()
        assert error.value.code == "image_too_large"


@pytest.mark.parametrize("target", [(129, 100), (30, 100), (64, 201), (64, 49)])
def test_resampling_is_limited_to_a_factor_per_side(target):
    assert MAX_RESIZE_FACTOR == 2
    data = _encode(Image.new("RGB", (100, 64), (9, 9, 9)), "PNG")
    with pytest.raises(InvalidImage, match="factor of 2") as error:
        prepare_image(data, target)
    assert error.value.code == "image_size_mismatch"


@pytest.mark.parametrize("target", [(128, 100), (32, 50), (64, 200)])
def test_resampling_within_the_factor_still_happens(target):
    data = _encode(Image.new("RGB", (100, 64), (9, 9, 9)), "PNG")
    prepared = prepare_image(data, target)
    assert prepared.resized_from == (64, 100) and (prepared.height, prepared.width) == target


def test_a_file_larger_than_any_image_within_the_limit_is_not_read_whole(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff" * 5000)
    assert read_file(str(path), max_bytes=5000) == b"\xff" * 5000
    with pytest.raises(InvalidImage, match="over 4999 bytes") as error:
        read_file(str(path), max_bytes=4999)
    assert error.value.code == "image_too_large"


# --- end to end, under the watchdog ----------------------------------------------------------

def _full_image_rle(height: int, width: int) -> dict:
    rle = mask_utils.encode(np.asfortranarray(np.ones((height, width), np.uint8)))
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _dataset(root: str, with_probes: bool):
    """A few normal images; with probes, one more entry per way of asking for unbounded memory.

    Returns (json_path, image_dir, expected failed codes by file_name, expected skip codes).
    """
    config = SyntheticConfig(image_size=64, min_objects=2, max_objects=3, seed=11)
    json_path = generate_split(root, "probe", 7, config)
    image_dir = os.path.join(root, "probe")
    with open(json_path) as stream:
        document = json.load(stream)
    images, annotations = document["images"], document["annotations"]
    if not with_probes:
        return json_path, image_dir, {}, {}

    # One big, legitimate image with many annotations: each one's mask is a full
    # 2500 x 2500 array, so holding them all would take 60 x 6 MB.
    Image.new("RGB", (2500, 2500), (30, 60, 90)).save(os.path.join(image_dir, "big.jpg"))
    images.append({"id": 900, "file_name": "big.jpg", "height": 2500, "width": 2500})
    rle = _full_image_rle(2500, 2500)
    annotations += [{"id": 90000 + k, "image_id": 900, "category_id": document["categories"][0]["id"],
                     "iscrowd": 1, "segmentation": rle} for k in range(60)]
    first = [a for a in annotations if a["image_id"] == images[0]["id"]]
    first[0]["segmentation"] = [[1, 1, 1e7, 1, 1e7, 1e7]]
    first[1]["segmentation"] = [[1, 1, 1e300, 1, 1e300, 1e300]]
    second = [a for a in annotations if a["image_id"] == images[1]["id"]]
    second[0]["segmentation"] = [[v for k in range(200) for v in ((0, k % 64) if k % 2 else (64, k % 64))]]
    second[1]["bbox"] = [0, 0, 1e300, 1e300]
    third = [a for a in annotations if a["image_id"] == images[2]["id"]]
    third[0]["segmentation"] = [[-3, -3, 70, -2, 66, 67, -1, 66]]  # slightly outside: kept
    images[3]["height"] = images[3]["width"] = 60000        # claims 3.6 GP for a 64x64 file
    images[4]["height"] = images[4]["width"] = 1000         # claims 1000x1000 for a 64x64 file
    with open(os.path.join(image_dir, images[5]["file_name"]), "wb") as stream:
        stream.write(_png_declaring(12000, 12000))          # header says 144 MP
    images[5]["height"] = images[5]["width"] = 7000         # entry within the limit
    with open(json_path, "w") as stream:
        json.dump(document, stream)
    failed = {images[3]["file_name"]: "image_too_large", images[4]["file_name"]: "image_size_mismatch",
              images[5]["file_name"]: "image_too_large"}
    skipped = {"polygon_outside_image": 2, "polygon_too_complex": 1, "bbox_outside_image": 1}
    return json_path, image_dir, failed, skipped


def _counters(stdout: str):
    counters = {}
    for line in stdout.splitlines():
        for token in line.split():
            name, _, value = token.partition("=")
            if value.isdigit():
                counters[name] = int(value)
    return counters


def _run(tmp_path, name, with_probes, cap_bytes):
    json_path, image_dir, failed, skipped = _dataset(str(tmp_path / name), with_probes)
    prefix = str(tmp_path / name / "out" / "records")
    result = run_watched([sys.executable, "-m", "beam_pipelines.make_records",
                          "--image_dir", image_dir, "--object_annotations_file", json_path,
                          "--output_file_prefix", prefix, "--num_shards", "1"],
                         cap_bytes, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))
    assert not result.killed_over_cap, (
        f"{name}: killed above {cap_bytes // MiB} MiB resident")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(json_path) as stream:
        document = json.load(stream)
    return result, _counters(result.stdout), prefix, document, failed, skipped


def test_probes_stay_within_the_memory_of_a_normal_run(tmp_path):
    baseline, counters, _, _, _, _ = _run(tmp_path, "normal", False, cap_bytes=3 << 30)
    assert counters["images_failed"] == 0 and counters["annotations_skipped"] == 0
    bound = baseline.peak_rss_bytes + 200 * MiB
    probed, counters, prefix, document, failed, skipped = _run(
        tmp_path, "probes", True, cap_bytes=baseline.peak_rss_bytes + 1024 * MiB)
    assert probed.peak_rss_bytes < bound, (
        f"peak {probed.peak_rss_bytes // MiB} MiB, a normal run {baseline.peak_rss_bytes // MiB} MiB")

    num_images, num_annotations = len(document["images"]), len(document["annotations"])
    assert counters["images_read"] == num_images
    assert counters["images_read"] == counters["images_written"] + counters["images_failed"]
    assert counters["images_failed"] == len(failed)
    assert counters["annotations_read"] == num_annotations
    assert counters["annotations_written"] + counters["annotations_skipped"] == num_annotations
    for code, count in skipped.items():
        assert counters[f"annotations_skipped.{code}"] == count
    assert counters["images_failed.image_too_large"] == 2
    assert counters["images_failed.image_size_mismatch"] == 1

    errors = read_errors(prefix)
    assert {row["filename"]: row["code"] for row in errors if "annotation_id" not in row} == failed
    skip_codes = {}
    for row in errors:
        if "annotation_id" in row:
            skip_codes[row["code"]] = skip_codes.get(row["code"], 0) + 1
    assert skip_codes == skipped
    records = read_records(prefix, read_label_map(prefix).num_attributes)
    assert len(records) == counters["images_written"]
    by_size = {record["image"].shape[:2]: record for record in records}
    assert len(by_size[(2500, 2500)]["groundtruth_classes"]) == 60
