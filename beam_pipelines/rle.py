"""Model masks -> COCO compressed RLE, without a full-image canvas per detection.

The model gives each detection an M x M grid of mask probabilities (M = 28)
covering its box. Pasting that grid into the image follows one convention,
written out in ``paste_masks`` (the plain full-canvas reference).
``encode_masks_rle`` produces the same bits without the canvas (see
``rle_runs``): its cost grows with the box's width and with the pixels where
the mask crosses the threshold, not with the image.

COCO RLE runs go through the image column by column (Fortran order),
alternating 0s and 1s and starting with a run of 0s (possibly empty).
"""
import dataclasses
import time
from typing import Any, Dict, Iterable, List, Mapping, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from pycocotools import mask as coco_mask

from beam_pipelines.rle_runs import cell_weights, extent, image_runs

NAMESPACE = "rle"
MASK_KEYS = ("boxes", "mask_probabilities", "image_size")


@dataclasses.dataclass(frozen=True)
class AxisSamples:
    """Where one box edge pair falls along one image axis.

    Pixels ``start..stop-1`` of the axis have their centres inside the box;
    pixel ``start + k`` interpolates mask cells ``lower[k]`` and ``upper[k]``
    with weight ``fraction[k]`` (float32) on the upper one.
    """
    start: int
    stop: int
    lower: np.ndarray
    upper: np.ndarray
    fraction: np.ndarray


def axis_samples(low: float, high: float, size: int, mask_size: int) -> AxisSamples:
    """The pixels of an axis of ``size`` pixels inside [low, high) and their mask cells.

    Pixel p is inside when ``low <= p + 0.5 < high``. Its mask coordinate is
    ``u = (p + 0.5 - low) * mask_size / (high - low) - 0.5`` (cell j has its
    centre at u = j), clamped to [0, mask_size - 1]; bilinear weights follow
    from u. A box that is empty, inverted or not finite has no pixels.
    """
    low, high = float(low), float(high)
    start, stop = extent(low, high, size)
    if stop <= start:
        empty = np.zeros([0], np.int64)
        return AxisSamples(start, start, empty, empty, np.zeros([0], np.float32))
    coordinates = np.arange(start + 0.5, stop, dtype=np.float64)  # pixel centres
    coordinates -= low
    coordinates *= mask_size / (high - low)
    lower, upper, fraction = cell_weights(coordinates, mask_size)
    return AxisSamples(start, stop, lower, upper, fraction)


