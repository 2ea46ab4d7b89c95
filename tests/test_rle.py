"""rle: the fast COCO RLE path equals pycocotools on the full-canvas reference, bit for bit."""
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from beam_pipelines.rle import EncodeMasksRle
from model.masks.paste import axis_samples, paste_masks
from model.detection_lines import encode_masks
from model.masks.rle import encode_masks_rle, encode_masks_with_scores, grid_scores
from model.masks.runs import _band_weights, extent, extents


def _reference_rles(mask_probs, boxes, height, width, threshold=0.5):
    pasted = paste_masks(mask_probs, boxes, height, width, threshold)
    rles = []
    for mask in pasted:
        rle = coco_mask.encode(np.asfortranarray(mask))
        rles.append({"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")})
    return pasted, rles


def _assert_fast_equals_reference(mask_probs, boxes, height, width, threshold=0.5):
    pasted, expected = _reference_rles(mask_probs, boxes, height, width, threshold)
    actual = encode_masks_rle(mask_probs, boxes, height, width, threshold)
    assert actual == expected
    for rle, mask in zip(actual, pasted):
        assert isinstance(rle["counts"], str)
        assert np.array_equal(coco_mask.decode(
            {"size": rle["size"], "counts": rle["counts"].encode()}), mask)
    return pasted


def _scalar_probability(mask, box, y, x):
    """The docstring's definition for one pixel, in numpy float32 scalars."""
    size = mask.shape[0]
    x_min, y_min, x_max, y_max = box
    if not (x_min <= x + 0.5 < x_max and y_min <= y + 0.5 < y_max):
        return np.float32(0)
    u = min(max((x + 0.5 - x_min) * size / (x_max - x_min) - 0.5, 0.0), size - 1.0)
    v = min(max((y + 0.5 - y_min) * size / (y_max - y_min) - 0.5, 0.0), size - 1.0)
    j0, i0 = min(int(np.floor(u)), size - 2), min(int(np.floor(v)), size - 2)
    fu, fv = np.float32(u - j0), np.float32(v - i0)
    one = np.float32(1)
    top = (one - fu) * mask[i0, j0] + fu * mask[i0, j0 + 1]
    bottom = (one - fu) * mask[i0 + 1, j0] + fu * mask[i0 + 1, j0 + 1]
    return (one - fv) * top + fv * bottom


def test_reference_follows_its_definition_pixel_by_pixel():
    rng = np.random.default_rng(0)
    height, width = 23, 31
    probs = rng.random((3, 28, 28), dtype=np.float32)
    boxes = np.array([[2.3, 1.7, 20.2, 19.9], [-4.0, 5.5, 9.6, 40.0], [10.0, 10.0, 11.0, 11.0]])
    pasted = paste_masks(probs, boxes, height, width)
    for index in range(3):
        expected = np.array([[_scalar_probability(probs[index], boxes[index], y, x) > 0.5
                              for x in range(width)] for y in range(height)])
        assert np.array_equal(pasted[index], expected.astype(np.uint8))


def test_random_boxes_and_masks_match_pycocotools():
    rng = np.random.default_rng(1)
    for trial in range(20):
        height, width = rng.integers(1, 120, size=2)
        count = int(rng.integers(1, 8))
        probs = rng.random((count, 28, 28), dtype=np.float32)
        corners = rng.uniform(-20, max(height, width) + 20, size=(count, 2, 2))
        low, high = corners.min(axis=1), corners.max(axis=1)
        boxes = np.concatenate([low, high], axis=1)
        _assert_fast_equals_reference(probs, boxes, int(height), int(width))


def test_smooth_masks_with_values_near_the_threshold():
    rng = np.random.default_rng(2)
    grid = np.linspace(0.0, 1.0, 28, dtype=np.float32)
    probs = np.stack([np.add.outer(grid, grid) / 2, np.full((28, 28), 0.5, np.float32),
                      np.outer(grid, grid), rng.random((28, 28), dtype=np.float32)])
    boxes = np.array([[3.5, 4.25, 60.75, 41.0], [0, 0, 64, 48], [10, 2, 12, 47], [1, 20, 63, 21]])
    _assert_fast_equals_reference(probs, boxes, 48, 64)
    _assert_fast_equals_reference(probs, boxes, 48, 64, threshold=0.25)


@pytest.mark.parametrize("mask_size", [1, 2, 3, 5, 28])
def test_values_within_rounding_of_the_threshold_and_other_mask_sizes(mask_size):
    rng = np.random.default_rng(4)
    jitter = (0.5 + rng.normal(0, 1e-7, (3, mask_size, mask_size))).astype(np.float32)
    alternating = np.full((3, mask_size, mask_size), 0.5, np.float32)
    alternating[:, ::2] = np.nextafter(np.float32(0.5), np.float32(1))
    corners = rng.uniform(-10, 70, size=(3, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1) + 0.3], axis=1)
    for probs in (jitter, alternating, rng.random((3, mask_size, mask_size), dtype=np.float32)):
        _assert_fast_equals_reference(probs, boxes, 50, 60)


