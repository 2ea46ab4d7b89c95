"""Model masks -> COCO compressed RLE, without a full-image canvas per detection.

The pixel convention is ``model.masks.paste``'s (``paste_masks``, the plain
full-canvas reference). ``encode_masks_rle`` produces the same bits without the
canvas (see ``model.masks.runs``): its cost grows with the box's width and with
the pixels where the mask crosses the threshold, not with the image.

COCO RLE runs go through the image column by column (Fortran order),
alternating 0s and 1s and starting with a run of 0s (possibly empty).
"""
import dataclasses
from typing import Any, Dict, List, Tuple

import numpy as np
from pycocotools import mask as coco_mask

from model.masks.paste import check_inputs
from model.masks.runs import image_runs


@dataclasses.dataclass(frozen=True)
class EncodedMask:
    """One detection's mask: COCO RLE plus its scores.

    At image resolution: ``rle`` {"size": [H, W], "counts": str}; ``area``, the pixels
    on; ``pixel_mean_score``, their mean probability (0 when none).
    On the model's M x M grid (the definitions of the system this package replaces):
    ``mean_score``, the mean probability of the cells > the threshold, and
    ``area_fraction``, their number / (M * M); both 0 when no cell is over.
    """
    rle: Dict[str, Any]
    area: int
    mean_score: float
    area_fraction: float
    pixel_mean_score: float


def _compress(run_lengths: np.ndarray, height: int, width: int) -> Dict[str, Any]:
    compressed = coco_mask.frPyObjects(
        {"size": [height, width], "counts": run_lengths.astype(np.uint64)}, height, width)
    return {"size": [height, width], "counts": compressed["counts"].decode("ascii")}


def grid_scores(mask_probs: np.ndarray, threshold: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
    """(mean probability of the cells > threshold, their number / (M * M)), float64[N] each,
    of mask grids float32[N, M, M]; both 0 for a grid without such a cell."""
    on = mask_probs > threshold
    count = on.sum(axis=(1, 2))
    total = np.where(on, mask_probs, 0.0).sum(axis=(1, 2), dtype=np.float64)
    mean = np.divide(total, count, out=np.zeros(len(count)), where=count > 0)
    return mean, count / (mask_probs.shape[1] * mask_probs.shape[2])


def encode_masks_with_scores(mask_probs: np.ndarray, boxes: np.ndarray, image_height: int,
                             image_width: int, threshold: float = 0.5) -> List[EncodedMask]:
    """EncodedMask per detection (empty masks included), same arguments as paste_masks."""
    mask_probs, boxes = check_inputs(mask_probs, boxes, threshold)
    found = image_runs(mask_probs, boxes, image_height, image_width, threshold)
    grid_means, grid_fractions = grid_scores(mask_probs, threshold)
    encoded = []
    for runs, area, probability_sum, grid_mean, grid_fraction in zip(
            found.runs, found.area.tolist(), found.probability_sum.tolist(),
            grid_means.tolist(), grid_fractions.tolist()):
        encoded.append(EncodedMask(_compress(runs, image_height, image_width), area,
                                   grid_mean, grid_fraction,
                                   probability_sum / area if area else 0.0))
    return encoded


def encode_masks_rle(mask_probs: np.ndarray, boxes: np.ndarray, image_height: int, image_width: int,
                     threshold: float = 0.5) -> List[Dict[str, Any]]:
    """The fast path: ``{"size": [H, W], "counts": str}`` per detection.

    Equal to ``pycocotools.mask.encode(np.asfortranarray(paste_masks(...)[i]))``
    with counts decoded to str, without building any H x W array.
    """
    return [encoded.rle for encoded in encode_masks_with_scores(
        mask_probs, boxes, image_height, image_width, threshold)]
