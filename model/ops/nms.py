"""Batched non-maximum suppression with static output shapes."""
from typing import Tuple

import tensorflow as tf


def batched_nms(boxes: tf.Tensor, scores: tf.Tensor, max_output: int, iou_threshold: float,
                score_threshold: float = float("-inf")) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Greedy NMS per image.

    Args:
      boxes: float [B, N, 4] [ymin, xmin, ymax, xmax].
      scores: float [B, N].

    Returns:
      indices: int32 [B, max_output] into N, kept boxes in descending score
        order, 0 in unused slots.
      kept_scores: float [B, max_output], -1 in unused slots.
      num_valid: int32 [B] number of used slots.
    """
    indices, num_valid = tf.image.non_max_suppression_padded(
        boxes, scores, max_output_size=max_output, iou_threshold=iou_threshold,
        score_threshold=score_threshold, pad_to_max_output_size=True, sorted_input=False)
    slots = tf.range(max_output)[tf.newaxis, :]
    valid = slots < num_valid[:, tf.newaxis]
    indices = tf.where(valid, indices, 0)
    kept_scores = tf.where(valid, tf.gather(scores, indices, batch_dims=1), -1.0)
    return indices, kept_scores, num_valid
