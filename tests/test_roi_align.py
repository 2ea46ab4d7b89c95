import numpy as np
import tensorflow as tf

import pytest

from model.ops.roi_align import assign_levels, multilevel_roi_align, multilevel_roi_align_by_crops


def _bilinear(feature, y, x):
    height, width = feature.shape[:2]
    if y < -1 or y > height or x < -1 or x > width:
        return np.zeros(feature.shape[-1])
    y, x = min(max(y, 0), height - 1), min(max(x, 0), width - 1)
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
    fy, fx = y - y0, x - x0
    return ((1 - fy) * (1 - fx) * feature[y0, x0] + (1 - fy) * fx * feature[y0, x1]
            + fy * (1 - fx) * feature[y1, x0] + fy * fx * feature[y1, x1])


def _reference(feature, box, stride, size, ratio):
    """Straightforward aligned RoIAlign of one box on one level (loops)."""
    ymin, xmin, ymax, xmax = np.asarray(box) / stride
    bin_h, bin_w = (ymax - ymin) / size, (xmax - xmin) / size
    out = np.zeros((size, size, feature.shape[-1]))
    for i in range(size):
        for j in range(size):
            total = 0
            for a in range(ratio):
                for b in range(ratio):
                    y = ymin + (i + (a + 0.5) / ratio) * bin_h - 0.5
                    x = xmin + (j + (b + 0.5) / ratio) * bin_w - 0.5
                    total = total + _bilinear(feature, y, x)
            out[i, j] = total / ratio ** 2
    return out


@pytest.mark.parametrize("roi_align", [multilevel_roi_align, multilevel_roi_align_by_crops])
def test_roi_align_matches_a_loop_reference_on_each_level(roi_align):
    rng = np.random.default_rng(0)
    features = {2: rng.normal(size=(2, 16, 16, 3)).astype(np.float32),
                3: rng.normal(size=(2, 8, 8, 3)).astype(np.float32)}
    boxes = np.array([[[3.0, 5.0, 20.0, 30.0], [0.0, 0.0, 128.0, 128.0], [50.0, 40.0, 70.0, 66.0]],
                      [[10.5, 2.25, 13.0, 9.0], [-4.0, -4.0, 120.0, 110.0], [30.0, 30.0, 33.0, 34.0]]],
                     np.float32)
    levels = assign_levels(tf.constant(boxes), 2, 3).numpy()
    assert set(levels.ravel()) == {2, 3}
    pooled = roi_align({k: tf.constant(v) for k, v in features.items()},
                                  tf.constant(boxes), output_size=4, sampling_ratio=2).numpy()
    assert pooled.shape == (2, 3, 4, 4, 3)
    for b in range(2):
        for k in range(3):
            level = levels[b, k]
            expected = _reference(features[level][b], boxes[b, k], 2 ** level, 4, 2)
            np.testing.assert_allclose(pooled[b, k], expected, atol=1e-5)


def test_level_assignment():
    boxes = tf.constant([[[0, 0, 224, 224], [0, 0, 112, 112], [0, 0, 10, 10], [0, 0, 2000, 2000]]],
                        tf.float32)
    np.testing.assert_array_equal(assign_levels(boxes, 2, 5).numpy(), [[4, 3, 2, 5]])
