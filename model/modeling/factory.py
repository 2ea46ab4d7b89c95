"""ModelConfig -> Attribute-Mask R-CNN. The only place that reads ModelConfig for the model.

``build_model(config, image_size)`` builds the layers under the config's precision
policy, the anchors of an image_size x image_size input and the frozen settings of
each stage, and chooses the RoIAlign and class-NMS implementations: static-shape
gathers and padded NMS with ``static_ops_for_tpu``, otherwise TensorFlow's
crop_and_resize and combined NMS kernels (faster on CPUs and GPUs, same numbers).
``roi_align.type: tpu`` always uses tensorflow/tpu's gather RoIAlign, and attributes on
the box features always the padded NMS (it tells each detection's RoI).
"""
import contextlib
import dataclasses
from typing import Dict

import tensorflow as tf

from model.config.schema import ModelConfig
from model.data.augment import identity_image_info
from model.modeling import postprocess, roi_targets, rpn
from model.modeling.fpn import Fpn, IdentityFeatures
from model.modeling.heads import AttributeHead, BoxHead, MaskHead, RpnHead
from model.modeling.maskrcnn import AttributeMaskRCNN, RoiFeatures
from model.modeling.resnet import ResNet
from model.modeling.spinenet import SCALINGS, SpineNet
from model.ops.anchors import anchors_per_location, multilevel_anchors
from model.ops.roi_align import (multilevel_roi_align, multilevel_roi_align_by_crops,
                                 multilevel_roi_align_tpu)


def build_model(config: ModelConfig, image_size: int) -> AttributeMaskRCNN:
    """The model for square inputs of ``image_size`` pixels (variables made at the first call)."""
    parts = build_parts(config)
    parts.setdefault("attribute_head", None)
    anchor, proposals, static = config.anchor, config.rpn, config.static_ops_for_tpu
    proposal_style = dict(style=proposals.proposal_style,
                          plus_one=_plus_one_box_coding(config.postprocess.box_coding))
    return AttributeMaskRCNN(
        **parts,
        anchors=multilevel_anchors(config.fpn.min_level, config.fpn.max_level,
                                   (image_size, image_size), anchor.num_scales,
                                   anchor.aspect_ratios, anchor.anchor_size,
                                   tpu_rounding=proposals.proposal_style == "tpu"),
        anchor_sampler=_same_named_fields(rpn.AnchorSampler, config.rpn),
        train_proposals=rpn.ProposalSettings(proposals.train_pre_nms_top_k,
                                             proposals.train_post_nms_top_k, proposals.nms_iou,
                                             proposals.min_box_size, **proposal_style),
        test_proposals=rpn.ProposalSettings(proposals.test_pre_nms_top_k,
                                            proposals.test_post_nms_top_k, proposals.nms_iou,
                                            proposals.min_box_size, **proposal_style),
        roi_sampler=dataclasses.replace(
            _same_named_fields(roi_targets.RoiSampler, config.roi_sampler),
            plus_one=proposal_style["plus_one"]),
        mask_sampler=_same_named_fields(roi_targets.MaskSampler, config.mask_head),
        detection=dataclasses.replace(
            _same_named_fields(postprocess.DetectionSettings, config.postprocess),
            plus_one=proposal_style["plus_one"]),
        roi_features=RoiFeatures(_roi_align(config), config.box_head.roi_size,
                                 config.mask_head.roi_size),
        # Attributes on the box features need each detection's RoI, which only the padded
        # NMS tells.
        class_nms=postprocess.padded_class_nms if static or _attributes_on_boxes(config)
        else postprocess.combined_class_nms,
        clip_boxes_to_input=config.preprocessing.clip_boxes_to_input)


def _plus_one_box_coding(box_coding: str) -> bool:
    if box_coding not in ("continuous", "pixel_plus_one"):
        raise ValueError(f"unknown postprocess.box_coding {box_coding!r}")
    return box_coding == "pixel_plus_one"


def _roi_align(config: ModelConfig):
    kind = config.roi_align.type
    if kind == "aligned":
        return multilevel_roi_align if config.static_ops_for_tpu else multilevel_roi_align_by_crops
    if kind == "tpu":
        return multilevel_roi_align_tpu
    raise ValueError(f"unknown roi_align.type {kind!r} (aligned or tpu)")


def _attributes_on_boxes(config: ModelConfig) -> bool:
    placement = config.attribute_head.placement
    if placement not in ("mask_rois", "box_features"):
        raise ValueError(f"unknown attribute_head.placement {placement!r}")
    return uses_attributes(config) and placement == "box_features"


def build_model_with_variables(config: ModelConfig, image_size: int) -> AttributeMaskRCNN:
    """``build_model`` called once on a zero image, so that every variable exists."""
    model = build_model(config, image_size)
    model(tf.zeros([1, image_size, image_size, 3]), identity_image_info(image_size, batch=1),
          training=False)
    return model


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
                                levels, config.norm, rpn_config.conv_bias_with_bn,
                                rpn_config.activation, name="rpn_head"),
            "box_head": BoxHead(config.num_classes, box.num_convs, box.conv_filters, box.num_fcs,
                                box.fc_dims, box.use_bn, config.norm, box.conv_bias_with_bn,
                                box.activation,
                                config.num_attributes if _attributes_on_boxes(config) else 0,
                                name="box_head"),
            "mask_head": MaskHead(config.num_classes, mask.num_convs, mask.num_filters,
                                  mask.use_bn, config.norm, mask.conv_bias_with_bn,
                                  mask.deconv_bn, mask.activation, name="mask_head"),
        }
        if uses_attributes(config) and not _attributes_on_boxes(config):
            parts["attribute_head"] = AttributeHead(
                config.num_attributes, attribute.num_convs, attribute.num_filters,
                attribute.fc_dims, attribute.use_bn, config.norm, attribute.conv_bias_with_bn,
                attribute.activation, name="attribute_head")
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
                             for field in dataclasses.fields(settings_class)
                             if hasattr(section, field.name)})


@contextlib.contextmanager
def _precision_policy(name: str):
    """Keras layers take the global policy when constructed; restore it afterwards."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
