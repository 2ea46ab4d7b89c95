"""Detections from second-stage outputs: class-specific decoding, score threshold,
class-specific NMS, and the best ``max_detections`` per image (static shapes).

Two class-specific NMS implementations give the same detections:
``padded_class_nms`` (padded NMS per image and class, static shapes, for TPUs) and
``combined_class_nms`` (TensorFlow's combined NMS kernel, faster on CPUs and GPUs).
"""
import dataclasses
from typing import Callable, Dict

import tensorflow as tf

from model.modeling.roi_targets import BOX_WEIGHTS
from model.ops import box_ops
from model.ops.nms import batched_nms


@dataclasses.dataclass(frozen=True)
class DetectionSettings:
    pre_nms_top_k: int  # candidates per (image, class) entering NMS
    score_threshold: float  # class probability below which a box is dropped
    nms_iou: float
    max_detections: int  # D, detections per image
    plus_one: bool = False  # tensorflow/tpu's pixel box convention (``box_coding``)


# (boxes [B, R, N-1, 4], probabilities [B, R, N-1], settings) -> detections (see ``detect``).
ClassNms = Callable[[tf.Tensor, tf.Tensor, DetectionSettings], Dict[str, tf.Tensor]]


def detect(class_logits: tf.Tensor, box_deltas: tf.Tensor, rois: tf.Tensor, image_info: tf.Tensor,
           settings: DetectionSettings, class_nms: ClassNms) -> Dict[str, tf.Tensor]:
    """
    Args:
      class_logits: [B, R, N]; box_deltas: [B, R, N, 4]; rois: [B, R, 4] pixels.
      image_info: [B, 4, 2] (row 1: scaled size, to clip to).
      class_nms: ``padded_class_nms`` or ``combined_class_nms``.

    Returns (D = settings.max_detections), best first:
      boxes [B, D, 4] input pixels; classes int32 [B, D] model classes 1..N-1;
      scores [B, D] (0 in unused slots); num_detections int32 [B].
    """
    num_classes = class_logits.shape[2]
    probabilities = tf.nn.softmax(tf.cast(class_logits, tf.float32))[..., 1:]  # [B, R, N-1]
    references = tf.tile(rois[:, :, tf.newaxis, :], [1, 1, num_classes - 1, 1])
    boxes = box_ops.decode(tf.cast(box_deltas, tf.float32)[:, :, 1:, :], references, BOX_WEIGHTS,
                           plus_one=settings.plus_one)
    boxes = box_ops.clip(boxes, image_info[:, 1, 0][:, tf.newaxis, tf.newaxis],
                         image_info[:, 1, 1][:, tf.newaxis, tf.newaxis], plus_one=settings.plus_one)
    return class_nms(boxes, probabilities, settings)


