"""ModelConfig -> Attribute-Mask R-CNN. The only place that reads ModelConfig for the model.

``build_model(config, image_size)`` builds the layers under the config's precision
policy, the anchors of an image_size x image_size input and the frozen settings of
each stage, and chooses the RoIAlign and class-NMS implementations: static-shape
gathers and padded NMS with ``static_ops_for_tpu``, otherwise TensorFlow's
crop_and_resize and combined NMS kernels (faster on CPUs and GPUs, same numbers).
"""
import contextlib
import dataclasses
from typing import Dict

import tensorflow as tf

from model.config.schema import ModelConfig
from model.modeling import postprocess, roi_targets, rpn
from model.modeling.fpn import Fpn, IdentityFeatures
from model.modeling.heads import AttributeHead, BoxHead, MaskHead, RpnHead
from model.modeling.maskrcnn import AttributeMaskRCNN, RoiFeatures
from model.modeling.resnet import ResNet
from model.modeling.spinenet import SCALINGS, SpineNet
from model.ops.anchors import anchors_per_location, multilevel_anchors
from model.ops.roi_align import multilevel_roi_align, multilevel_roi_align_by_crops


def build_model(config: ModelConfig, image_size: int) -> AttributeMaskRCNN:
    """The model for square inputs of ``image_size`` pixels (variables made at the first call)."""
    parts = build_parts(config)
    parts.setdefault("attribute_head", None)
    anchor, proposals, static = config.anchor, config.rpn, config.static_ops_for_tpu
    return AttributeMaskRCNN(
        **parts,
        anchors=multilevel_anchors(config.fpn.min_level, config.fpn.max_level,
                                   (image_size, image_size), anchor.num_scales,
                                   anchor.aspect_ratios, anchor.anchor_size),
        anchor_sampler=_same_named_fields(rpn.AnchorSampler, config.rpn),
        train_proposals=rpn.ProposalSettings(proposals.train_pre_nms_top_k,
                                             proposals.train_post_nms_top_k, proposals.nms_iou,
                                             proposals.min_box_size),
        test_proposals=rpn.ProposalSettings(proposals.test_pre_nms_top_k,
                                            proposals.test_post_nms_top_k, proposals.nms_iou,
                                            proposals.min_box_size),
        roi_sampler=_same_named_fields(roi_targets.RoiSampler, config.roi_sampler),
        mask_sampler=_same_named_fields(roi_targets.MaskSampler, config.mask_head),
        detection=_same_named_fields(postprocess.DetectionSettings, config.postprocess),
        roi_features=RoiFeatures(multilevel_roi_align if static else multilevel_roi_align_by_crops,
                                 config.box_head.roi_size, config.mask_head.roi_size),
        class_nms=postprocess.padded_class_nms if static else postprocess.combined_class_nms)


def uses_attributes(config: ModelConfig) -> bool:
    return config.attribute_head.enabled and config.num_attributes > 0


def build_parts(config: ModelConfig) -> Dict[str, tf.keras.layers.Layer]:
    """The layers of Attribute-Mask R-CNN by name (no attribute head when disabled), built
    under the config's precision policy (mixed_bfloat16 or float32)."""
    levels = range(config.fpn.min_level, config.fpn.max_level + 1)
    rpn_config, box, mask, attribute = (config.rpn, config.box_head, config.mask_head,
                                        config.attribute_head)
    with _precision_policy("mixed_bfloat16" if config.bfloat16 else "float32"):
        parts = {
            "backbone": _backbone(config),
            "fpn": _multilevel_features(config),
            "rpn_head": RpnHead(anchors_per_location(config.anchor.num_scales,
                                                     config.anchor.aspect_ratios),
                                rpn_config.num_convs, rpn_config.num_filters, rpn_config.use_bn,
                                levels, config.norm, name="rpn_head"),
            "box_head": BoxHead(config.num_classes, box.num_convs, box.conv_filters, box.num_fcs,
                                box.fc_dims, box.use_bn, config.norm, name="box_head"),
            "mask_head": MaskHead(config.num_classes, mask.num_convs, mask.num_filters,
                                  mask.use_bn, config.norm, name="mask_head"),
        }
        if uses_attributes(config):
            parts["attribute_head"] = AttributeHead(
                config.num_attributes, attribute.num_convs, attribute.num_filters,
                attribute.fc_dims, attribute.use_bn, config.norm, name="attribute_head")
    return parts


def build_variables(parts: Dict[str, tf.keras.layers.Layer], config: ModelConfig,
                    image_size: int = 128) -> None:
    """Calls every part once on zeros so that all variables exist."""
    features = parts["fpn"](parts["backbone"](tf.zeros([1, image_size, image_size, 3])))
    parts["rpn_head"](features)
    channels = config.fpn.num_filters
    parts["box_head"](tf.zeros([1, 1, config.box_head.roi_size, config.box_head.roi_size, channels]))
    mask_rois = tf.zeros([1, 1, config.mask_head.roi_size, config.mask_head.roi_size, channels])
    parts["mask_head"](mask_rois)
    if "attribute_head" in parts:
        parts["attribute_head"](mask_rois)


def _backbone(config: ModelConfig) -> tf.keras.layers.Layer:
    backbone = config.backbone
    if backbone.type == "resnet":
        return ResNet(backbone.depth, backbone.width_multiplier, backbone.freeze_bn, config.norm,
                      stem_pool_padding=backbone.stem_pool_padding, name="backbone")
    if backbone.type == "spinenet":
        settings = backbone.spinenet
        return SpineNet(settings.model_id, config.norm, settings.activation,
                        settings.stochastic_depth_rate, config.fpn.min_level, config.fpn.max_level,
                        strided_conv_padding=settings.strided_conv_padding,
                        resample_pooling=settings.resample_pooling, name="backbone")
    raise ValueError(f"unknown backbone type {backbone.type!r}")


def _multilevel_features(config: ModelConfig) -> tf.keras.layers.Layer:
    fpn = config.fpn
    if fpn.type == "fpn":
        return Fpn(fpn.min_level, fpn.max_level, fpn.num_filters, extra_levels=fpn.extra_levels,
                   use_bn=fpn.use_bn, norm=config.norm, name="fpn")
    if fpn.type == "identity":
        spinenet = config.backbone.spinenet
        if (config.backbone.type != "spinenet" or spinenet.model_id not in SCALINGS
                or SCALINGS[spinenet.model_id].endpoint_filters != fpn.num_filters):
            raise ValueError("fpn.type identity needs a SpineNet backbone whose outputs have "
                             f"fpn.num_filters = {fpn.num_filters} channels")
        return IdentityFeatures(fpn.min_level, fpn.max_level, name="fpn")
    raise ValueError(f"unknown fpn type {fpn.type!r}")


def _same_named_fields(settings_class, section):
    """A frozen settings object whose fields are copied from the config section's same names."""
    return settings_class(**{field.name: getattr(section, field.name)
                             for field in dataclasses.fields(settings_class)})


@contextlib.contextmanager
def _precision_policy(name: str):
    """Keras layers take the global policy when constructed; restore it afterwards."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
