"""How a detection's M x M mask grid is pasted into the image: the pixel convention.

The model gives each detection an M x M grid of mask probabilities (M = 28)
covering its box. ``paste_masks`` writes the convention out as a plain
full-canvas reference; ``model.masks.rle`` produces the same bits without the
canvas.
"""
import dataclasses
from typing import Tuple

import numpy as np

from model.masks.runs import cell_weights, extent


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


def check_inputs(mask_probs: np.ndarray, boxes: np.ndarray, threshold: float
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Validated (mask_probs float32[N, M, M], boxes float64[N, 4]); ValueError otherwise
    (also for a threshold outside [0, 1))."""
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
    mask_probs, boxes = check_inputs(mask_probs, boxes, threshold)
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