def _check_inputs(mask_probs: np.ndarray, boxes: np.ndarray, threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    mask_probs = np.asarray(mask_probs, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float64)
    if mask_probs.ndim != 3 or mask_probs.shape[1] != mask_probs.shape[2]:
        raise ValueError(f"mask_probs must be [N, M, M], got {mask_probs.shape}")
    if boxes.shape != (mask_probs.shape[0], 4):
        raise ValueError(f"boxes must be [{mask_probs.shape[0]}, 4], got {boxes.shape}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    return mask_probs, boxes


def paste_masks(mask_probs: np.ndarray, boxes: np.ndarray, image_height: int, image_width: int,
                threshold: float = 0.5) -> np.ndarray:
    """Full-canvas reference: binary masks at image resolution.

    Args:
      mask_probs: float[N, M, M] probabilities; cell (i, j) covers the i-th row
        and j-th column of an M x M grid laid over the box.
      boxes: float[N, 4] as [xmin, ymin, xmax, ymax] in pixels (continuous
        coordinates: pixel (y, x) spans [x, x + 1) x [y, y + 1)).
      image_height, image_width: canvas size in pixels.
      threshold: a pixel is on when its probability is > threshold.

    Returns:
      uint8[N, H, W] of 0/1.

    The probability of pixel (y, x) is 0 unless its centre (x + 0.5, y + 0.5)
    lies in [xmin, xmax) x [ymin, ymax). Inside, it is the bilinear
    interpolation of the grid at u = (x + 0.5 - xmin) * M / (xmax - xmin) - 0.5,
    v = (y + 0.5 - ymin) * M / (ymax - ymin) - 0.5 (cell centres at integers,
    the half-pixel convention of cv2.resize and of TF's resize with
    half_pixel_centers), with u and v clamped to [0, M - 1], i.e. the grid's
    edge values extend to the box's edges. In float32 arithmetic:
      top = (1 - fu) * m[i0, j0] + fu * m[i0, j1]
      bottom = (1 - fu) * m[i1, j0] + fu * m[i1, j1]
      p = (1 - fv) * top + fv * bottom
    where (i0, j0) is the cell at floor(v, u) (at most M - 2), (i1, j1) the next
    one and (fv, fu) the fractional parts.
    """
    mask_probs, boxes = _check_inputs(mask_probs, boxes, threshold)
    mask_size = mask_probs.shape[1]
    masks = np.zeros([len(boxes), image_height, image_width], np.uint8)
    for index, (mask, (x_min, y_min, x_max, y_max)) in enumerate(zip(mask_probs, boxes)):
        rows = axis_samples(y_min, y_max, image_height, mask_size)
        cols = axis_samples(x_min, x_max, image_width, mask_size)
        canvas = np.zeros([image_height, image_width], np.float32)
        i0, i1, fv = rows.lower[:, None], rows.upper[:, None], rows.fraction[:, None]
        j0, j1, fu = cols.lower[None, :], cols.upper[None, :], cols.fraction[None, :]
        top = (1 - fu) * mask[i0, j0] + fu * mask[i0, j1]
        bottom = (1 - fu) * mask[i1, j0] + fu * mask[i1, j1]
        canvas[rows.start:rows.stop, cols.start:cols.stop] = (1 - fv) * top + fv * bottom
        masks[index] = canvas > threshold
    return masks


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
    mask_probs, boxes = _check_inputs(mask_probs, boxes, threshold)
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


class EncodeMasksRle(beam.DoFn):
    """(key, detections) -> (key, detections with COCO RLE masks); empty masks dropped.

    ``detections`` maps names to per-detection arrays with a leading K axis,
    plus ``image_size`` (H, W). Required: ``boxes`` float[K, 4] [xmin, ymin,
    xmax, ymax] pixels and ``mask_probabilities`` float[K, M, M]. Every other
    per-detection array is kept for the detections whose mask is not empty.
    Adds ``segmentation`` (list of RLE dicts), ``mask_mean_score`` and
    ``mask_area_fraction`` (float[K']); drops ``mask_probabilities``.
    Counters (namespace ``rle``): masks_encoded, masks_empty, and encode_micros,
    the wall time spent encoding (to weigh it against the rest of a job).
    """

    def __init__(self, threshold: float = 0.5):
        self._threshold = threshold
        self._encoded = Metrics.counter(NAMESPACE, "masks_encoded")
        self._empty = Metrics.counter(NAMESPACE, "masks_empty")
        self._micros = Metrics.counter(NAMESPACE, "encode_micros")

    def process(self, element: Tuple[Any, Mapping[str, Any]]) -> Iterable[Tuple[Any, Dict[str, Any]]]:
        key, detections = element
        started = time.perf_counter()
        height, width = (int(v) for v in detections["image_size"])
        encoded = encode_masks_with_scores(detections["mask_probabilities"], detections["boxes"],
                                           height, width, self._threshold)
        kept = np.array([index for index, item in enumerate(encoded) if item.area > 0], np.int64)
        self._encoded.inc(len(kept))
        self._empty.inc(len(encoded) - len(kept))
        output = {name: np.asarray(values)[kept] for name, values in detections.items()
                  if name not in MASK_KEYS}
        output["boxes"] = np.asarray(detections["boxes"])[kept]
        output["image_size"] = (height, width)
        output["segmentation"] = [encoded[index].rle for index in kept]
        output["mask_mean_score"] = np.array([encoded[i].mean_score for i in kept], np.float32)
        output["mask_area_fraction"] = np.array([encoded[i].area_fraction for i in kept], np.float32)
        self._micros.inc(int((time.perf_counter() - started) * 1e6))
        yield key, output
