"""COCO run lengths of all the box masks of one image at once, without pixel-sized arrays.

The pixel convention is ``model.masks.paste.paste_masks``'; this module reproduces its bits.
Box columns whose two neighbouring mask columns stay below the threshold are
off and skipped. Along each remaining box column, the pixels between mask rows
k and k + 1 (cell k) interpolate two values a and b. When both are clearly
above the threshold, every pixel of the cell is on whatever float32 rounding
does (both clearly below: off). In a cell that straddles the threshold the
exact values a + f (b - a) are monotone in the rows' weights f, so the rows
within rounding of the threshold follow from the box's row coordinates; only
those and their two neighbours are evaluated, with paste_masks' arithmetic. Runs change state
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
    """Per box: ``start`` (first pixel inside) and ``length`` (pixels inside), int64[N],
    ``low`` (its first edge, pixels) and ``scale`` (mask cells per pixel), float64[N];
    per sample (the pixels inside, box after box; box b's begin at ``offset[b]``):
    ``owner`` (its box), the mask cells ``lower``/``upper`` and ``fraction`` (float32)
    of its bilinear weights, as ``paste.axis_samples`` defines them."""
    start: np.ndarray
    length: np.ndarray
    low: np.ndarray
    scale: np.ndarray
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
    # The same float64 operations, in the same order, as paste.axis_samples.
    coordinates = (start[owner] + np.arange(len(owner)) - offset[owner]) + 0.5
    coordinates -= lows[owner]
    coordinates *= scale[owner]
    lower, upper, fraction = cell_weights(coordinates, mask_size)
    return AxisBatch(start, length, np.asarray(lows, np.float64), scale, offset, owner, lower,
                     upper, fraction)


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


# Box columns per pass: small enough that a pass's temporaries are reused from the
# heap rather than mapped in (and page-faulted) afresh on every call.
COLUMNS_PER_PASS = 2048


@dataclasses.dataclass(frozen=True)
class _Cells:
    """What every pass over columns shares: the mask columns float32[N * M, M] (row
    b * M + j is column j of box b's mask), the rows AxisBatch, and per box and cell
    (float/int[N, M - 1], one cell when M = 1) its rows, first row and summed upper
    weights, and ``weight_sums`` (prefix sums of the rows' weights)."""
    mask_columns: np.ndarray
    rows: AxisBatch
    rows_per_cell: np.ndarray
    first_row: np.ndarray
    upper_weight: np.ndarray
    weight_sums: np.ndarray
    threshold: float
    margin: float


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
    # off from top to bottom. Only the others (``col``, grouped by box) are looked at.
    column_peak = mask_probs.max(axis=1).ravel()  # per box and mask column
    peak = np.maximum(column_peak[cols.owner * mask_size + cols.lower],
                      column_peak[cols.owner * mask_size + cols.upper])
    col = np.flatnonzero(peak >= threshold - margin)

    cells = max(mask_size - 1, 1)
    cell_key = rows.owner * cells + rows.lower
    rows_per_cell = np.bincount(cell_key, minlength=count * cells).reshape(count, cells)
    shared = _Cells(
        mask_columns=np.ascontiguousarray(mask_probs.transpose(0, 2, 1)).reshape(-1, mask_size),
        rows=rows, rows_per_cell=rows_per_cell,
        first_row=np.cumsum(rows_per_cell, axis=1) - rows_per_cell,
        upper_weight=np.bincount(cell_key, weights=rows.fraction,
                                 minlength=count * cells).reshape(count, cells),
        weight_sums=np.concatenate([[0.0], np.cumsum(rows.fraction, dtype=np.float64)]),
        threshold=threshold, margin=margin)

    probability_sum = np.zeros(count)
    change_cols, change_rows = [np.zeros([0], np.int64)], [np.zeros([0], np.int64)]
    for begin in range(0, len(col), COLUMNS_PER_PASS):
        part = col[begin:begin + COLUMNS_PER_PASS]
        local_col, change_row, part_sum = _column_changes(
            shared, cols.owner[part], cols.lower[part], cols.upper[part], cols.fraction[part])
        change_cols.append(part[local_col])
        change_rows.append(change_row)
        probability_sum += part_sum
    runs, area = _runs(np.concatenate(change_cols), np.concatenate(change_rows), rows, cols,
                       height, width)
    return ImageRuns(runs, area, probability_sum, rows.length * cols.length)


def _column_changes(shared: _Cells, col_box: np.ndarray, col_lower: np.ndarray,
                    col_upper: np.ndarray, col_fraction: np.ndarray
                    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass over box columns (grouped by box): where their states change, as
    (column index in this pass, box row), both int64[changes], and the probability sum
    of their pixels that are on, float64[N].

    Three steps: the sure cells (on or off whole), the straddling band (the rows of the
    other cells evaluated pixel by pixel) and the change points of both."""
    sure = _sure_cells(shared, col_box, col_lower, col_upper, col_fraction)
    band = _straddling_band(shared, col_box, sure)
    probability_sum = _sure_cells_sum(shared, col_box, sure) + band.hit_sum + band.run_sum
    change_col, change_row = _change_points(shared, col_box, sure, band)
    return change_col, change_row, probability_sum


@dataclasses.dataclass(frozen=True)
class _SureCells:
    """A pass's box columns interpolated along x at every mask row (``at_rows``,
    float32[columns, M]) and, per column and cell (float32/bool[columns, cells]), the
    values at the cell's two mask rows (``first``, ``second``), whether the cell is on
    whole (``surely_on``) and whether it straddles the threshold (``unsure``). Cells
    neither on nor straddling are off whole, as are cells without rows."""
    at_rows: np.ndarray
    first: np.ndarray
    second: np.ndarray
    surely_on: np.ndarray
    unsure: np.ndarray


def _sure_cells(shared: _Cells, col_box: np.ndarray, col_lower: np.ndarray,
                col_upper: np.ndarray, col_fraction: np.ndarray) -> _SureCells:
    """Step 1: which cells of the columns (box, mask columns lower/upper and float32
    weight, per column) are on or off whatever float32 rounding does (both values a
    margin above, or below, the threshold) and which straddle it."""
    cells = shared.rows_per_cell.shape[1]
    threshold, margin = shared.threshold, shared.margin
    mask_size = shared.mask_columns.shape[1]
    at_rows = ((1 - col_fraction)[:, None] * shared.mask_columns[col_box * mask_size + col_lower]
               + col_fraction[:, None] * shared.mask_columns[col_box * mask_size + col_upper])
    first = at_rows[:, :cells]
    second = at_rows[:, 1:] if mask_size > 1 else at_rows
    surely_on = np.minimum(first, second) > threshold + margin
    unsure = np.maximum(first, second) >= threshold - margin
    unsure &= ~surely_on
    if not shared.rows_per_cell.all():  # boxes under M - 1 pixels tall have empty cells
        present = (shared.rows_per_cell > 0)[col_box]
        surely_on &= present
        unsure &= present
    return _SureCells(at_rows, first, second, surely_on, unsure)


def _sure_cells_sum(shared: _Cells, col_box: np.ndarray, sure: _SureCells) -> np.ndarray:
    """The probability sum (float64[N]) of the sure cells that are on, in closed form,
    summing the columns of each box first (every column of a box has the same rows per
    cell)."""
    count = shared.rows_per_cell.shape[0]
    starts = np.flatnonzero(np.concatenate([[True], col_box[1:] != col_box[:-1]]))
    start_box = col_box[starts]
    on_first = np.add.reduceat(sure.first * sure.surely_on, starts, axis=0)
    on_second = np.add.reduceat(sure.second * sure.surely_on, starts, axis=0)
    upper_weight = shared.upper_weight[start_box]
    return np.bincount(start_box, minlength=count, weights=(
        on_first * (shared.rows_per_cell[start_box] - upper_weight)
        + on_second * upper_weight).sum(axis=1))


@dataclasses.dataclass(frozen=True)
class _Band:
    """A pass's straddling cells and the pixels evaluated in them.

    Per straddling cell (int64[cells']): ``flat`` (its index in the flattened
    [columns, cells] grid) and ``pixel_start``/``pixels`` (its evaluated pixels' range).
    Per evaluated pixel, cell after cell (int64/bool[pixels']): ``item`` (its cell),
    ``col`` (column in the pass), ``row`` (box row) and ``hits`` (on). Per box
    (float64[N]): ``hit_sum``, the probability sum of the evaluated pixels that are on,
    and ``run_sum``, that of the cells' other rows that are on."""
    flat: np.ndarray
    pixel_start: np.ndarray
    pixels: np.ndarray
    item: np.ndarray
    col: np.ndarray
    row: np.ndarray
    hits: np.ndarray
    hit_sum: np.ndarray
    run_sum: np.ndarray


def _band_weights(low: np.ndarray, slope: np.ndarray, threshold: float, margin: float
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """The weights f (float64, clipped to [-1, 2]) from and to which ``low + f * slope``
    lies within ``margin`` of ``threshold``, per cell; [-1, 2] where ``slope`` is 0 (the
    whole cell is within the margin)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = (threshold - low) / slope
        half_width = margin / np.abs(slope)
        band_from = np.clip(crossing - half_width, -1.0, 2.0)
        band_to = np.clip(crossing + half_width, -1.0, 2.0)
    flat = slope == 0
    band_from[flat], band_to[flat] = -1.0, 2.0
    return band_from, band_to


def _straddling_band(shared: _Cells, col_box: np.ndarray, sure: _SureCells) -> _Band:
    """Step 2: the straddling cells' pixels.

    Along a box column a cell's exact values a + f (b - a) are monotone in the rows'
    weights f, so its rows split into a sure run before the threshold, a band within the
    margin of it and a sure run after. Only the band and the rows next to it (which carry
    the cell's first and last state) are evaluated, with paste_masks' arithmetic, value
    by value; the sure run on the threshold's upper side is summed in closed form."""
    rows = shared.rows
    count, cells = shared.rows_per_cell.shape
    mask_size = shared.mask_columns.shape[1]
    unsure_flat = np.flatnonzero(sure.unsure)
    unsure_col = unsure_flat // cells
    unsure_cell = unsure_flat - unsure_col * cells
    cell_box = col_box[unsure_col]
    box_cell = cell_box * cells + unsure_cell
    cell_rows = shared.rows_per_cell.ravel()[box_cell]
    cell_row0 = shared.first_row.ravel()[box_cell]
    flat_rows = sure.at_rows.ravel()
    at_index = unsure_col * mask_size + unsure_cell
    low = flat_rows[at_index].astype(np.float64)
    slope = flat_rows[at_index + (mask_size > 1)] - low
    rising = slope > 0
    band_from, band_to = _band_weights(low, slope, shared.threshold, shared.margin)
    cell_begin = rows.offset[cell_box] + cell_row0
    before_band, through_band = _rows_by_weight(rows, cell_box, unsure_cell, cell_row0,
                                                cell_rows, band_from, band_to)
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
    hits = values > shared.threshold
    hit_sum = np.bincount(pixel_box, weights=np.where(hits, values, 0.0), minlength=count)
    # The sure rows outside the evaluated ones that are on: after a rise, before a fall.
    on_begin = np.where(rising, cell_begin + exact_to, cell_begin)
    on_rows = np.where(rising, cell_rows - exact_to, exact_from)
    run_sum = np.bincount(cell_box, minlength=count, weights=on_rows * low + slope * (
        shared.weight_sums[on_begin + on_rows] - shared.weight_sums[on_begin]))
    return _Band(flat=unsure_flat, pixel_start=np.cumsum(exact_rows) - exact_rows,
                 pixels=exact_rows, item=item, col=pixel_col, row=pixel_row, hits=hits,
                 hit_sum=hit_sum, run_sum=run_sum)


def _rows_by_weight(rows: AxisBatch, box: np.ndarray, cell: np.ndarray, first_row: np.ndarray,
                    cell_rows: np.ndarray, below: np.ndarray, through: np.ndarray
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """Per cell (its box, index, first row and rows): how many of its rows have a weight
    f < ``below`` and how many f <= ``through`` (int64 each).

    A row r of box b has the mask coordinate (r + start + 0.5 - low) * scale - 0.5,
    increasing in r; in cell k its weight is that minus k, clamped to [0, 1] at the
    box's first and last half cell. So the rows below a weight are the rows before
    where the coordinate reaches k + weight. Rows whose coordinate lands within float
    rounding of that place may be counted on either side: their values are then within
    1e-12 of a band edge, a margin away from the threshold, so either side is sure.
    """
    low, scale, start = rows.low[box], rows.scale[box], rows.start[box]

    def row_at(weight):  # the (fractional) box row where the coordinate is cell + weight
        return (cell + weight + 0.5) / scale + low - 0.5 - start - first_row

    with np.errstate(divide="ignore", invalid="ignore"):
        before = np.ceil(row_at(below))
        through_count = np.floor(row_at(through)) + 1
    before = np.where(below <= 0, 0, np.where(below > 1, cell_rows, before))
    through_count = np.where(through < 0, 0, np.where(through >= 1, cell_rows, through_count))
    return (np.clip(before, 0, cell_rows).astype(np.int64),
            np.clip(through_count, 0, cell_rows).astype(np.int64))


def _change_points(shared: _Cells, col_box: np.ndarray, sure: _SureCells, band: _Band
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """Step 3: where the state changes, as (column in the pass, box row), int64 each: at
    cell starts that differ from the previous cell's end, inside straddling cells and at
    column ends that are on."""
    cells = shared.rows_per_cell.shape[1]
    first_state, last_state = sure.surely_on.copy(), sure.surely_on.copy()
    first_state.ravel()[band.flat] = band.hits[band.pixel_start]
    last_state.ravel()[band.flat] = band.hits[band.pixel_start + band.pixels - 1]
    edges = np.empty_like(first_state)
    edges[:, 0] = first_state[:, 0]
    np.not_equal(first_state[:, 1:], last_state[:, :-1], out=edges[:, 1:])
    edge_flat = np.flatnonzero(edges)
    edge_col = edge_flat // cells
    edge_cell = edge_flat - edge_col * cells
    inside = np.flatnonzero(band.hits[1:] != band.hits[:-1]) + 1
    inside = inside[band.item[inside] == band.item[inside - 1]]
    end_col = np.flatnonzero(last_state[:, -1])
    change_col = np.concatenate([edge_col, band.col[inside], end_col])
    change_row = np.concatenate([shared.first_row[col_box[edge_col], edge_cell],
                                 band.row[inside], shared.rows.length[col_box[end_col]]])
    return change_col, change_row


def _runs(change_col: np.ndarray, change_row: np.ndarray, rows: AxisBatch, cols: AxisBatch,
          height: int, width: int) -> Tuple[List[np.ndarray], np.ndarray]:
    """Run lengths and area (pixels on) per detection from state changes at (box column,
    box row)."""
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
    # Runs: each change's distance from the previous one of its detection (from 0 for
    # the first); the last run of each detection reaches the end of the image.
    begins, ends = bounds[:-1], bounds[1:]
    changes_of_box = ends - begins
    changed = changes_of_box > 0
    runs = np.diff(index, prepend=0)
    runs[begins[changed]] = index[begins[changed]]
    last_change = np.zeros(count, np.int64)
    last_change[changed] = index[ends[changed] - 1]
    last = total - last_change
    # On runs are the ones from an even-numbered change (the first is number 0) to the next.
    _, number = _expand(changes_of_box)
    area = (np.bincount(box, weights=np.where(number % 2 == 1, runs, 0), minlength=count)
            + np.where(changes_of_box % 2 == 1, last, 0)).astype(np.int64)
    # Detection d's runs, its last included, sit at [bounds[d] + d, bounds[d + 1] + d].
    all_runs = np.empty(len(index) + count, np.int64)
    all_runs[np.arange(len(index)) + box] = runs
    all_runs[ends + np.arange(count)] = last
    limits = (bounds + np.arange(count + 1)).tolist()
    return [all_runs[begin:end] for begin, end in zip(limits[:-1], limits[1:])], area
