"""Turns one COCO/Fashionpedia annotation into a validated instance.

Every segmentation form of the COCO format is accepted: polygons (one or several
parts), uncompressed RLE (``counts`` a list, as crowd regions use) and compressed
RLE (``counts`` a string). Masks are rasterised by pycocotools exactly as
``COCO.annToMask`` does. Anything that cannot become a valid instance raises
``InvalidAnnotation`` with a short machine-readable ``code`` and a message.

The work one annotation may cause is bounded before pycocotools allocates
anything for it. Polygon vertices and box edges may lie a little outside the
image (``outside_margin``: annotation tools let points slip past the border, and
rasterising clips them) but no further; pycocotools traces a polygon's boundary
at 5x resolution, about 50 bytes per pixel of boundary, so a vertex at 1e7 would
cost gigabytes. The boundary's length and the number of parts are bounded too.
RLE runs must cover the image exactly, and the image's pixels are bounded by
the caller.
"""
import dataclasses
import math
from typing import Any, List, Mapping, Optional, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from model.dataset.rejections import Rejected
from model.label_map import LabelMap


# A vertex or box edge may lie up to max(MIN_OUTSIDE_MARGIN, OUTSIDE_MARGIN_FRACTION x side)
# pixels outside the image on each axis.
MIN_OUTSIDE_MARGIN = 128
OUTSIDE_MARGIN_FRACTION = 0.5
# A polygon's boundary (all parts, each edge counted as max(|dx|, |dy|), the steps
# pycocotools takes) may be up to this many times height + width long: an outline
# of the whole image is 2x; the longest in the Fashionpedia sample fixture is 1.1x.
MAX_BOUNDARY_FACTOR = 50
# Merging parts takes time quadratic in their number (30,000 tiny parts on a
# 4000 x 4000 image: 2.7 s); garments split by occlusion have a handful.
MAX_POLYGON_PARTS = 1000


class InvalidAnnotation(Rejected):
    """An annotation that cannot become an instance."""


