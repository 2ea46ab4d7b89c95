"""COCO run lengths of all the box masks of one image at once, without pixel-sized arrays.

The pixel convention is ``rle.paste_masks``'; this module reproduces its bits.
Along one box column, the pixels between mask rows k and k + 1 (cell k)
interpolate two values a and b. When both are clearly above the threshold,
every pixel of the cell is on whatever float32 rounding does (both clearly
below: off). Only cells that straddle the threshold are evaluated pixel by
pixel, with paste_masks' arithmetic. Runs change state where a cell's first
pixel differs from the previous cell's last pixel, inside straddling cells,
and at the box's edges; those places, over all detections of the image, come
from a fixed number of numpy calls on the [box columns, M - 1] grid of cells.

Changes are combined by parity: two changes at the same pixel cancel. That
joins a run ending at the bottom of one column with one starting at the top of
the next, and lets cells without pixels (boxes under M pixels tall) sit in the
grid harmlessly.
"""
import dataclasses
import math
from typing import List, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class AxisBatch:
    """Per box: ``start`` (first pixel inside) and ``length`` (pixels inside), int64[N];
    per sample (the pixels inside, box after box; box b's begin at ``offset[b]``):
    ``owner`` (its box), the mask cells ``lower``/``upper`` and ``fraction`` (float32)
    of its bilinear weights, as ``rle.axis_samples`` defines them."""
    start: np.ndarray
    length: np.ndarray
    offset: np.ndarray
    owner: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    fraction: np.ndarray


def first_centre_at(value: float, size: int) -> int:
    """The smallest pixel p in [0, size] with p + 0.5 >= value (size when there is none)."""
    pixel = min(max(math.ceil(value - 0.5), 0), size)
    while pixel > 0 and pixel - 0.5 >= value:  # value - 0.5 may have been rounded
        pixel -= 1
    while pixel < size and pixel + 0.5 < value:
        pixel += 1
    return pixel


def extent(low: float, high: float, size: int) -> Tuple[int, int]:
    """[start, stop) of the pixels whose centre lies in [low, high); empty when not finite."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return 0, 0
    start, stop = first_centre_at(low, size), first_centre_at(high, size)
    return start, max(start, stop)


def cell_weights(coordinates: np.ndarray, mask_size: int
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel centres in mask units before the half-cell shift, float64
    ``(p + 0.5 - low) * M / (high - low)`` -> (lower cell, upper cell, float32 weight of
    the upper) of the bilinear sample, clamped to the M cells. Modifies ``coordinates``."""
    coordinates -= 0.5
    np.maximum(coordinates, 0.0, out=coordinates)
    np.minimum(coordinates, mask_size - 1, out=coordinates)
    lower = coordinates.astype(np.int64)  # truncation is floor: coordinates >= 0
    np.minimum(lower, max(mask_size - 2, 0), out=lower)
    upper = np.minimum(lower + 1, mask_size - 1)
    return lower, upper, (coordinates - lower).astype(np.float32)


def axis_batch(lows: np.ndarray, highs: np.ndarray, size: int, mask_size: int) -> AxisBatch:
    """AxisBatch of N boxes [low, high) (float64 pixels) along an axis of ``size`` pixels."""
    lows_list, highs_list = lows.tolist(), highs.tolist()
    extents = [extent(low, high, size) for low, high in zip(lows_list, highs_list)]
    start = np.array([s for s, _ in extents], np.int64).reshape(-1)
    length = np.array([e - s for s, e in extents], np.int64).reshape(-1)
    scale = np.array([mask_size / (high - low) if e > s else 0.0
                      for (s, e), low, high in zip(extents, lows_list, highs_list)])
    offset = np.concatenate([[0], np.cumsum(length)])
    owner = np.repeat(np.arange(len(length)), length)
    # The same float64 operations, in the same order, as rle.axis_samples.
    coordinates = (start[owner] + np.arange(len(owner)) - offset[owner]) + 0.5
    coordinates -= lows[owner]
    coordinates *= scale[owner]
    lower, upper, fraction = cell_weights(coordinates, mask_size)
    return AxisBatch(start, length, offset, owner, lower, upper, fraction)


@dataclasses.dataclass(frozen=True)
class ImageRuns:
    """``runs[d]``: COCO run lengths of detection d over the whole image; ``area``
    (pixels on), ``probability_sum`` (over those pixels) and ``box_pixels`` per detection."""
    runs: List[np.ndarray]
    area: np.ndarray
    probability_sum: np.ndarray
    box_pixels: np.ndarray


