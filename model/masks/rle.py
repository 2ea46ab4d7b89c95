"""Model masks -> COCO compressed RLE, without a full-image canvas per detection.

The pixel convention is ``model.masks.paste``'s (``paste_masks``, the plain
full-canvas reference). ``encode_masks_rle`` produces the same bits without the
canvas (see ``model.masks.runs``): its cost grows with the box's width and with
the pixels where the mask crosses the threshold, not with the image.

COCO RLE runs go through the image column by column (Fortran order),
alternating 0s and 1s and starting with a run of 0s (possibly empty).
"""
import dataclasses
from typing import Any, Dict, List

import numpy as np
from pycocotools import mask as coco_mask

from model.masks.paste import check_inputs
from model.masks.runs import image_runs


@dataclasses.dataclass(frozen=True)
class EncodedMask:
    """One detection's mask: COCO RLE plus its scores.

    ``rle``: {"size": [H, W], "counts": str}. ``area``: pixels on.
    ``mean_score``: mean probability over those pixels (0 when none).
    ``area_fraction``: ``area`` / pixels of the box inside the image (0 when none).
    """
    rle: Dict[str, Any]
    area: int
    mean_score: float
    area_fraction: float


def _compress(run_lengths: np.ndarray, height: int, width: int) -> Dict[str, Any]:
    compressed = coco_mask.frPyObjects(
        {"size": [height, width], "counts": run_lengths.astype(np.uint64)}, height, width)
    return {"size": [height, width], "counts": compressed["counts"].decode("ascii")}


def encode_masks_with_scores(mask_probs: np.ndarray, boxes: np.ndarray, image_height: int,
                             image_width: int, threshold: float = 0.5) -> List[EncodedMask]:
    """EncodedMask per detection (empty masks included), same arguments as paste_masks."""
    mask_probs, boxes = check_inputs(mask_probs, boxes, threshold)
    found = image_runs(mask_probs, boxes, image_height, image_width, threshold)
    encoded = []
    for runs, area, probability_sum, box_pixels in zip(
            found.runs, found.area.tolist(), found.probability_sum.tolist(),
            found.box_pixels.tolist()):
        encoded.append(EncodedMask(_compress(runs, image_height, image_width), area,
                                   probability_sum / area if area else 0.0,
                                   area / box_pixels if box_pixels else 0.0))
    return encoded


def encode_masks_rle(mask_probs: np.ndarray, boxes: np.ndarray, image_height: int, image_width: int,
                     threshold: float = 0.5) -> List[Dict[str, Any]]:
    """The fast path: ``{"size": [H, W], "counts": str}`` per detection.

    Equal to ``pycocotools.mask.encode(np.asfortranarray(paste_masks(...)[i]))``
    with counts decoded to str, without building any H x W array.
    """
    return [encoded.rle for encoded in encode_masks_with_scores(
        mask_probs, boxes, image_height, image_width, threshold)]
