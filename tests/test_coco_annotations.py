import numpy as np
import pytest
from pycocotools import mask as mask_utils

from model.dataset.coco_annotations import (InvalidAnnotation, compressed_rle_total,
                                             parse_annotation, segmentation_to_rle)
from model.label_map import LabelMap

LABELS = LabelMap.from_coco([{"id": 7, "name": "coat"}, {"id": 3, "name": "hat"}],
                            [{"id": 0, "name": "a"}, {"id": 12, "name": "b"}])


def _square_mask(height=20, width=30):
    mask = np.zeros((height, width), np.uint8)
    mask[4:12, 5:20] = 1
    return mask


def test_label_map_orders_classes_by_category_id():
    assert LABELS.class_for_category(3) == 1 and LABELS.class_for_category(7) == 2
    assert LABELS.num_attributes == 13 and LABELS.num_classes == 3


@pytest.mark.parametrize("rng_seed", range(5))
def test_compressed_rle_total_matches_pycocotools(rng_seed):
    mask = (np.random.default_rng(rng_seed).random((37, 23)) > 0.6).astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(mask))
    assert compressed_rle_total(rle["counts"].decode()) == 37 * 23


def test_every_form_gives_the_same_mask():
    mask = _square_mask()
    compressed = mask_utils.encode(np.asfortranarray(mask))
    flat = mask.flatten(order="F")
    runs, current, length = [], 0, 0
    for value in flat:
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    polygon = [[5, 4, 20, 4, 20, 12, 5, 12]]
    for segmentation in (polygon,
                         {"size": [20, 30], "counts": compressed["counts"].decode()},
                         {"size": [20, 30], "counts": runs}):
        decoded = mask_utils.decode(segmentation_to_rle(segmentation, 20, 30))
        np.testing.assert_array_equal(decoded, mask)


def test_parse_derives_bbox_and_area_when_absent():
    instance = parse_annotation({"id": 1, "category_id": 7, "attribute_ids": [12, 0],
                                 "segmentation": [[5, 4, 20, 4, 20, 12, 5, 12]]},
                                20, 30, LABELS, include_masks=True)
    assert instance.model_class == 2 and instance.category_name == "coat"
    assert instance.box == (5.0, 4.0, 20.0, 12.0)
    assert instance.area == 8 * 15 and instance.attribute_ids == [0, 12]
    assert instance.mask.shape == (20, 30) and instance.mask.sum() == 120


def test_bbox_partly_outside_is_clipped():
    instance = parse_annotation({"category_id": 3, "bbox": [-5, 10, 50, 40]}, 20, 30, LABELS,
                                include_masks=False)
    assert instance.box == (0.0, 10.0, 30.0, 20.0) and instance.mask is None


@pytest.mark.parametrize("annotation, code", [
    ({"category_id": 99, "bbox": [1, 1, 2, 2]}, "unknown_category"),
    ({"category_id": 3, "bbox": [1, 1, 2, 2], "attribute_ids": [5]}, "unknown_attribute"),
    ({"category_id": 3, "bbox": [1, 1, 2, 2], "attribute_ids": [400]}, "unknown_attribute"),
    ({"category_id": 3, "segmentation": [[1, 1, 5, 5]]}, "degenerate_polygon"),
    ({"category_id": 3, "segmentation": [[1, 1, 5, 5, 9, 9], [1, 2, 3]]}, "degenerate_polygon"),
    ({"category_id": 3, "segmentation": []}, "degenerate_polygon"),
    ({"category_id": 3, "segmentation": [[1, 1, 1, 1, 1, 1]]}, "empty_mask"),
    ({"category_id": 3, "segmentation": [[100, 100, 120, 100, 120, 120]]}, "empty_mask"),
    ({"category_id": 3, "bbox": [3, 3, 0, 4]}, "zero_size_bbox"),
    ({"category_id": 3, "bbox": [40, 3, 5, 4]}, "bbox_outside_image"),
    ({"category_id": 3, "bbox": [1, 2, 3]}, "invalid_bbox"),
    ({"category_id": 3, "bbox": [1, 2, 3, float("nan")]}, "invalid_bbox"),
    ({"category_id": 3}, "missing_bbox"),
    ({"category_id": 3, "segmentation": {"size": [2, 2], "counts": [4]}}, "segmentation_size_mismatch"),
    ({"category_id": 3, "segmentation": {"size": [20, 30], "counts": [10, 5]}}, "invalid_rle"),
    ({"category_id": 3, "segmentation": {"size": [20, 30], "counts": "!!"}}, "invalid_rle"),
    ({"category_id": 3, "segmentation": {"size": [20, 30], "counts": "PP"}}, "invalid_rle"),
    ({"category_id": 3, "segmentation": "nope"}, "invalid_segmentation"),
    ({"category_id": 3, "bbox": [1, 1, 2, 2], "iscrowd": 2}, "malformed_annotation"),
    ("not an object", "malformed_annotation"),
])
def test_invalid_annotations_have_a_code(annotation, code):
    with pytest.raises(InvalidAnnotation) as error:
        parse_annotation(annotation, 20, 30, LABELS, include_masks=False)
    assert error.value.code == code and str(error.value)


def test_masks_requested_without_segmentation():
    with pytest.raises(InvalidAnnotation, match="no segmentation"):
        parse_annotation({"category_id": 3, "bbox": [1, 1, 2, 2]}, 20, 30, LABELS, include_masks=True)


def _reference_runs(counts: str):
    """A straightforward reading of the compressed RLE string, one character at a time."""
    runs, position = [], 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            chunk = ord(counts[position]) - 48
            value |= (chunk & 0x1F) << shift
            more = bool(chunk & 0x20)
            position += 1
            shift += 5
            if not more and chunk & 0x10:
                value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


@pytest.mark.parametrize("seed", range(8))
def test_compressed_rle_total_matches_a_character_by_character_reading(seed):
    rng = np.random.default_rng(seed)
    height, width = rng.integers(1, 300, 2)
    mask = (rng.random((height, width)) < rng.uniform(0, 1)).astype(np.uint8)
    if seed % 2:  # long runs exercise multi-character numbers and differences
        mask[:] = 0
        mask[height // 3:, : width // 2] = 1
    text = mask_utils.encode(np.asfortranarray(mask))["counts"].decode()
    runs = _reference_runs(text)
    assert sum(runs) == height * width == compressed_rle_total(text)