def _canvas_mean_score(probs, box, height, width, threshold=0.5):
    rows = axis_samples(box[1], box[3], height, probs.shape[0])
    cols = axis_samples(box[0], box[2], width, probs.shape[0])
    i0, i1, fv = rows.lower[:, None], rows.upper[:, None], rows.fraction[:, None]
    j0, j1, fu = cols.lower[None, :], cols.upper[None, :], cols.fraction[None, :]
    top = (1 - fu) * probs[i0, j0] + fu * probs[i0, j1]
    bottom = (1 - fu) * probs[i1, j0] + fu * probs[i1, j1]
    values = (1 - fv) * top + fv * bottom
    on = values > threshold
    return float(values[on].astype(np.float64).mean()) if on.any() else 0.0


def test_pixel_mean_score_equals_the_canvas_mean_over_pixels_on():
    rng = np.random.default_rng(5)
    grid = (np.arange(28) + 0.5) / 28
    probs = np.stack([np.exp(-((grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2) / 0.08)
                      for cy, cx in rng.uniform(0.3, 0.7, (6, 2))]).astype(np.float32)
    probs = np.clip(probs + rng.normal(0, 0.05, probs.shape), 0, 1).astype(np.float32)
    corners = rng.uniform(-20, 200, size=(6, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1) + 5], axis=1)
    for mask, box, encoded in zip(probs, boxes, encode_masks_with_scores(probs, boxes, 150, 180)):
        assert encoded.pixel_mean_score == pytest.approx(
            _canvas_mean_score(mask, box, 150, 180), rel=1e-6, abs=1e-9)


def test_extents_of_many_boxes_equal_one_at_a_time():
    rng = np.random.default_rng(6)
    edges = np.arange(-3, 103) + 0.5
    values = np.concatenate([rng.uniform(-50, 150, 4000), edges, np.nextafter(edges, -np.inf),
                             np.nextafter(edges, np.inf), [np.nan, np.inf, -np.inf, 1e300, 0.0]])
    for size in (0, 1, 100):
        lows = rng.choice(values, 6000)
        highs = np.where(rng.random(6000) < 0.5, rng.choice(values, 6000),
                         lows + rng.uniform(0, 60, 6000))
        starts, stops = extents(lows, highs, size)
        expected = np.array([extent(low, high, size) for low, high in zip(lows, highs)])
        assert starts.tolist() == expected[:, 0].tolist()
        assert stops.tolist() == expected[:, 1].tolist()


@pytest.mark.parametrize("box", [
    [0, 0, 50, 40],            # exactly the image
    [-30, -30, 80, 70],        # covers the image and more: full columns join into one run
    [-5, 10, 8, 20],           # crosses the left border
    [40, -3, 60, 12],          # crosses top and right borders
    [45, 35, 50, 40],          # touches bottom-right corner
    [10, 10, 11, 11],          # one pixel
    [10.6, 10.6, 11.4, 11.4],  # no pixel centre inside
    [20, 0, 21, 40],           # one pixel wide, full height
    [0, 20, 50, 21],           # one pixel tall, full width
    [3, 1, 5, 39],             # tall
    [1, 18, 49, 20],           # wide
    [60, 50, 70, 60],          # entirely outside
    [30, 30, 20, 20],          # inverted
    [np.nan, 0, 10, 10],       # not finite
])
@pytest.mark.parametrize("fill", ["random", "empty", "full"])
def test_adversarial_boxes(box, fill):
    rng = np.random.default_rng(3)
    probs = {"random": rng.random((1, 28, 28), dtype=np.float32),
             "empty": np.zeros((1, 28, 28), np.float32),
             "full": np.ones((1, 28, 28), np.float32)}[fill]
    pasted = _assert_fast_equals_reference(probs, np.array([box], np.float64), 40, 50)
    if fill == "empty":
        assert pasted.sum() == 0


def test_full_image_mask_starts_with_an_empty_zero_run():
    probs = np.ones((1, 28, 28), np.float32)
    (rle,) = encode_masks_rle(probs, np.array([[0, 0, 7, 5]]), 5, 7)
    assert coco_mask.decode({"size": [5, 7], "counts": rle["counts"].encode()}).all()
    assert coco_mask.area({"size": [5, 7], "counts": rle["counts"].encode()}) == 35


