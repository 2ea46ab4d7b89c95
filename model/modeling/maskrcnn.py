"""Attribute-Mask R-CNN: the top-level call reads as the algorithm.

  features = FPN(backbone(images))
  proposals = RPN(features)
  training:  sample RoIs -> box branch; sample foreground RoIs -> mask and attribute branches
  inference: box branch -> detections -> mask and attribute branches on the detections

The model holds its layers and small frozen settings, all injected;
``model.modeling.factory.build_model(config, image_size)`` builds them from a
ModelConfig. Losses are computed from the outputs by ``model.maskrcnn_losses``.
"""
import dataclasses
from typing import Callable, Dict, Optional

import tensorflow as tf

from model.modeling import postprocess, roi_targets, rpn

# (features {level: [B, H_l, W_l, C]}, pixel boxes [B, K, 4], side S) -> [B, K, S, S, C];
# the contract of model.ops.roi_align.
RoiAlign = Callable[[Dict[int, tf.Tensor], tf.Tensor, int], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class RoiFeatures:
    """RoI feature pooling: a RoIAlign implementation and the side it pools for each head."""
    align: RoiAlign
    box_size: int  # input side of the box head
    mask_size: int  # input side of the mask and attribute heads

    def for_box_head(self, features: Dict[int, tf.Tensor], boxes: tf.Tensor) -> tf.Tensor:
        return self.align(features, boxes, self.box_size)

    def for_mask_heads(self, features: Dict[int, tf.Tensor], boxes: tf.Tensor) -> tf.Tensor:
        return self.align(features, boxes, self.mask_size)


class AttributeMaskRCNN(tf.keras.Model):
    """Layers (built under the wanted precision policy), anchors, stage settings and
    the RoIAlign / class-NMS implementations come from the caller (see the factory).

    Args:
      backbone, fpn: images [B, S, S, 3] -> {level: [B, S / 2^level, S / 2^level, C]}.
      rpn_head, box_head, mask_head, attribute_head: ``model.modeling.heads`` layers;
        attribute_head None for a model without attributes.
      anchors: {level: [H_l * W_l * A, 4]} pixel anchors of an S x S input.
      anchor_sampler: RPN training targets.
      train_proposals, test_proposals: proposal counts and NMS in each mode.
      roi_sampler: box-head training RoIs; mask_sampler: mask/attribute training RoIs.
      detection: inference post-processing.
      roi_features: RoIAlign implementation and sizes.
      class_nms: ``postprocess.padded_class_nms`` or ``postprocess.combined_class_nms``.
      clip_boxes_to_input: clip proposals and detections to the whole padded input rather
        than to the scaled image (image_info row 1) inside it.
    """

    def __init__(self, *, backbone: tf.keras.layers.Layer, fpn: tf.keras.layers.Layer,
                 rpn_head: tf.keras.layers.Layer, box_head: tf.keras.layers.Layer,
                 mask_head: tf.keras.layers.Layer, attribute_head: Optional[tf.keras.layers.Layer],
                 anchors: Dict[int, tf.Tensor], anchor_sampler: rpn.AnchorSampler,
                 train_proposals: rpn.ProposalSettings, test_proposals: rpn.ProposalSettings,
                 roi_sampler: roi_targets.RoiSampler, mask_sampler: roi_targets.MaskSampler,
                 detection: postprocess.DetectionSettings, roi_features: RoiFeatures,
                 class_nms: postprocess.ClassNms, clip_boxes_to_input: bool = False, **kwargs):
        super().__init__(**kwargs)
        self._clip_boxes_to_input = clip_boxes_to_input
        self.backbone = backbone
        self.fpn = fpn
        self.rpn_head = rpn_head
        self.box_head = box_head
        self.mask_head = mask_head
        self.attribute_head = attribute_head
        self._anchors = anchors
        self._anchor_sampler = anchor_sampler
        self._train_proposals, self._test_proposals = train_proposals, test_proposals
        self._roi_sampler, self._mask_sampler = roi_sampler, mask_sampler
        self._detection, self._class_nms = detection, class_nms
        self._roi_features = roi_features

    def call(self, images: tf.Tensor, image_info: tf.Tensor,
             groundtruth: Optional[Dict[str, tf.Tensor]] = None, training: bool = False
             ) -> Dict[str, Dict[str, tf.Tensor]]:
        """Runs the model on a batch.

        Args:
          images: float [B, S, S, 3], the parser's normalised, padded images.
          image_info: float [B, 4, 2] (``model.data.augment.resize_and_crop``).
          groundtruth (training only): the parser's padded labels gt_boxes [B, M, 4]
            pixels, gt_classes int32 [B, M], gt_is_crowd bool [B, M], gt_masks
            [B, M, C, C], gt_attributes [B, M, T].

        Returns, all float32 unless noted (A anchors of all levels, N classes incl.
        background, T attributes, K = roi_sampler.samples_per_image,
        R = min(mask_sampler.samples_per_image, K), m = 2 * roi_features.mask_size the mask
        head's output side (training: also mask_sampler.mask_size, the target side),
        D = detection.max_detections, P = test_proposals.post_nms_top_k):
          training:
            rpn: score_logits [B, A], box_deltas [B, A, 4], and the anchor targets
              score_targets [B, A], box_targets [B, A, 4], score_weights [B, A],
              box_weights [B, A], num_sampled [].
            box: class_logits [B, K, N], box_deltas [B, K, N, 4], and the RoI
              targets rois [B, K, 4], class_targets int32 [B, K], box_targets
              [B, K, 4], matched_gt int32 [B, K], is_foreground, is_valid bool [B, K].
            mask: mask_logits [B, R, m, m, N], and the targets rois [B, R, 4],
              classes int32 [B, R], weights [B, R], mask_targets [B, R, m, m],
              attribute_targets [B, R, T].
            attribute (with an attribute head): attribute_logits [B, R, T] and the
              same targets as mask.
          inference:
            detections: boxes [B, D, 4] input pixels, classes int32 [B, D] (1..N-1,
              0 in unused slots), scores [B, D], num_detections int32 [B],
              mask_probabilities [B, D, m, m] (of each detection's class), and with
              an attribute head attribute_probabilities [B, D, T].
            proposals: rois [B, P, 4], roi_scores [B, P].
        """
        if self._clip_boxes_to_input:
            image_info = clip_to_whole_input(image_info, tf.shape(images)[1:3])
        features = self.fpn(self.backbone(images, training=training))
        features = {level: tf.cast(value, tf.float32) for level, value in features.items()}
        if not training:
            return self.infer_from_features(features, image_info)
        rpn_outputs = self.rpn_head(features, training=training)
        proposals = rpn.generate_proposals(
            rpn_outputs["scores"], rpn_outputs["boxes"], self._anchors, image_info,
            self._train_proposals)
        return self._train_branches(features, rpn_outputs, proposals, groundtruth)

    def infer_from_features(self, features: Dict[int, tf.Tensor], image_info: tf.Tensor,
                            intermediates: bool = False) -> Dict[str, Dict[str, tf.Tensor]]:
        """Inference after the multilevel features {level: [B, H_l, W_l, C]} (float32): the
        ``detections`` and ``proposals`` of ``call``; with ``intermediates`` also ``rpn``
        (the head's per-level scores and boxes) and ``box`` (the box head on the proposals)."""
        rpn_outputs = self.rpn_head(features, training=False)
        proposals = rpn.generate_proposals(
            rpn_outputs["scores"], rpn_outputs["boxes"], self._anchors, image_info,
            self._test_proposals)
        outputs = self._inference_branches(features, proposals, image_info)
        if intermediates:
            outputs["rpn"] = rpn_outputs
        else:
            outputs.pop("box")
        return outputs

    def box_outputs(self, features: Dict[int, tf.Tensor], rois: tf.Tensor) -> Dict[str, tf.Tensor]:
        """The box head (inference) on pixel RoIs [B, K, 4]: class_logits [B, K, N],
        box_deltas [B, K, N, 4], and with attributes on the box features attribute_logits."""
        return self._box_branch(features, rois, False)

    def _train_branches(self, features, rpn_outputs, proposals, gt) -> Dict[str, Dict]:
        anchors = tf.concat([self._anchors[level] for level in sorted(self._anchors)], axis=0)
        rpn_branch = {
            "score_logits": rpn.flatten_levels(rpn_outputs["scores"], 1)[..., 0],
            "box_deltas": rpn.flatten_levels(rpn_outputs["boxes"], 4),
            **rpn.anchor_targets(anchors, gt["gt_boxes"], gt["gt_classes"], gt["gt_is_crowd"],
                                 self._anchor_sampler),
        }
        sampled = roi_targets.sample_rois(proposals["rois"], gt["gt_boxes"], gt["gt_classes"],
                                          gt["gt_is_crowd"], self._roi_sampler)
        box_branch = {**self._box_branch(features, sampled["rois"], True), **sampled}
        targets = roi_targets.sample_mask_and_attribute_targets(
            sampled, gt["gt_boxes"], gt["gt_masks"], gt["gt_attributes"], self._mask_sampler)
        mask_features = self._roi_features.for_mask_heads(features, targets["rois"])
        outputs = {"rpn": rpn_branch, "box": box_branch,
                   "mask": {**self._mask_branch(mask_features, True), **targets}}
        if self.attribute_head is not None:
            outputs["attribute"] = {**self._attribute_branch(mask_features, True), **targets}
        elif "attribute_logits" in box_branch:
            # Attributes on the box features (tensorflow/tpu's Fashionpedia model) learn on
            # every sampled RoI, background ones with all-zero targets.
            foreground = tf.logical_and(sampled["is_foreground"], sampled["is_valid"])
            matched = tf.gather(gt["gt_attributes"], sampled["matched_gt"], batch_dims=1)
            outputs["attribute"] = {
                "attribute_logits": box_branch["attribute_logits"],
                "attribute_targets": tf.where(foreground[..., tf.newaxis],
                                              tf.cast(matched, tf.float32), 0.0),
                "weights": tf.cast(sampled["is_valid"], tf.float32),
            }
        return outputs

    def _inference_branches(self, features, proposals, image_info) -> Dict[str, Dict]:
        box_outputs = self._box_branch(features, proposals["rois"], False)
        detections = postprocess.detect(
            box_outputs["class_logits"], box_outputs["box_deltas"], proposals["rois"], image_info,
            self._detection, self._class_nms)
        mask_features = self._roi_features.for_mask_heads(features, detections["boxes"])
        mask_logits = self._mask_branch(mask_features, False)["mask_logits"]
        detections["mask_probabilities"] = tf.sigmoid(class_channel(mask_logits,
                                                                     detections["classes"]))
        roi_indices = detections.pop("roi_indices", None)
        if self.attribute_head is not None:
            attribute_logits = self._attribute_branch(mask_features, False)["attribute_logits"]
            detections["attribute_probabilities"] = tf.sigmoid(attribute_logits)
        elif "attribute_logits" in box_outputs:  # attributes on the box features
            attribute_logits = tf.gather(box_outputs["attribute_logits"], roi_indices, batch_dims=1)
            detections["attribute_probabilities"] = tf.sigmoid(attribute_logits)
        return {"detections": detections, "proposals": proposals, "box": box_outputs}

    def _box_branch(self, features, rois, training) -> Dict[str, tf.Tensor]:
        outputs = self.box_head(self._roi_features.for_box_head(features, rois), training=training)
        return {key: tf.cast(value, tf.float32) for key, value in outputs.items()}

    def _mask_branch(self, mask_features, training) -> Dict[str, tf.Tensor]:
        logits = self.mask_head(mask_features, training=training)["mask_logits"]
        return {"mask_logits": tf.cast(logits, tf.float32)}

    def _attribute_branch(self, mask_features, training) -> Dict[str, tf.Tensor]:
        logits = self.attribute_head(mask_features, training=training)["attribute_logits"]
        return {"attribute_logits": tf.cast(logits, tf.float32)}


def clip_to_whole_input(image_info: tf.Tensor, input_size: tf.Tensor) -> tf.Tensor:
    """image_info [B, 4, 2] whose row 1 (the size boxes are clipped to) is the whole padded
    input's [H, W] instead of the scaled image's: tensorflow/tpu's models clip there."""
    batch = tf.shape(image_info)[0]
    whole = tf.tile(tf.cast(input_size, image_info.dtype)[tf.newaxis, tf.newaxis], [batch, 1, 1])
    return tf.concat([image_info[:, :1], whole, image_info[:, 2:]], axis=1)


def class_channel(mask_logits: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
    """[B, R, S, S, N] logits, int [B, R] classes -> [B, R, S, S] logits of each RoI's class."""
    per_class = tf.transpose(mask_logits, [0, 1, 4, 2, 3])  # [B, R, N, S, S]
    return tf.gather(per_class, tf.maximum(classes, 0), batch_dims=2)
