"""Attribute-Mask R-CNN: the top-level call reads as the algorithm.

  features = FPN(backbone(images))
  proposals = RPN(features)
  training:  sample RoIs -> box branch; sample foreground RoIs -> mask and attribute branches
  inference: box branch -> detections -> mask and attribute branches on the detections

Inputs: images [B, S, S, 3] (the parser's normalised, padded images),
image_info [B, 4, 2], and for training the parser's labels (gt_boxes, gt_classes,
gt_is_crowd, gt_masks, gt_attributes). Every branch returns a dict; losses are
computed from the outputs by ``model.maskrcnn_losses``.
"""
from typing import Dict, Optional

import tensorflow as tf

from model.config.schema import ModelConfig
from model.modeling import postprocess, roi_targets, rpn
from model.modeling.factory import build_parts
from model.ops.anchors import multilevel_anchors
from model.ops.roi_align import multilevel_roi_align, multilevel_roi_align_by_crops


class AttributeMaskRCNN(tf.keras.Model):
    def __init__(self, config: ModelConfig, image_size: int, **kwargs):
        super().__init__(**kwargs)
        self._config = config
        previous = tf.keras.mixed_precision.global_policy()
        tf.keras.mixed_precision.set_global_policy("mixed_bfloat16" if config.bfloat16
                                                   else "float32")
        try:
            parts = build_parts(config)
        finally:
            tf.keras.mixed_precision.set_global_policy(previous)
        self.backbone = parts["backbone"]
        self.fpn = parts["fpn"]
        self.rpn_head = parts["rpn_head"]
        self.box_head = parts["box_head"]
        self.mask_head = parts["mask_head"]
        self.attribute_head = parts.get("attribute_head")
        anchor = config.anchor
        self._anchors = multilevel_anchors(config.fpn.min_level, config.fpn.max_level,
                                           (image_size, image_size), anchor.num_scales,
                                           anchor.aspect_ratios, anchor.anchor_size)

    def call(self, images: tf.Tensor, image_info: tf.Tensor,
             groundtruth: Optional[Dict[str, tf.Tensor]] = None, training: bool = False
             ) -> Dict[str, Dict[str, tf.Tensor]]:
        features = self.fpn(self.backbone(images, training=training))
        features = {level: tf.cast(value, tf.float32) for level, value in features.items()}
        rpn_outputs = self.rpn_head(features, training=training)
        proposals = self._proposals(rpn_outputs, image_info, training)
        if training:
            return self._train_branches(features, rpn_outputs, proposals, groundtruth)
        return self._inference_branches(features, proposals, image_info)

    def _proposals(self, rpn_outputs, image_info, training) -> Dict[str, tf.Tensor]:
        settings = self._config.rpn
        return rpn.generate_proposals(
            rpn_outputs["scores"], rpn_outputs["boxes"], self._anchors, image_info,
            settings.train_pre_nms_top_k if training else settings.test_pre_nms_top_k,
            settings.train_post_nms_top_k if training else settings.test_post_nms_top_k,
            settings.nms_iou, settings.min_box_size)

    def _train_branches(self, features, rpn_outputs, proposals, gt) -> Dict[str, Dict]:
        config = self._config
        anchors = tf.concat([self._anchors[level] for level in sorted(self._anchors)], axis=0)
        rpn_branch = {
            "score_logits": rpn.flatten_levels(rpn_outputs["scores"], 1)[..., 0],
            "box_deltas": rpn.flatten_levels(rpn_outputs["boxes"], 4),
            **rpn.anchor_targets(anchors, gt["gt_boxes"], gt["gt_classes"], gt["gt_is_crowd"],
                                 config.rpn.foreground_iou, config.rpn.background_iou,
                                 config.rpn.samples_per_image, config.rpn.foreground_fraction),
        }
        sampler = config.roi_sampler
        sampled = roi_targets.sample_rois(
            proposals["rois"], gt["gt_boxes"], gt["gt_classes"], gt["gt_is_crowd"],
            sampler.samples_per_image, sampler.foreground_fraction, sampler.foreground_iou,
            sampler.background_iou_high, sampler.background_iou_low)
        box_branch = {**self._box_branch(features, sampled["rois"], True), **sampled}
        masks = roi_targets.sample_masks(sampled, gt["gt_boxes"], gt["gt_masks"],
                                         gt["gt_attributes"], config.mask_head.samples_per_image,
                                         config.mask_head.mask_size)
        mask_features = self._roi_features(features, masks["rois"], config.mask_head.roi_size)
        outputs = {"rpn": rpn_branch, "box": box_branch,
                   "mask": {**self._mask_branch(mask_features, True), **masks}}
        if self.attribute_head is not None:
            outputs["attribute"] = {**self._attribute_branch(mask_features, True), **masks}
        return outputs

    def _inference_branches(self, features, proposals, image_info) -> Dict[str, Dict]:
        settings = self._config.postprocess
        box_outputs = self._box_branch(features, proposals["rois"], False)
        detections = postprocess.detect(
            box_outputs["class_logits"], box_outputs["box_deltas"], proposals["rois"], image_info,
            settings.pre_nms_top_k, settings.score_threshold, settings.nms_iou,
            settings.max_detections, self._config.static_ops_for_tpu)
        mask_features = self._roi_features(features, detections["boxes"],
                                           self._config.mask_head.roi_size)
        mask_logits = self._mask_branch(mask_features, False)["mask_logits"]
        detections["mask_probabilities"] = tf.sigmoid(class_channel(mask_logits,
                                                                     detections["classes"]))
        if self.attribute_head is not None:
            attribute_logits = self._attribute_branch(mask_features, False)["attribute_logits"]
            detections["attribute_probabilities"] = tf.sigmoid(attribute_logits)
        return {"detections": detections, "proposals": proposals}

    def _roi_features(self, features, boxes, size: int) -> tf.Tensor:
        if self._config.static_ops_for_tpu:
            return multilevel_roi_align(features, boxes, size)
        return multilevel_roi_align_by_crops(features, boxes, size)

    def _box_branch(self, features, rois, training) -> Dict[str, tf.Tensor]:
        roi_features = self._roi_features(features, rois, self._config.box_head.roi_size)
        outputs = self.box_head(roi_features, training=training)
        return {key: tf.cast(value, tf.float32) for key, value in outputs.items()}

    def _mask_branch(self, mask_features, training) -> Dict[str, tf.Tensor]:
        logits = self.mask_head(mask_features, training=training)["mask_logits"]
        return {"mask_logits": tf.cast(logits, tf.float32)}

    def _attribute_branch(self, mask_features, training) -> Dict[str, tf.Tensor]:
        logits = self.attribute_head(mask_features, training=training)["attribute_logits"]
        return {"attribute_logits": tf.cast(logits, tf.float32)}


def class_channel(mask_logits: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
    """[B, R, S, S, N] logits, int [B, R] classes -> [B, R, S, S] logits of each RoI's class."""
    per_class = tf.transpose(mask_logits, [0, 1, 4, 2, 3])  # [B, R, N, S, S]
    return tf.gather(per_class, tf.maximum(classes, 0), batch_dims=2)