def test_scores_area_fraction_and_the_dofn_drops_empty_masks():
    probs = np.zeros((3, 28, 28), np.float32)
    probs[0, :, :14] = 0.75      # left half of the box on
    probs[2] = 0.625             # whole box on
    boxes = np.array([[0, 0, 28, 10], [0, 0, 10, 10], [5, 5, 9, 7]], np.float64)
    encoded = encode_masks_with_scores(probs, boxes, 10, 30)
    assert [e.area for e in encoded] == [140, 0, 8]
    # Grid scores: the 28 x 28 cells > 0.5 (392 of 784, then none, then all).
    assert [(e.mean_score, e.area_fraction) for e in encoded] == [(0.75, 0.5), (0.0, 0.0),
                                                                  (0.625, 1.0)]
    assert [e.pixel_mean_score for e in encoded] == [0.75, 0.0, 0.625]

    detections = {"boxes": boxes, "mask_probabilities": probs, "image_size": (10, 30),
                  "scores": np.array([0.9, 0.8, 0.7], np.float32),
                  "classes": np.array([1, 2, 3])}
    ((key, out),) = list(EncodeMasksRle().process(("img", detections)))
    assert key == "img" and "mask_probabilities" not in out
    assert out["classes"].tolist() == [1, 3]
    assert out["scores"].tolist() == pytest.approx([0.9, 0.7])
    assert out["boxes"].tolist() == boxes[[0, 2]].tolist()
    assert [r["counts"] for r in out["segmentation"]] == [encoded[0].rle["counts"],
                                                         encoded[2].rle["counts"]]
    assert out["mask_area_fraction"].tolist() == [0.5, 1.0]
    assert out["mask_mean_score"].tolist() == [0.75, 0.625]
    assert out["area"].tolist() == [140, 8]
    assert out["mask_pixel_mean_score"].tolist() == [0.75, 0.625]


def test_grid_scores_count_cells_strictly_over_the_threshold():
    probs = np.zeros((3, 28, 28), np.float32)
    probs[0, 0, :3] = 0.75
    probs[0, 5, 5] = 0.625
    probs[0, 6:, :] = 0.5                            # at the threshold: not over it
    probs[1] = 0.5                                   # nothing over
    probs[2, 3, 4] = np.nextafter(np.float32(0.5), np.float32(1))  # just over
    means, fractions = grid_scores(probs)
    assert means.tolist() == [0.71875, 0.0, float(np.nextafter(np.float32(0.5), np.float32(1)))]
    assert fractions.tolist() == [4 / 784, 0.0, 1 / 784]
    assert grid_scores(probs, threshold=0.7)[1].tolist() == [3 / 784, 0.0, 0.0]
    assert [len(v) for v in grid_scores(np.zeros((0, 28, 28), np.float32))] == [0, 0]


def test_grid_scores_and_pixel_scores_differ_and_the_pasted_mask_decides_what_is_kept():
    probs = np.zeros((3, 28, 28), np.float32)
    probs[0, :14, :] = 1.0       # top half of the grid: 392 cells of 1.0
    probs[0, 14:, :] = 0.25      # bottom half below the threshold
    probs[1, 0, 0] = 0.9         # one corner cell over; a 1-pixel box samples cells 13 and 14
    probs[2, 0, 0] = 0.9         # over, but the box lies outside the image
    boxes = np.array([[0, 0, 7, 7], [2, 2, 3, 3], [50, 50, 60, 60]], np.float64)
    encoded = encode_masks_with_scores(probs, boxes, 7, 7)
    # Grid: (1.0, 392/784) whatever the box. Pixels: row r of the 7 x 7 box samples the grid
    # at v = 4r + 1.5, so rows 0..2 read cells of 1.0, row 3 reads cells 13 and 14 halfway
    # (0.625, on), rows 4..6 read 0.25 (off): 28 pixels, mean (21 + 7 * 0.625) / 28.
    assert (encoded[0].mean_score, encoded[0].area_fraction) == (1.0, 0.5)
    assert encoded[0].area == int(paste_masks(probs, boxes, 7, 7)[0].sum()) == 28
    assert encoded[0].pixel_mean_score == 0.90625
    assert [e.area for e in encoded[1:]] == [0, 0]
    assert [(e.mean_score, e.area_fraction) for e in encoded[1:]] == [
        (float(np.float32(0.9)), 1 / 784)] * 2
    detections = {"boxes": boxes, "mask_probabilities": probs, "image_size": (7, 7),
                  "slots": np.arange(3)}
    kept, dropped = encode_masks(detections)
    assert kept["slots"].tolist() == [0] and dropped == 2


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="mask_probs"):
        encode_masks_rle(np.zeros((2, 28, 14)), np.zeros((2, 4)), 5, 5)
    with pytest.raises(ValueError, match="boxes"):
        encode_masks_rle(np.zeros((2, 28, 28)), np.zeros((3, 4)), 5, 5)


def test_band_weights_bracket_the_threshold_crossing():
    low = np.array([0.4, 0.6, 0.5, 0.0])
    slope = np.array([0.2, -0.2, 0.0, 1e-3])
    band_from, band_to = _band_weights(low, slope, 0.5, 0.01)
    # Crossing at weight 0.5 either way, half width 0.01 / 0.2; flat cells are band
    # whole; far crossings clip to [-1, 2].
    np.testing.assert_allclose(band_from, [0.45, 0.45, -1.0, 2.0])
    np.testing.assert_allclose(band_to, [0.55, 0.55, 2.0, 2.0])