@dataclasses.dataclass
class Instance:
    """One valid annotation of an image of ``height`` x ``width`` pixels.

    box: (xmin, ymin, xmax, ymax) in pixels, clipped to the image.
    mask: uint8 [height, width] of 0/1, or None when masks are not requested.
    """
    annotation_id: Any
    model_class: int
    category_name: str
    box: Tuple[float, float, float, float]
    area: float
    is_crowd: int
    attribute_ids: List[int]
    mask: Optional[np.ndarray]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def compressed_rle_total(counts: str) -> int:
    """Sum of the run lengths in a compressed COCO RLE string.

    The string holds one variable-length number per run: 5 data bits per
    character (offset by 48), bit 0x20 set on every character but a run's last,
    bit 0x10 of the last one the sign; from the fourth run on, each number is a
    difference to the run two places before. Raises InvalidAnnotation for
    characters outside the alphabet, a string ending inside a run or a negative
    run; the caller compares the total with height * width before handing the
    RLE to pycocotools, whose decoder trusts the runs.
    """
    codes = np.frombuffer(counts.encode("latin-1", "replace"), np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return 0
    if ((codes < 0) | (codes > 63)).any():
        raise InvalidAnnotation("invalid_rle", "compressed RLE has characters outside its alphabet")
    ends_run = (codes & 0x20) == 0
    if not ends_run[-1]:
        raise InvalidAnnotation("invalid_rle", "compressed RLE string ends inside a run")
    starts = np.flatnonzero(np.concatenate([[True], ends_run[:-1]]))
    run_of_char = np.cumsum(np.concatenate([[0], ends_run[:-1]]))
    digit = np.arange(codes.size) - starts[run_of_char]
    if digit.max() > 10:  # more than 50 bits: no image is that large
        raise InvalidAnnotation("invalid_rle", "compressed RLE has an oversized run")
    values = np.add.reduceat((codes & 0x1F) << (5 * digit), starts)
    last_chars = np.flatnonzero(ends_run)
    negative = (codes[last_chars] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * (digit[last_chars][negative] + 1))
    runs = values.copy()
    if runs.size > 3:
        runs[3::2] = np.cumsum(values[3::2]) + values[1]
    if runs.size > 4:
        runs[4::2] = np.cumsum(values[4::2]) + values[2]
    if (runs < 0).any():
        raise InvalidAnnotation("invalid_rle", "compressed RLE has a negative run")
    return int(runs.sum())


def outside_margin(side: int) -> float:
    """How far (pixels) outside an image side of ``side`` pixels a coordinate may lie."""
    return max(float(MIN_OUTSIDE_MARGIN), OUTSIDE_MARGIN_FRACTION * side)


def _check_polygon(parts: List[List[float]], height: int, width: int) -> None:
    """Raises polygon_outside_image / polygon_too_complex before pycocotools sees ``parts``."""
    if len(parts) > MAX_POLYGON_PARTS:
        raise InvalidAnnotation("polygon_too_complex", f"polygon has {len(parts)} parts, more "
                                                       f"than {MAX_POLYGON_PARTS}")
    x_margin, y_margin = outside_margin(width), outside_margin(height)
    boundary = 0.0
    for part_index, part in enumerate(parts):
        points = np.asarray(part, np.float64).reshape(-1, 2)
        outside = ((points[:, 0] < -x_margin) | (points[:, 0] > width + x_margin)
                   | (points[:, 1] < -y_margin) | (points[:, 1] > height + y_margin))
        if outside.any():
            x, y = points[np.argmax(outside)]
            raise InvalidAnnotation(
                "polygon_outside_image",
                f"polygon part {part_index} has a vertex at ({x:g}, {y:g}), more than "
                f"{x_margin:g} x / {y_margin:g} y pixels outside the {width}x{height} image")
        steps = np.abs(points - np.roll(points, 1, axis=0))
        boundary += float(steps.max(axis=1).sum())
    limit = MAX_BOUNDARY_FACTOR * (height + width)
    if boundary > limit:
        raise InvalidAnnotation(
            "polygon_too_complex",
            f"polygon boundary is {boundary:.0f} pixels long, more than {MAX_BOUNDARY_FACTOR} "
            f"x (height + width) = {limit}")


def segmentation_to_rle(segmentation: Any, height: int, width: int) -> dict:
    """Any COCO segmentation form -> one pycocotools RLE of an image height x width."""
    if isinstance(segmentation, list):
        if not segmentation:
            raise InvalidAnnotation("degenerate_polygon", "polygon list is empty")
        for part_index, part in enumerate(segmentation):
            if (not isinstance(part, list) or len(part) < 6 or len(part) % 2
                    or not all(_is_number(v) for v in part)):
                size = len(part) if isinstance(part, list) else type(part).__name__
                raise InvalidAnnotation(
                    "degenerate_polygon",
                    f"polygon part {part_index} needs an even number >= 6 of finite "
                    f"coordinates, got {size}")
        _check_polygon(segmentation, height, width)
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation, Mapping) and "counts" in segmentation:
        size = segmentation.get("size")
        if list(size or []) != [height, width]:
            raise InvalidAnnotation(
                "segmentation_size_mismatch",
                f"RLE size {size} differs from the image size [{height}, {width}]")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
                raise InvalidAnnotation("invalid_rle", "uncompressed RLE counts must be non-negative integers")
            total = sum(counts)
            rle = mask_utils.frPyObjects(dict(segmentation), height, width)
        elif isinstance(counts, (str, bytes)):
            text = counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts
            total = compressed_rle_total(text)
            rle = {"size": [height, width], "counts": text.encode("ascii")}
        else:
            raise InvalidAnnotation("invalid_rle", f"RLE counts of type {type(counts).__name__}")
        if total != height * width:
            raise InvalidAnnotation(
                "invalid_rle", f"RLE runs cover {total} pixels, the image has {height * width}")
        return rle
    raise InvalidAnnotation("invalid_segmentation", f"segmentation of type {type(segmentation).__name__}")


