"""Second-stage training targets: RoI sampling, then mask and attribute targets.

Boxes are [ymin, xmin, ymax, xmax] in input pixels; gt tensors are padded with
-1 (classes, boxes) as the input parser writes them.
"""
import dataclasses
from typing import Dict

import tensorflow as tf

from model.ops import box_ops, matching

BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


@dataclasses.dataclass(frozen=True)
class RoiSampler:
    """Which RoIs train the box head: foreground at IoU >= foreground_iou, background
    in [background_iou_low, background_iou_high), a balanced sample per image."""
    samples_per_image: int
    foreground_fraction: float
    foreground_iou: float
    background_iou_high: float
    background_iou_low: float
    plus_one: bool = False  # box targets in tensorflow/tpu's pixel convention (box_coding)


@dataclasses.dataclass(frozen=True)
class MaskSampler:
    """How many foreground RoIs per image train the mask and attribute heads, and the
    side of the mask targets (pixels of the mask head's output)."""
    samples_per_image: int
    mask_size: int


def sample_rois(rois: tf.Tensor, gt_boxes: tf.Tensor, gt_classes: tf.Tensor,
                gt_is_crowd: tf.Tensor, sampler: RoiSampler) -> Dict[str, tf.Tensor]:
    """Samples RoIs (proposals plus the ground-truth boxes themselves) with targets.

    Returns (K = sampler.samples_per_image), foreground slots first:
      rois [B, K, 4]; class_targets int32 [B, K] (0 background);
      box_targets [B, K, 4] (encoded with BOX_WEIGHTS); matched_gt int32 [B, K];
      is_foreground, is_valid bool [B, K].
    """
    candidates = tf.concat([rois, tf.maximum(gt_boxes, 0.0)], axis=1)
    is_object = gt_classes > 0
    candidate_ok = tf.concat([tf.ones(tf.shape(rois)[:2], tf.bool), is_object], axis=1)
    similarity = box_ops.iou(candidates, gt_boxes)
    matched, labels = matching.match(
        similarity, tf.logical_and(is_object, tf.logical_not(gt_is_crowd)),
        sampler.foreground_iou, sampler.background_iou_high, low_quality_matches=False,
        ignore_region=tf.logical_and(is_object, gt_is_crowd))
    best = tf.reduce_max(tf.where(is_object[:, tf.newaxis, :], similarity, 0.0), axis=-1)
    too_far = tf.logical_and(tf.equal(labels, matching.BACKGROUND),
                             best < sampler.background_iou_low)
    labels = tf.where(too_far, matching.IGNORED, labels)
    labels = tf.where(candidate_ok, labels, matching.IGNORED)
    indices, is_valid, is_foreground = matching.balanced_sample(
        labels, sampler.samples_per_image, sampler.foreground_fraction)
    take = lambda values: tf.gather(values, indices, batch_dims=1)  # noqa: E731
    sampled_rois, sampled_matched = take(candidates), take(matched)
    matched_boxes = tf.gather(gt_boxes, sampled_matched, batch_dims=1)
    matched_classes = tf.gather(gt_classes, sampled_matched, batch_dims=1)
    return {
        "rois": tf.stop_gradient(sampled_rois),
        "class_targets": tf.where(is_foreground, matched_classes, 0),
        "box_targets": box_ops.encode(matched_boxes, sampled_rois, BOX_WEIGHTS,
                                      plus_one=sampler.plus_one),
        "matched_gt": sampled_matched,
        "is_foreground": is_foreground,
        "is_valid": is_valid,
    }


def sample_mask_and_attribute_targets(sampled: Dict[str, tf.Tensor], gt_boxes: tf.Tensor,
                                      gt_masks: tf.Tensor, gt_attributes: tf.Tensor,
                                      sampler: MaskSampler) -> Dict[str, tf.Tensor]:
    """Mask and attribute targets for the first ``sampler.samples_per_image`` sampled
    RoIs, which are the foreground ones (``sample_rois`` puts foreground first).

    Args:
      gt_masks: [B, M, S, S] masks of each gt box (crop of the box).
      gt_attributes: [B, M, T] multi-hot.

    Returns (R = sampler.samples_per_image, mask_size = sampler.mask_size):
      rois [B, R, 4]; classes int32 [B, R]; weights float [B, R] (1 for foreground);
      mask_targets [B, R, mask_size, mask_size] 0/1; attribute_targets [B, R, T].
    """
    count, mask_size = min(sampler.samples_per_image, sampled["rois"].shape[1]), sampler.mask_size
    rois = sampled["rois"][:, :count]
    matched = sampled["matched_gt"][:, :count]
    weights = tf.cast(tf.logical_and(sampled["is_foreground"], sampled["is_valid"])[:, :count],
                      tf.float32)
    gt_box = tf.gather(gt_boxes, matched, batch_dims=1)
    gt_mask = tf.gather(gt_masks, matched, batch_dims=1)  # [B, R, S, S]
    # The RoI in the coordinates of its gt box's mask crop (0..1 across the box).
    height = tf.maximum(gt_box[..., 2] - gt_box[..., 0], 1e-6)
    width = tf.maximum(gt_box[..., 3] - gt_box[..., 1], 1e-6)
    relative = tf.stack([(rois[..., 0] - gt_box[..., 0]) / height,
                         (rois[..., 1] - gt_box[..., 1]) / width,
                         (rois[..., 2] - gt_box[..., 0]) / height,
                         (rois[..., 3] - gt_box[..., 1]) / width], axis=-1)
    batch, crop = tf.shape(gt_mask)[0], gt_mask.shape[-1]
    flat_masks = tf.reshape(gt_mask, [-1, crop, crop, 1])
    # The crop's S cells tile the gt box; sample the RoI's mask cells at their centres.
    in_crop_cells = box_ops.cell_centre_crop_boxes(relative * float(crop), crop, crop, mask_size)
    crops = tf.image.crop_and_resize(flat_masks, tf.reshape(in_crop_cells, [-1, 4]),
                                     tf.range(tf.shape(flat_masks)[0]), [mask_size, mask_size])
    targets = tf.reshape(tf.cast(crops[..., 0] >= 0.5, tf.float32),
                         [batch, count, mask_size, mask_size])
    return {
        "rois": rois,
        "classes": sampled["class_targets"][:, :count],
        "weights": weights,
        "mask_targets": tf.stop_gradient(targets),
        "attribute_targets": tf.gather(gt_attributes, matched, batch_dims=1),
    }
