"""Region proposal network: anchor targets for training, and proposals.

Anchors and boxes are [ymin, xmin, ymax, xmax] in pixels of the padded input.
"""
import dataclasses
from typing import Dict

import numpy as np
import tensorflow as tf

from model.ops import box_ops, matching
from model.ops.nms import batched_nms


@dataclasses.dataclass(frozen=True)
class AnchorSampler:
    """Which anchors train the RPN: IoU thresholds and a balanced sample per image."""
    foreground_iou: float
    background_iou: float
    samples_per_image: int
    foreground_fraction: float


@dataclasses.dataclass(frozen=True)
class ProposalSettings:
    """How many proposals survive: top-k per level before NMS, then the best overall."""
    pre_nms_top_k: int
    post_nms_top_k: int
    nms_iou: float
    min_box_size: float = 0.0  # pixels; smaller boxes are dropped (0: keep all)
    style: str = "default"  # or "tpu" (``RpnConfig.proposal_style``)
    plus_one: bool = False  # tensorflow/tpu's pixel box convention (``box_coding``)


def flatten_levels(per_level: Dict[int, tf.Tensor], last_dim: int) -> tf.Tensor:
    """{level: [B, H, W, A * last_dim]} -> [B, sum(H * W * A), last_dim] in level order."""
    return tf.concat([tf.reshape(value, [-1, int(np.prod(value.shape[1:])) // last_dim, last_dim])
                      for _, value in sorted(per_level.items())], axis=1)


def scatter_flags(indices: tf.Tensor, is_valid: tf.Tensor, size: int) -> tf.Tensor:
    """float [B, size]: 1 at the valid sampled ``indices`` [B, K] (distinct), 0 elsewhere."""
    batch_index = tf.broadcast_to(tf.range(tf.shape(indices)[0])[:, tf.newaxis], tf.shape(indices))
    return tf.scatter_nd(tf.stack([batch_index, indices], axis=-1), tf.cast(is_valid, tf.float32),
                         tf.stack([tf.shape(indices)[0], size]))


def anchor_targets(anchors: tf.Tensor, gt_boxes: tf.Tensor, gt_classes: tf.Tensor,
                   gt_is_crowd: tf.Tensor, sampler: AnchorSampler) -> Dict[str, tf.Tensor]:
    """Objectness and box targets of every anchor.

    Args:
      anchors: [N, 4]; gt_boxes [B, M, 4] (-1 padded); gt_classes [B, M] (-1 padded);
      gt_is_crowd: bool [B, M].

    Returns:
      score_targets: float [B, N] 1 foreground, 0 otherwise.
      box_targets: float [B, N, 4] encoded matched boxes.
      score_weights: float [B, N] 1 for the sampled anchors.
      box_weights: float [B, N] 1 for the sampled foreground anchors.
      num_sampled: float [] sampled anchors in the batch.
    """
    batch = tf.shape(gt_boxes)[0]
    tiled = tf.tile(anchors[tf.newaxis], [batch, 1, 1])
    similarity = box_ops.iou(tiled, gt_boxes)
    is_object = gt_classes > 0
    matched, labels = matching.match(
        similarity, tf.logical_and(is_object, tf.logical_not(gt_is_crowd)),
        sampler.foreground_iou, sampler.background_iou, low_quality_matches=True,
        ignore_region=tf.logical_and(is_object, gt_is_crowd))
    indices, is_valid, _ = matching.balanced_sample(labels, sampler.samples_per_image,
                                                    sampler.foreground_fraction)
    sampled = scatter_flags(indices, is_valid, anchors.shape[0])
    foreground = tf.cast(tf.equal(labels, matching.FOREGROUND), tf.float32)
    matched_boxes = tf.gather(gt_boxes, matched, batch_dims=1)
    return {
        "score_targets": foreground,
        "box_targets": box_ops.encode(matched_boxes, tiled),
        "score_weights": sampled,
        "box_weights": sampled * foreground,
        "num_sampled": tf.reduce_sum(sampled),
    }


def generate_proposals(scores: Dict[int, tf.Tensor], deltas: Dict[int, tf.Tensor],
                       anchors: Dict[int, tf.Tensor], image_info: tf.Tensor,
                       settings: ProposalSettings) -> Dict[str, tf.Tensor]:
    """Top-scoring decoded anchors per level, NMS per level, then the best overall.

    Args:
      scores: {level: [B, H, W, A]} logits; deltas: {level: [B, H, W, 4A]};
      anchors: {level: [H * W * A, 4]}; image_info: [B, 4, 2] (row 1: scaled size).

    Returns (post_nms_top_k from ``settings``):
      rois: float [B, post_nms_top_k, 4] (zero boxes in unused slots).
      roi_scores: float [B, post_nms_top_k] sigmoid scores (0 in unused slots).
    """
    if settings.style == "tpu":
        return _tpu_proposals(scores, deltas, anchors, image_info, settings)
    if settings.style != "default":
        raise ValueError(f"unknown proposal style {settings.style!r}")
    pre_nms_top_k, post_nms_top_k = settings.pre_nms_top_k, settings.post_nms_top_k
    valid_height = image_info[:, 1, 0][:, tf.newaxis]
    valid_width = image_info[:, 1, 1][:, tf.newaxis]
    all_boxes, all_scores = [], []
    for level in sorted(scores):
        count = int(np.prod(scores[level].shape[1:]))  # static: H * W * A
        level_scores = tf.reshape(tf.cast(scores[level], tf.float32), [-1, count])
        level_deltas = tf.reshape(tf.cast(deltas[level], tf.float32), [-1, count, 4])
        k = min(pre_nms_top_k, count)
        top_scores, top_indices = tf.math.top_k(level_scores, k=k)
        boxes = box_ops.decode(tf.gather(level_deltas, top_indices, batch_dims=1),
                               tf.gather(anchors[level], top_indices))
        boxes = box_ops.clip(boxes, valid_height, valid_width)
        probabilities = tf.sigmoid(top_scores)
        if settings.min_box_size > 0:
            big = tf.logical_and(boxes[..., 2] - boxes[..., 0] >= settings.min_box_size,
                                 boxes[..., 3] - boxes[..., 1] >= settings.min_box_size)
            probabilities = tf.where(big, probabilities, -1.0)
        kept, kept_scores, _ = batched_nms(boxes, probabilities, k, settings.nms_iou,
                                           score_threshold=0.0)
        all_boxes.append(tf.gather(boxes, kept, batch_dims=1))
        all_scores.append(kept_scores)
    boxes = tf.concat(all_boxes, axis=1)
    candidate_scores = tf.concat(all_scores, axis=1)
    k = min(post_nms_top_k, candidate_scores.shape[1])
    top_scores, top_indices = tf.math.top_k(candidate_scores, k=k)
    rois = tf.gather(boxes, top_indices, batch_dims=1)
    used = top_scores > 0.0
    rois = tf.where(used[..., tf.newaxis], rois, 0.0)
    if k < post_nms_top_k:
        rois = tf.pad(rois, [[0, 0], [0, post_nms_top_k - k], [0, 0]])
        top_scores = tf.pad(top_scores, [[0, 0], [0, post_nms_top_k - k]])
    return {"rois": tf.stop_gradient(rois),
            "roi_scores": tf.stop_gradient(tf.maximum(top_scores, 0.0))}


def _tpu_filter_small(boxes, probabilities, valid_height, valid_width, min_size):
    """tensorflow/tpu's box_utils.filter_boxes: zero the boxes (and scores) whose sides
    (+1 convention) are not above max(min_size, 1) or whose centre is outside the image."""
    height = boxes[..., 2] - boxes[..., 0] + 1.0
    width = boxes[..., 3] - boxes[..., 1] + 1.0
    centre_y, centre_x = boxes[..., 0] + 0.5 * height, boxes[..., 1] + 0.5 * width
    size = max(min_size, 1.0)
    keep = tf.logical_and(tf.logical_and(height > size, width > size),
                          tf.logical_and(tf.logical_and(centre_y > 0.0, centre_y < valid_height),
                                         tf.logical_and(centre_x > 0.0, centre_x < valid_width)))
    return (boxes * tf.cast(keep, boxes.dtype)[..., tf.newaxis],
            tf.where(keep, probabilities, 0.0))


def _tpu_proposals(scores, deltas, anchors, image_info, settings: ProposalSettings
                   ) -> Dict[str, tf.Tensor]:
    """tensorflow/tpu's multilevel_propose_rois: per level sigmoid, decode and clip every
    anchor, top pre_nms_top_k, NMS keeping at most post_nms_top_k (a box with no positive
    coordinate is never kept), then the overall top post_nms_top_k of all levels."""
    valid_height = image_info[:, 1, 0][:, tf.newaxis]
    valid_width = image_info[:, 1, 1][:, tf.newaxis]
    all_boxes, all_scores = [], []
    for level in sorted(scores):
        count = int(np.prod(scores[level].shape[1:]))
        probabilities = tf.sigmoid(tf.reshape(tf.cast(scores[level], tf.float32), [-1, count]))
        level_deltas = tf.reshape(tf.cast(deltas[level], tf.float32), [-1, count, 4])
        boxes = box_ops.decode(level_deltas, anchors[level][tf.newaxis],
                               plus_one=settings.plus_one)
        boxes = box_ops.clip(boxes, valid_height, valid_width, plus_one=settings.plus_one)
        if settings.min_box_size > 0:
            boxes, probabilities = _tpu_filter_small(boxes, probabilities, valid_height,
                                                     valid_width, settings.min_box_size)
        top_scores, top_indices = tf.math.top_k(probabilities, k=min(settings.pre_nms_top_k,
                                                                    count))
        top_boxes = tf.gather(boxes, top_indices, batch_dims=1)
        # tensorflow/tpu's sorted_non_max_suppression_padded is the same tiled algorithm
        # on the boxes as they are (inverted ones included) in the top-k order.
        kept, num_valid = tf.image.non_max_suppression_padded(
            top_boxes, top_scores, min(settings.post_nms_top_k, count), settings.nms_iou,
            pad_to_max_output_size=True, sorted_input=True, canonicalized_coordinates=True)
        valid = tf.range(kept.shape[1])[tf.newaxis, :] < num_valid[:, tf.newaxis]
        all_boxes.append(tf.where(valid[..., tf.newaxis],
                                  tf.gather(top_boxes, kept, batch_dims=1), 0.0))
        all_scores.append(tf.where(valid, tf.gather(top_scores, kept, batch_dims=1), -1.0))
    boxes = tf.concat(all_boxes, axis=1)
    candidate_scores = tf.concat(all_scores, axis=1)
    post_nms_top_k = settings.post_nms_top_k
    k = min(post_nms_top_k, candidate_scores.shape[1])
    top_scores, top_indices = tf.math.top_k(candidate_scores, k=k)
    rois = tf.gather(boxes, top_indices, batch_dims=1)
    if k < post_nms_top_k:
        rois = tf.pad(rois, [[0, 0], [0, post_nms_top_k - k], [0, 0]])
        top_scores = tf.pad(top_scores, [[0, 0], [0, post_nms_top_k - k]], constant_values=-1.0)
    return {"rois": tf.stop_gradient(rois),
            "roi_scores": tf.stop_gradient(tf.maximum(top_scores, 0.0))}