def _expand(counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """For items repeated ``counts`` times: (item of each repeat, index within its item)."""
    item = np.repeat(np.arange(len(counts)), counts)
    within = np.arange(len(item)) - (np.cumsum(counts) - counts)[item]
    return item, within


def image_runs(mask_probs: np.ndarray, boxes: np.ndarray, height: int, width: int,
               threshold: float) -> ImageRuns:
    """mask_probs float32[N, M, M], boxes float64[N, 4] [xmin, ymin, xmax, ymax] -> ImageRuns."""
    count, mask_size = mask_probs.shape[0], mask_probs.shape[1]
    rows = axis_batch(boxes[:, 1], boxes[:, 3], height, mask_size)
    cols = axis_batch(boxes[:, 0], boxes[:, 2], width, mask_size)
    col_box = cols.owner

    # Every box column interpolated along x at every mask row: float32[columns, M].
    mask_columns = np.ascontiguousarray(mask_probs.transpose(0, 2, 1)).reshape(-1, mask_size)
    at_rows = ((1 - cols.fraction)[:, None] * mask_columns[col_box * mask_size + cols.lower]
               + cols.fraction[:, None] * mask_columns[col_box * mask_size + cols.upper])

    cells = max(mask_size - 1, 1)
    first = at_rows[:, :cells]
    second = at_rows[:, 1:] if mask_size > 1 else at_rows
    cell_key = rows.owner * cells + rows.lower
    cell_rows_of_box = np.bincount(cell_key, minlength=count * cells).reshape(count, cells)
    cell_first_row = np.cumsum(cell_rows_of_box, axis=1) - cell_rows_of_box
    upper_weight = np.bincount(cell_key, weights=rows.fraction,
                               minlength=count * cells).reshape(count, cells)
    present = (cell_rows_of_box > 0)[col_box]  # [columns, cells]: the cell has pixels
    # Three float32 roundings of a convex combination move it by < 4 ulp of its inputs.
    margin = 1e-6 * max(1.0, float(np.abs(mask_probs).max())) if count else 0.0
    surely_on = (np.minimum(first, second) > threshold + margin) & present
    unsure = ~surely_on & (np.maximum(first, second) >= threshold - margin) & present

    # Sure cells that are on: area and probability sum in closed form, summing the
    # columns of each box first (every column of a box has the same rows per cell).
    col_starts = cols.offset[:-1][cols.length > 0]
    boxes_with_cols = np.flatnonzero(cols.length > 0)
    on_columns = np.zeros([count, cells])
    on_first = np.zeros([count, cells])
    on_second = np.zeros([count, cells])
    if len(col_starts):
        on_columns[boxes_with_cols] = np.add.reduceat(surely_on.astype(np.float32), col_starts, axis=0)
        on_first[boxes_with_cols] = np.add.reduceat(first * surely_on, col_starts, axis=0)
        on_second[boxes_with_cols] = np.add.reduceat(second * surely_on, col_starts, axis=0)
    area = (on_columns * cell_rows_of_box).sum(axis=1)
    probability_sum = (on_first * (cell_rows_of_box - upper_weight)
                       + on_second * upper_weight).sum(axis=1)

    # Pixels of straddling cells: paste_masks' arithmetic, value by value.
    unsure_col, unsure_cell = np.nonzero(unsure)
    unsure_rows = cell_rows_of_box[col_box[unsure_col], unsure_cell]
    item, within = _expand(unsure_rows)
    pixel_col = unsure_col[item]
    pixel_box = col_box[pixel_col]
    pixel_row = cell_first_row[pixel_box, unsure_cell[item]] + within
    sample = rows.offset[pixel_box] + pixel_row
    fraction = rows.fraction[sample]
    flat = at_rows.ravel()
    values = ((1 - fraction) * flat[pixel_col * mask_size + rows.lower[sample]]
              + fraction * flat[pixel_col * mask_size + rows.upper[sample]])
    hits = values > threshold
    area = area + np.bincount(pixel_box[hits], minlength=count)
    probability_sum = probability_sum + np.bincount(
        pixel_box, weights=np.where(hits, values, 0.0), minlength=count)

    # Where the state changes: at cell starts, inside straddling cells, at column ends.
    first_state, last_state = surely_on.copy(), surely_on.copy()
    cell_start = np.cumsum(unsure_rows) - unsure_rows
    first_state[unsure_col, unsure_cell] = hits[cell_start]
    last_state[unsure_col, unsure_cell] = hits[cell_start + unsure_rows - 1]
    before = np.zeros_like(last_state)
    before[:, 1:] = last_state[:, :-1]
    edge_col, edge_cell = np.nonzero(first_state != before)
    inside = np.flatnonzero(hits[1:] != hits[:-1]) + 1
    inside = inside[item[inside] == item[inside - 1]]
    end_col = np.flatnonzero(last_state[:, -1])
    change_col = np.concatenate([edge_col, pixel_col[inside], end_col])
    change_row = np.concatenate([cell_first_row[col_box[edge_col], edge_cell], pixel_row[inside],
                                 rows.length[col_box[end_col]]])
    runs = _runs(change_col, change_row, rows, cols, height, width)
    return ImageRuns(runs, np.rint(area).astype(np.int64), probability_sum,
                     rows.length * cols.length)


def _runs(change_col: np.ndarray, change_row: np.ndarray, rows: AxisBatch, cols: AxisBatch,
          height: int, width: int) -> List[np.ndarray]:
    """Run lengths per detection from state changes at (box column, box row)."""
    count = len(rows.length)
    total = height * width
    box = cols.owner[change_col]
    image_index = ((cols.start[box] + change_col - cols.offset[box]) * height
                   + rows.start[box] + change_row)
    keys, multiplicity = np.unique(box * (total + 1) + image_index, return_counts=True)
    keys = keys[multiplicity % 2 == 1]
    box, index = keys // (total + 1), keys % (total + 1)
    box, index = box[index != total], index[index != total]  # ends on a 1: no trailing 0s
    bounds = np.searchsorted(box, np.arange(count + 1))
    return [np.diff(np.concatenate([[0], index[bounds[d]:bounds[d + 1]], [total]]))
            for d in range(count)]
