import math

import numpy as np
import tensorflow as tf

from model import losses
from model.data.augment import identity_image_info
from model.ops.nms import batched_nms


def _numpy_nms(boxes, scores, threshold, limit):
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order and len(keep) < limit:
        best = order.pop(0)
        keep.append(best)
        def overlap(other):
            a, b = boxes[best], boxes[other]
            h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = h * w
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            return inter / union
        order = [o for o in order if overlap(o) <= threshold]
    return keep


def test_nms_matches_a_numpy_greedy_reference():
    rng = np.random.default_rng(4)
    corners = rng.uniform(0, 60, (3, 40, 2))
    sizes = rng.uniform(5, 30, (3, 40, 2))
    boxes = np.concatenate([corners, corners + sizes], -1).astype(np.float32)
    scores = rng.random((3, 40)).astype(np.float32)
    indices, kept_scores, num_valid = batched_nms(tf.constant(boxes), tf.constant(scores),
                                                  max_output=12, iou_threshold=0.4)
    for image in range(3):
        expected = _numpy_nms(boxes[image], scores[image], 0.4, 12)
        count = int(num_valid[image])
        assert count == len(expected)
        np.testing.assert_array_equal(indices[image, :count].numpy(), expected)
        assert (kept_scores[image, count:].numpy() == -1).all()


def test_focal_loss_by_hand():
    logits = tf.constant([[2.0, -1.0]])
    targets = tf.constant([[1.0, 0.0]])
    p1 = 1 / (1 + math.exp(-2.0))
    p0 = 1 / (1 + math.exp(1.0))
    expected = 0.25 * (1 - p1) ** 2 * -math.log(p1) + 0.75 * p0 ** 2 * -math.log(1 - p0)
    value = losses.sigmoid_focal(logits, targets, tf.ones_like(targets), 1.0, alpha=0.25, gamma=2.0)
    assert abs(float(value) - expected) < 1e-6


def test_huber_and_empty_inputs_are_finite_zero():
    predictions = tf.constant([[0.5, 3.0, 0.0, 0.0]])
    targets = tf.zeros([1, 4])
    value = losses.huber(predictions, targets, tf.ones([1]), 1.0, delta=1.0)
    assert abs(float(value) - (0.125 + 2.5)) < 1e-6
    empty = losses.huber(tf.zeros([0, 4]), tf.zeros([0, 4]), tf.zeros([0]), 0, delta=1.0)
    empty_ce = losses.softmax_cross_entropy(tf.zeros([0, 3]), tf.zeros([0], tf.int32),
                                            tf.zeros([0]), 0)
    assert float(empty) == 0.0 and float(empty_ce) == 0.0


def test_detect_gives_the_same_detections_with_either_nms():
    from model.modeling.postprocess import (DetectionSettings, combined_class_nms, detect,
                                            padded_class_nms)
    rng = np.random.default_rng(8)
    rois = np.concatenate([rng.uniform(0, 80, (2, 60, 2)), rng.uniform(90, 120, (2, 60, 2))], -1)
    logits = tf.constant(rng.normal(0, 2, (2, 60, 5)), tf.float32)
    deltas = tf.constant(rng.normal(0, 0.5, (2, 60, 5, 4)), tf.float32)
    info = identity_image_info(128, batch=2)
    results = [detect(logits, deltas, tf.constant(rois, tf.float32), info,
                      DetectionSettings(60, 0.05, 0.5, 15), class_nms)
               for class_nms in (padded_class_nms, combined_class_nms)]
    padded, combined = results
    np.testing.assert_array_equal(padded["num_detections"].numpy(),
                                  combined["num_detections"].numpy())
    assert int(padded["num_detections"][0]) > 3
    np.testing.assert_allclose(padded["scores"].numpy(), combined["scores"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(padded["classes"].numpy(), combined["classes"].numpy())
    np.testing.assert_allclose(padded["boxes"].numpy(), combined["boxes"].numpy(), atol=1e-4)