def padded_class_nms(boxes: tf.Tensor, probabilities: tf.Tensor, settings: DetectionSettings
                     ) -> Dict[str, tf.Tensor]:
    """Class-specific NMS with static shapes: one padded NMS problem per (image, class)."""
    batch, num_rois, foreground_classes = (tf.shape(boxes)[0], boxes.shape[1], boxes.shape[2])
    max_detections = settings.max_detections
    # Fold classes into the batch.
    per_class_boxes = tf.reshape(tf.transpose(boxes, [0, 2, 1, 3]), [-1, num_rois, 4])
    per_class_scores = tf.reshape(tf.transpose(probabilities, [0, 2, 1]), [-1, num_rois])
    k = min(settings.pre_nms_top_k, num_rois)
    top_scores, top_indices = tf.math.top_k(per_class_scores, k=k)
    top_boxes = tf.gather(per_class_boxes, top_indices, batch_dims=1)
    per_class_limit = min(max_detections, k)
    kept, kept_scores, _ = batched_nms(canonical_like_one_problem(top_boxes, top_scores,
                                                                  settings.score_threshold),
                                       top_scores, per_class_limit, settings.nms_iou,
                                       score_threshold=settings.score_threshold)
    kept_boxes = tf.gather(top_boxes, kept, batch_dims=1)
    kept_rois = tf.gather(top_indices, kept, batch_dims=1)
    classes = tf.reshape(tf.range(1, foreground_classes + 1), [1, foreground_classes, 1])
    classes = tf.reshape(tf.broadcast_to(classes, [batch, foreground_classes, per_class_limit]),
                         [batch, -1])
    all_scores = tf.reshape(kept_scores, [batch, -1])
    all_boxes = tf.reshape(kept_boxes, [batch, -1, 4])
    all_rois = tf.reshape(kept_rois, [batch, -1])
    shortfall = max_detections - foreground_classes * per_class_limit
    if shortfall > 0:  # fewer candidates than slots: pad with empty ones
        all_scores = tf.pad(all_scores, [[0, 0], [0, shortfall]], constant_values=-1.0)
        all_boxes = tf.pad(all_boxes, [[0, 0], [0, shortfall], [0, 0]])
        classes = tf.pad(classes, [[0, 0], [0, shortfall]])
        all_rois = tf.pad(all_rois, [[0, 0], [0, shortfall]])
    final_scores, order = tf.math.top_k(all_scores, k=max_detections)
    valid = final_scores > 0.0
    return {
        "boxes": tf.where(valid[..., tf.newaxis], tf.gather(all_boxes, order, batch_dims=1), 0.0),
        "classes": tf.where(valid, tf.gather(classes, order, batch_dims=1), 0),
        "scores": tf.maximum(final_scores, 0.0),
        "num_detections": tf.reduce_sum(tf.cast(valid, tf.int32), axis=-1),
        # int32 [B, D]: the RoI each detection comes from (0 in unused slots).
        "roi_indices": tf.where(valid, tf.gather(all_rois, order, batch_dims=1), 0),
    }


def canonical_like_one_problem(boxes: tf.Tensor, scores: tf.Tensor, score_threshold: float
                               ) -> tf.Tensor:
    """Boxes [P, K, 4] of P NMS problems as ``tf.image.non_max_suppression_padded`` orders
    their corners when called on each problem alone (as tensorflow/tpu's post-processing
    does, per image and class): it swaps ymin/ymax (xmin/xmax) of the whole problem when
    its first box, zeroed if its score is not above the threshold, has them inverted. Called
    on all problems at once it would decide for all by the first problem's first box.
    Boxes with ymin <= ymax and xmin <= xmax (every box without pixel_plus_one coding) are
    returned unchanged."""
    first = boxes[:, 0, :] * tf.cast(scores[:, 0] > score_threshold, boxes.dtype)[:, tf.newaxis]
    swap_y = (first[:, 0] > first[:, 2])[:, tf.newaxis]
    swap_x = (first[:, 1] > first[:, 3])[:, tf.newaxis]
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack([tf.where(swap_y, ymax, ymin), tf.where(swap_x, xmax, xmin),
                     tf.where(swap_y, ymin, ymax), tf.where(swap_x, xmin, xmax)], axis=-1)


def combined_class_nms(boxes: tf.Tensor, probabilities: tf.Tensor, settings: DetectionSettings
                       ) -> Dict[str, tf.Tensor]:
    """Class-specific NMS by TensorFlow's combined NMS kernel (dynamic inside, not for TPUs)."""
    max_detections = settings.max_detections
    per_class_limit = min(settings.pre_nms_top_k, boxes.shape[1], max_detections)
    nmsed_boxes, scores, classes, valid = tf.image.combined_non_max_suppression(
        boxes, probabilities, max_output_size_per_class=per_class_limit,
        max_total_size=max_detections, iou_threshold=settings.nms_iou,
        score_threshold=settings.score_threshold, pad_per_class=False, clip_boxes=False)
    used = tf.range(max_detections)[tf.newaxis, :] < valid[:, tf.newaxis]
    used = tf.logical_and(used, scores > 0.0)
    return {
        "boxes": tf.where(used[..., tf.newaxis], nmsed_boxes, 0.0),
        "classes": tf.where(used, tf.cast(classes, tf.int32) + 1, 0),
        "scores": tf.where(used, scores, 0.0),
        "num_detections": tf.reduce_sum(tf.cast(used, tf.int32), axis=-1),
    }
