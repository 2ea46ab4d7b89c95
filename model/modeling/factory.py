"""Config -> model parts. The only place that reads ModelConfig to build layers."""
from typing import Dict

import tensorflow as tf

from model.config.schema import ModelConfig
from model.modeling.fpn import Fpn, IdentityFeatures
from model.modeling.heads import AttributeHead, BoxHead, MaskHead, RpnHead
from model.modeling.resnet import ResNet
from model.modeling.spinenet import SCALINGS, SpineNet
from model.ops.anchors import anchors_per_location


def uses_attributes(config: ModelConfig) -> bool:
    return config.attribute_head.enabled and config.num_attributes > 0


def _backbone(config: ModelConfig) -> tf.keras.layers.Layer:
    backbone = config.backbone
    if backbone.type == "resnet":
        return ResNet(backbone.depth, backbone.width_multiplier, backbone.freeze_bn, config.norm,
                      name="backbone")
    if backbone.type == "spinenet":
        settings = backbone.spinenet
        return SpineNet(settings.model_id, config.norm, settings.activation,
                        settings.stochastic_depth_rate, config.fpn.min_level, config.fpn.max_level,
                        name="backbone")
    raise ValueError(f"unknown backbone type {backbone.type!r}")


def _multilevel_features(config: ModelConfig) -> tf.keras.layers.Layer:
    fpn = config.fpn
    if fpn.type == "fpn":
        return Fpn(fpn.min_level, fpn.max_level, fpn.num_filters, name="fpn")
    if fpn.type == "identity":
        spinenet = config.backbone.spinenet
        if (config.backbone.type != "spinenet" or spinenet.model_id not in SCALINGS
                or SCALINGS[spinenet.model_id].endpoint_filters != fpn.num_filters):
            raise ValueError("fpn.type identity needs a SpineNet backbone whose outputs have "
                             f"fpn.num_filters = {fpn.num_filters} channels")
        return IdentityFeatures(fpn.min_level, fpn.max_level, name="fpn")
    raise ValueError(f"unknown fpn type {fpn.type!r}")


def build_parts(config: ModelConfig) -> Dict[str, tf.keras.layers.Layer]:
    """The layers of Attribute-Mask R-CNN by name (no attribute head when disabled)."""
    levels = range(config.fpn.min_level, config.fpn.max_level + 1)
    rpn, box, mask, attribute = (config.rpn, config.box_head, config.mask_head,
                                 config.attribute_head)
    parts = {
        "backbone": _backbone(config),
        "fpn": _multilevel_features(config),
        "rpn_head": RpnHead(anchors_per_location(config.anchor.num_scales,
                                                 config.anchor.aspect_ratios),
                            rpn.num_convs, rpn.num_filters, rpn.use_bn, levels, config.norm,
                            name="rpn_head"),
        "box_head": BoxHead(config.num_classes, box.num_convs, box.conv_filters, box.num_fcs,
                            box.fc_dims, box.use_bn, config.norm, name="box_head"),
        "mask_head": MaskHead(config.num_classes, mask.num_convs, mask.num_filters, mask.use_bn,
                              config.norm, name="mask_head"),
    }
    if uses_attributes(config):
        parts["attribute_head"] = AttributeHead(config.num_attributes, attribute.num_convs,
                                                attribute.num_filters, attribute.fc_dims,
                                                attribute.use_bn, config.norm, name="attribute_head")
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