def _clip_box(bbox: Any, height: int, width: int) -> Tuple[float, float, float, float]:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        raise InvalidAnnotation("invalid_bbox", f"bbox must be 4 finite numbers, got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise InvalidAnnotation("zero_size_bbox", f"bbox {list(bbox)} has no area")
    x_margin, y_margin = outside_margin(width), outside_margin(height)
    if x < -x_margin or y < -y_margin or x + w > width + x_margin or y + h > height + y_margin:
        raise InvalidAnnotation(
            "bbox_outside_image", f"bbox {list(bbox)} reaches more than {x_margin:g} x / "
                                  f"{y_margin:g} y pixels outside the {width}x{height} image")
    xmin, ymin = max(0.0, x), max(0.0, y)
    xmax, ymax = min(float(width), x + w), min(float(height), y + h)
    if xmax <= xmin or ymax <= ymin:
        raise InvalidAnnotation(
            "bbox_outside_image", f"bbox {list(bbox)} lies outside the {width}x{height} image")
    return xmin, ymin, xmax, ymax


def _attribute_ids(annotation: Mapping, label_map: LabelMap) -> List[int]:
    ids = annotation.get("attribute_ids") or []
    if not isinstance(ids, list):
        raise InvalidAnnotation("unknown_attribute", f"attribute_ids must be a list, got {ids!r}")
    for attribute_id in ids:
        if not label_map.has_attribute(attribute_id):
            raise InvalidAnnotation(
                "unknown_attribute",
                f"attribute id {attribute_id!r} is not in 'attributes' "
                f"(num_attributes={label_map.num_attributes})")
    return sorted(set(ids))


def parse_annotation(annotation: Any, height: int, width: int, label_map: LabelMap,
                     include_masks: bool) -> Instance:
    """Validates one annotation of an image of ``height`` x ``width`` pixels."""
    if not isinstance(annotation, Mapping):
        raise InvalidAnnotation("malformed_annotation", "annotation is not a JSON object")
    category_id = annotation.get("category_id")
    if not label_map.has_category(category_id):
        raise InvalidAnnotation("unknown_category", f"category_id {category_id!r} is not in 'categories'")
    attribute_ids = _attribute_ids(annotation, label_map)
    is_crowd = annotation.get("iscrowd", 0)
    if is_crowd not in (0, 1):
        raise InvalidAnnotation("malformed_annotation", f"iscrowd must be 0 or 1, got {is_crowd!r}")

    segmentation = annotation.get("segmentation")
    rle = segmentation_to_rle(segmentation, height, width) if segmentation is not None else None
    if rle is not None and int(mask_utils.area(rle)) == 0:
        raise InvalidAnnotation("empty_mask", "segmentation covers no pixel inside the image")
    if include_masks and rle is None:
        raise InvalidAnnotation("missing_segmentation", "masks were requested but it has no segmentation")

    if annotation.get("bbox") is not None:
        box = _clip_box(annotation["bbox"], height, width)
    elif rle is not None:
        x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
        box = (x, y, x + w, y + h)
    else:
        raise InvalidAnnotation("missing_bbox", "annotation has neither bbox nor segmentation")

    area = annotation.get("area")
    if not _is_number(area) or area < 0:
        area = float(mask_utils.area(rle)) if rle is not None else (box[2] - box[0]) * (box[3] - box[1])

    category = label_map.category_for_class(label_map.class_for_category(category_id))
    return Instance(
        annotation_id=annotation.get("id"),
        model_class=label_map.class_for_category(category_id),
        category_name=category.name,
        box=box,
        area=float(area),
        is_crowd=int(is_crowd),
        attribute_ids=attribute_ids,
        mask=mask_utils.decode(rle) if include_masks else None,
    )
