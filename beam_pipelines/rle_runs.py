"""COCO run lengths of all the box masks of one image at once, without pixel-sized arrays.

The pixel convention is ``rle.paste_masks``'; this module reproduces its bits.
Box columns whose two neighbouring mask columns stay below the threshold are
off and skipped. Along each remaining box column, the pixels between mask rows
k and k + 1 (cell k) interpolate two values a and b. When both are clearly
above the threshold, every pixel of the cell is on whatever float32 rounding
does (both clearly below: off). In a cell that straddles the threshold the
exact values a + f (b - a) are monotone in the rows' weights f, so a binary
search finds the rows within rounding of the threshold; only those and their
two neighbours are evaluated, with paste_masks' arithmetic. Runs change state
where a cell's first pixel differs from the previous cell's last pixel, inside
straddling cells, and at the box's edges; those places, over all detections of
the image, come from a fixed number of numpy calls on the [box columns, M - 1]
grid of cells.

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


def extents(lows: np.ndarray, highs: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """``extent`` of many [low, high) pairs at once: (start, stop), int64[N] each."""
    lows, highs = np.asarray(lows, np.float64), np.asarray(highs, np.float64)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(lows) & np.isfinite(highs) & (highs > lows)
    bounds = np.where(valid, np.stack([lows, highs]), 0.0)
    pixels = np.clip(np.ceil(bounds - 0.5), 0, size)
    for _ in range(2):  # as first_centre_at: bounds - 0.5 may have been rounded
        pixels -= (pixels > 0) & (pixels - 0.5 >= bounds)
        pixels += (pixels < size) & (pixels + 0.5 < bounds)
    start, stop = pixels.astype(np.int64)
    return start, np.maximum(start, stop)


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
    start, stop = extents(lows, highs, size)
    length = stop - start
    scale = np.zeros(len(length))
    np.divide(mask_size, highs - lows, out=scale, where=length > 0)
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
    # Each interpolation's three float32 roundings move a convex combination by < 4 ulp of
    # its inputs; two of them (along x, then y) stay well inside this margin.
    margin = 1e-6 * max(1.0, float(np.abs(mask_probs).max())) if count else 0.0

    # Box columns whose two mask columns stay below the threshold in every mask row are
    # off from top to bottom. The columns that may not be (``col``, indices into
    # ``cols``' samples, grouped by box) are the only ones looked at from here on.
    column_peak = mask_probs.max(axis=1).ravel()  # per box and mask column
    peak = np.maximum(column_peak[cols.owner * mask_size + cols.lower],
                      column_peak[cols.owner * mask_size + cols.upper])
    col = np.flatnonzero(peak >= threshold - margin)
    col_box, col_lower, col_upper = cols.owner[col], cols.lower[col], cols.upper[col]
    col_fraction = cols.fraction[col]

    # Those columns interpolated along x at every mask row: float32[columns, M].
    mask_columns = np.ascontiguousarray(mask_probs.transpose(0, 2, 1)).reshape(-1, mask_size)
    at_rows = ((1 - col_fraction)[:, None] * mask_columns[col_box * mask_size + col_lower]
               + col_fraction[:, None] * mask_columns[col_box * mask_size + col_upper])

    cells = max(mask_size - 1, 1)
    first = at_rows[:, :cells]
    second = at_rows[:, 1:] if mask_size > 1 else at_rows
    cell_key = rows.owner * cells + rows.lower
    cell_rows_of_box = np.bincount(cell_key, minlength=count * cells).reshape(count, cells)
    cell_first_row = np.cumsum(cell_rows_of_box, axis=1) - cell_rows_of_box
    upper_weight = np.bincount(cell_key, weights=rows.fraction,
                               minlength=count * cells).reshape(count, cells)
    surely_on = np.minimum(first, second) > threshold + margin
    unsure = np.maximum(first, second) >= threshold - margin
    unsure &= ~surely_on
    if not cell_rows_of_box.all():  # boxes under M - 1 pixels tall have cells without pixels
        present = (cell_rows_of_box > 0)[col_box]
        surely_on &= present
        unsure &= present

    # Sure cells that are on: area and probability sum in closed form, summing the
    # columns of each box first (every column of a box has the same rows per cell).
    columns_of_box = np.bincount(col_box, minlength=count)
    boxes_with_cols = np.flatnonzero(columns_of_box)
    col_starts = (np.cumsum(columns_of_box) - columns_of_box)[boxes_with_cols]
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

    # Straddling cells. Along a box column a cell's exact values a + f (b - a) are
    # monotone in the rows' weights f, so its rows split into a sure run before the
    # threshold, a band within the margin of it and a sure run after. Only the band and
    # the rows next to it (which carry the cell's first and last state) are evaluated,
    # with paste_masks' arithmetic, value by value.
    unsure_flat = np.flatnonzero(unsure)
    unsure_col = unsure_flat // cells
    unsure_cell = unsure_flat - unsure_col * cells
    cell_box = col_box[unsure_col]
    box_cell = cell_box * cells + unsure_cell
    cell_rows = cell_rows_of_box.ravel()[box_cell]
    cell_row0 = cell_first_row.ravel()[box_cell]
    flat_rows = at_rows.ravel()
    at_index = unsure_col * mask_size + unsure_cell
    low = flat_rows[at_index].astype(np.float64)
    slope = flat_rows[at_index + (mask_size > 1)] - low
    rising = slope > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        off_cut = (threshold - margin - low) / slope   # weight where the value is surely off
        on_cut = (threshold + margin - low) / slope
    flat = slope == 0
    band_from = np.where(flat, -1.0, np.where(rising, off_cut, on_cut)).clip(-1.0, 2.0)
    band_to = np.where(flat, 2.0, np.where(rising, on_cut, off_cut)).clip(-1.0, 2.0)
    # Cells' weights as one sorted key: 4 * (box cell) + weight, weights in [0, 1].
    row_key = cell_key * 4.0 + rows.fraction
    cell_base = box_cell * 4.0
    cell_begin = rows.offset[cell_box] + cell_row0
    before_band = np.searchsorted(row_key, cell_base + band_from, "left") - cell_begin
    through_band = np.searchsorted(row_key, cell_base + band_to, "right") - cell_begin
    exact_from = np.maximum(before_band - 1, 0)
    exact_to = np.minimum(through_band + 1, cell_rows)
    exact_rows = exact_to - exact_from

    item, within = _expand(exact_rows)
    pixel_col = unsure_col[item]
    pixel_box = cell_box[item]
    pixel_row = cell_row0[item] + exact_from[item] + within
    sample = rows.offset[pixel_box] + pixel_row
    fraction = rows.fraction[sample]
    values = ((1 - fraction) * flat_rows[pixel_col * mask_size + rows.lower[sample]]
              + fraction * flat_rows[pixel_col * mask_size + rows.upper[sample]])
    hits = values > threshold
    area = area + np.bincount(pixel_box[hits], minlength=count)
    probability_sum = probability_sum + np.bincount(
        pixel_box, weights=np.where(hits, values, 0.0), minlength=count)
    # The sure rows outside the evaluated ones that are on: after a rise, before a fall.
    on_begin = np.where(rising, cell_begin + exact_to, cell_begin)
    on_rows = np.where(rising, cell_rows - exact_to, exact_from)
    weight_sums = np.concatenate([[0.0], np.cumsum(rows.fraction, dtype=np.float64)])
    area = area + np.bincount(cell_box, weights=on_rows, minlength=count)
    probability_sum = probability_sum + np.bincount(
        cell_box, weights=on_rows * low + slope * (weight_sums[on_begin + on_rows]
                                                    - weight_sums[on_begin]), minlength=count)

    # Where the state changes: at cell starts, inside straddling cells, at column ends.
    pixel_start = np.cumsum(exact_rows) - exact_rows
    first_state, last_state = surely_on.copy(), surely_on  # surely_on is not used below
    first_state.ravel()[unsure_flat] = hits[pixel_start]
    last_state.ravel()[unsure_flat] = hits[pixel_start + exact_rows - 1]
    edges = np.empty_like(first_state)
    edges[:, 0] = first_state[:, 0]
    np.not_equal(first_state[:, 1:], last_state[:, :-1], out=edges[:, 1:])
    edge_flat = np.flatnonzero(edges)
    edge_col = edge_flat // cells
    edge_cell = edge_flat - edge_col * cells
    inside = np.flatnonzero(hits[1:] != hits[:-1]) + 1
    inside = inside[item[inside] == item[inside - 1]]
    end_col = np.flatnonzero(last_state[:, -1])
    change_col = col[np.concatenate([edge_col, pixel_col[inside], end_col])]
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
    # Sorted runs (edges, straddling cells, column ends) merge in linear time.
    keys = np.sort(box * (total + 1) + image_index, kind="stable")
    if len(keys):
        starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1], [True]]))
        keys = keys[starts[:-1][np.diff(starts) % 2 == 1]]
    box, index = keys // (total + 1), keys % (total + 1)
    box, index = box[index != total], index[index != total]  # ends on a 1: no trailing 0s
    bounds = np.searchsorted(box, np.arange(count + 1))
    return [np.diff(np.concatenate([[0], index[bounds[d]:bounds[d + 1]], [total]]))
            for d in range(count)]
