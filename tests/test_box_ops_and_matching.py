import numpy as np
import tensorflow as tf

from model.ops import anchors, box_ops, matching


def test_iou_golden_numbers():
    a = tf.constant([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0]])
    b = tf.constant([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0], [20.0, 20.0, 30.0, 40.0]])
    np.testing.assert_allclose(box_ops.iou(a, b).numpy(),
                               [[1.0, 25.0 / 175.0, 0.0], [0.0, 0.0, 0.0]], rtol=1e-6)


def test_encode_decode_round_trip_and_golden_deltas():
    boxes = tf.constant([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 5.0, 5.0]])
    references = tf.constant([[12.0, 22.0, 28.0, 54.0], [1.0, 1.0, 3.0, 9.0]])
    weights = (10.0, 10.0, 5.0, 5.0)
    deltas = box_ops.encode(boxes, references, weights)
    np.testing.assert_allclose(deltas.numpy()[0], [0.0, 10.0 * 2.0 / 32.0, 5.0 * np.log(20 / 16),
                                                   5.0 * np.log(40 / 32)], rtol=1e-5)
    np.testing.assert_allclose(box_ops.decode(deltas, references, weights).numpy(), boxes.numpy(),
                               atol=1e-4)


def test_anchors_hand_computed():
    level = anchors.level_anchors(level=2, image_size=(8, 12), num_scales=1,
                                  aspect_ratios=(1.0, 4.0), anchor_size=2.0)
    assert level.shape == (2, 3, 2, 4)
    # Cell (0, 0): centre (2, 2); side 8 -> square [-2, -2, 6, 6]; ratio 4 -> 4 x 16.
    np.testing.assert_allclose(level[0, 0], [[-2, -2, 6, 6], [0, -6, 4, 10]])
    np.testing.assert_allclose(level[1, 2, 0], [2, 6, 10, 14])
    multi = anchors.multilevel_anchors(2, 3, (8, 12), 1, (1.0, 4.0), 2.0)
    assert multi[2].shape == (12, 4) and multi[3].shape == (4, 4)


def test_matcher_thresholds_low_quality_and_crowd():
    similarity = tf.constant([[[0.8, 0.1, 0.0],
                               [0.5, 0.2, 0.0],
                               [0.1, 0.4, 0.0],
                               [0.0, 0.1, 0.6],
                               [0.0, 0.0, 0.0]]])
    valid = tf.constant([[True, True, False]])  # third gt is a crowd region
    matched, labels = matching.match(similarity, valid, 0.7, 0.3,
                                     ignore_region=tf.constant([[False, False, True]]))
    # Anchor 2 is gt 1's best (0.4 < 0.7): foreground by low-quality matching.
    np.testing.assert_array_equal(labels.numpy(), [[1, -1, 1, -1, 0]])
    np.testing.assert_array_equal(matched.numpy()[0, :3], [0, 0, 1])


def test_balanced_sampler_counts():
    labels = tf.constant([[1] * 10 + [0] * 50 + [-1] * 40, [1] * 2 + [0] * 3 + [-1] * 95])
    indices, valid, foreground = matching.balanced_sample(labels, num_samples=16,
                                                          foreground_fraction=0.25, seed=1)
    assert indices.shape == (2, 16)
    np.testing.assert_array_equal(tf.reduce_sum(tf.cast(foreground, tf.int32), -1).numpy(), [4, 2])
    np.testing.assert_array_equal(tf.reduce_sum(tf.cast(valid, tf.int32), -1).numpy(), [16, 5])
    picked = tf.gather(labels, indices, batch_dims=1).numpy()
    assert (picked[valid.numpy() & foreground.numpy()] == 1).all()
    assert (picked[valid.numpy() & ~foreground.numpy()] == 0).all()
    for row in range(2):
        chosen = indices.numpy()[row][valid.numpy()[row]]
        assert len(set(chosen)) == len(chosen)  # no reference twice


def test_cell_centre_crop_boxes_sample_the_centres_of_the_cells_tiling_a_box():
    mask = np.zeros((1, 20, 20, 1), np.float32)
    mask[0, 4:12, 2:10] = 1.0  # rows 4..11, columns 2..9: the pixel box [4, 2, 12, 10]
    exact = box_ops.cell_centre_crop_boxes(tf.constant([[4.0, 2.0, 12.0, 10.0]]), 20, 20, 8)
    crop = tf.image.crop_and_resize(mask, exact, [0], [8, 8]).numpy()[0, ..., 0]
    np.testing.assert_allclose(crop, 1.0, atol=1e-5)
    # Twice as wide, reaching left of the image: 2-pixel cells centred at x = -5, -3, ..., 9.
    wider = box_ops.cell_centre_crop_boxes(tf.constant([[4.0, -6.0, 12.0, 10.0]]), 20, 20, 8)
    crop = tf.image.crop_and_resize(mask, wider, [0], [8, 8]).numpy()[0, ..., 0]
    np.testing.assert_allclose(crop, np.tile([0, 0, 0, 0, 1, 1, 1, 1], (8, 1)), atol=1e-5)
