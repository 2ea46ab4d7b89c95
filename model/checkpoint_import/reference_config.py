"""A tensorflow/tpu detection YAML -> this package's ExperimentConfig.

The YAML is either a published override file (e.g. tensorflow/tpu's
``projects/fashionpedia/configs/yaml/r50fpn_amrcnn.yaml``) or the full ``params.yaml``
/ ``config.yaml`` a TPU run writes into its model directory. Keys the YAML leaves out
keep the reference family's defaults, which the presets hold
(``model/configs/fp_*.yaml`` for tensorflow/tpu's Fashionpedia project,
``imat_sn143.yaml`` for the iMaterialist 2020 fork). Keys that only steer training or
evaluation are ignored; a value that would build a network this package cannot
(separable convolutions, class-agnostic masks, another backbone) is a ConfigError.
"""
import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from model.config import ConfigError, load_config
from model.config.loader import parse_yaml
from model.config.schema import ExperimentConfig

TPU_FASHIONPEDIA = "tpu_fashionpedia"
FORK_IMAT = "fork_imat"
FAMILIES = (TPU_FASHIONPEDIA, FORK_IMAT)


def read_yaml(path: str) -> Dict[str, Any]:
    """The YAML mapping at ``path`` (local or gs://); plain YAML only."""
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(path, "rb") as stream:
            text = stream.read()
    except tf.errors.NotFoundError:
        raise ConfigError(f"--config {path} does not exist") from None
    data = parse_yaml(text, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    return data


def _get(params: Mapping[str, Any], dotted: str, default=None):
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def preset_for(params: Mapping[str, Any], family: str) -> str:
    """The preset holding the family's defaults for the YAML's backbone."""
    backbone = _get(params, "architecture.backbone", "resnet")
    if family == FORK_IMAT:
        if backbone != "spinenet" or str(_get(params, "spinenet.model_id", "49")) != "143":
            raise ConfigError("only the fork's SpineNet-143 (configs/spinenet/sn143-imat-v2.yaml) "
                              f"is supported; this YAML has backbone {backbone!r}")
        return "imat_sn143"
    if backbone == "resnet":
        depth = int(_get(params, "resnet.resnet_depth", 50))
        if depth not in (50, 101):
            raise ConfigError(f"resnet.resnet_depth {depth}: ResNet-50 and ResNet-101 are supported")
        return f"fp_r{depth}fpn"
    if backbone == "spinenet":
        model_id = str(_get(params, "spinenet.model_id", "49"))
        if model_id not in ("49", "96", "143"):
            raise ConfigError(f"spinenet.model_id {model_id!r}: 49, 96 and 143 are supported")
        return f"fp_sn{model_id}"
    raise ConfigError(f"architecture.backbone {backbone!r}: resnet and spinenet are supported")


def _size(value) -> int:
    sides = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(set(int(side) for side in sides)) != 1:
        raise ConfigError(f"the parser's output_size {value} is not square; this model takes "
                          "square inputs")
    return int(sides[0])


def _flag_must_be(expected):
    def check(value, key):
        if bool(value) != expected:
            raise ConfigError(f"{key}: {value!r} is not supported (only {expected!r})")
        return None
    return check


# (reference key, our key or None to only check, converter(value, key) -> our value)
_Rule = Tuple[str, Optional[str], Callable[[Any, str], Any]]
_same = lambda value, key: value  # noqa: E731
_RULES: List[_Rule] = [
    ("architecture.num_classes", "model.num_classes", lambda v, k: int(v)),
    ("architecture.min_level", "model.fpn.min_level", lambda v, k: int(v)),
    ("architecture.max_level", "model.fpn.max_level", lambda v, k: int(v)),
    ("architecture.mask_target_size", "model.mask_head.mask_size", lambda v, k: int(v)),
    ("architecture.include_mask", None, _flag_must_be(True)),
    ("anchor.num_scales", "model.anchor.num_scales", lambda v, k: int(v)),
    ("anchor.aspect_ratios", "model.anchor.aspect_ratios", lambda v, k: [float(x) for x in v]),
    ("anchor.anchor_size", "model.anchor.anchor_size", lambda v, k: float(v)),
    ("resnet.resnet_depth", "model.backbone.depth", lambda v, k: int(v)),
    ("spinenet.model_id", "model.backbone.spinenet.model_id", lambda v, k: str(v)),
    ("spinenet.init_drop_connect_rate", "model.backbone.spinenet.stochastic_depth_rate",
     lambda v, k: float(v or 0.0)),
    ("batch_norm_activation.batch_norm_momentum", "model.norm.momentum", lambda v, k: float(v)),
    ("batch_norm_activation.batch_norm_epsilon", "model.norm.epsilon", lambda v, k: float(v)),
    ("batch_norm_activation.use_sync_bn", "model.norm.use_sync_bn", lambda v, k: bool(v)),
    ("fpn.fpn_feat_dims", "model.fpn.num_filters", lambda v, k: int(v)),
    ("fpn.use_separable_conv", None, _flag_must_be(False)),
    ("rpn_head.num_convs", "model.rpn.num_convs", lambda v, k: int(v)),
    ("rpn_head.num_filters", "model.rpn.num_filters", lambda v, k: int(v)),
    ("rpn_head.use_batch_norm", "model.rpn.use_bn", lambda v, k: bool(v)),
    ("rpn_head.use_separable_conv", None, _flag_must_be(False)),
    ("frcnn_head.num_convs", "model.box_head.num_convs", lambda v, k: int(v)),
    ("frcnn_head.num_filters", "model.box_head.conv_filters", lambda v, k: int(v)),
    ("frcnn_head.num_fcs", "model.box_head.num_fcs", lambda v, k: int(v)),
    ("frcnn_head.fc_dims", "model.box_head.fc_dims", lambda v, k: int(v)),
    ("frcnn_head.use_batch_norm", "model.box_head.use_bn", lambda v, k: bool(v)),
    ("frcnn_head.use_separable_conv", None, _flag_must_be(False)),
    ("mrcnn_head.num_convs", "model.mask_head.num_convs", lambda v, k: int(v)),
    ("mrcnn_head.num_filters", "model.mask_head.num_filters", lambda v, k: int(v)),
    ("mrcnn_head.use_batch_norm", "model.mask_head.use_bn", lambda v, k: bool(v)),
    ("mrcnn_head.use_separable_conv", None, _flag_must_be(False)),
    ("mrcnn_head.class_agnostic_mask_pred", None, _flag_must_be(False)),
    ("roi_proposal.rpn_pre_nms_top_k", "model.rpn.train_pre_nms_top_k", lambda v, k: int(v)),
    ("roi_proposal.rpn_post_nms_top_k", "model.rpn.train_post_nms_top_k", lambda v, k: int(v)),
    ("roi_proposal.test_rpn_pre_nms_top_k", "model.rpn.test_pre_nms_top_k", lambda v, k: int(v)),
    ("roi_proposal.test_rpn_post_nms_top_k", "model.rpn.test_post_nms_top_k", lambda v, k: int(v)),
    ("roi_proposal.test_rpn_nms_threshold", "model.rpn.nms_iou", lambda v, k: float(v)),
    ("roi_proposal.test_rpn_min_size_threshold", "model.rpn.min_box_size", lambda v, k: float(v)),
    ("roi_sampling.num_samples_per_image", "model.roi_sampler.samples_per_image", lambda v, k: int(v)),
    ("roi_sampling.fg_fraction", "model.roi_sampler.foreground_fraction", lambda v, k: float(v)),
    ("roi_sampling.fg_iou_thresh", "model.roi_sampler.foreground_iou", lambda v, k: float(v)),
    ("roi_sampling.bg_iou_thresh_hi", "model.roi_sampler.background_iou_high", lambda v, k: float(v)),
    ("roi_sampling.bg_iou_thresh_lo", "model.roi_sampler.background_iou_low", lambda v, k: float(v)),
    ("mask_sampling.num_mask_samples_per_image", "model.mask_head.samples_per_image",
     lambda v, k: int(v)),
    ("postprocess.max_total_size", "model.postprocess.max_detections", lambda v, k: int(v)),
    ("postprocess.nms_iou_threshold", "model.postprocess.nms_iou", lambda v, k: float(v)),
    ("postprocess.score_threshold", "model.postprocess.score_threshold", lambda v, k: float(v)),
    ("postprocess.pre_nms_num_boxes", "model.postprocess.pre_nms_top_k", lambda v, k: int(v)),
    ("postprocess.apply_nms", None, _flag_must_be(True)),
    ("train.l2_weight_decay", "model.l2_weight_decay", lambda v, k: float(v)),
]


def family_rules(family: str) -> List[_Rule]:
    """The rules common to both families plus each family's own keys."""
    parser = "attribute_maskrcnn_parser" if family == TPU_FASHIONPEDIA else "maskrcnn_parser"
    rules = list(_RULES) + [
        (f"{parser}.output_size", "input.image_size", lambda v, k: _size(v)),
        (f"{parser}.aug_scale_min", "input.aug_scale_min", lambda v, k: float(v)),
        (f"{parser}.aug_scale_max", "input.aug_scale_max", lambda v, k: float(v)),
        (f"{parser}.aug_rand_hflip", "input.aug_rand_hflip", lambda v, k: bool(v)),
        (f"{parser}.max_num_instances", "input.max_num_instances", lambda v, k: int(v)),
    ]
    rules += _EXTRA_RULES.get(family, [])
    return rules


def _attributes(value, key):
    if value is None:
        raise ConfigError(f"{key} is null: the checkpoint has no attribute head; this package's "
                          "importer needs the attribute head")
    return int(value)


_EXTRA_RULES: Dict[str, List[_Rule]] = {
    TPU_FASHIONPEDIA: [("architecture.num_attributes", "model.num_attributes", _attributes)],
    # The fork's attribute head takes the box head's settings (its factory reads frcnn_head).
    FORK_IMAT: [("architecture.num_attributes", "model.num_attributes", _attributes),
                ("frcnn_head.num_convs", "model.attribute_head.num_convs", lambda v, k: int(v)),
                ("frcnn_head.num_filters", "model.attribute_head.num_filters", lambda v, k: int(v)),
                ("frcnn_head.fc_dims", "model.attribute_head.fc_dims", lambda v, k: int(v)),
                ("frcnn_head.num_fcs", None, lambda v, k: _one_fc(v, k)),
                ("frcnn_head.use_batch_norm", "model.attribute_head.use_bn", lambda v, k: bool(v)),
                ("attributes_loss.type", "model.attribute_head.loss", lambda v, k: _loss(v, k)),
                ("attributes_loss.focal_loss_alpha", "model.attribute_head.focal_alpha",
                 lambda v, k: float(v)),
                ("attributes_loss.focal_loss_gamma", "model.attribute_head.focal_gamma",
                 lambda v, k: float(v)),
                ("attributes_loss.focal_loss_weight", "model.attribute_head.loss_weight",
                 lambda v, k: float(v))],
}


def _one_fc(value, key):
    if int(value) != 1:
        raise ConfigError(f"{key} {value}: the fork's attribute head is built with it, and this "
                          "package's attribute head has one fc")
    return None


def _loss(value, key):
    losses = {"focal": "focal", "sigmoid_cross_entropy": "sigmoid"}
    if value not in losses:
        raise ConfigError(f"{key} {value!r}: one of {', '.join(losses)}")
    return losses[value]


# tensorflow/tpu applies batch_norm_activation.activation after every batch norm.
_ACTIVATION_KEYS = ("model.backbone.spinenet.activation", "model.rpn.activation",
                    "model.box_head.activation", "model.mask_head.activation",
                    "model.attribute_head.activation")


def _activation_overrides(params: Mapping[str, Any]) -> List[str]:
    activation = _get(params, "batch_norm_activation.activation", _MISSING)
    if activation is _MISSING:
        return []
    if activation not in ("relu", "swish"):
        raise ConfigError(f"batch_norm_activation.activation {activation!r}: relu and swish "
                          "are supported")
    if activation != "relu" and _get(params, "architecture.backbone", "resnet") == "resnet":
        raise ConfigError(f"batch_norm_activation.activation {activation!r} with a ResNet: this "
                          "package's ResNet uses relu")
    return [f"{key}={_yaml_value(activation)}" for key in _ACTIVATION_KEYS]


def overrides(params: Mapping[str, Any], family: str) -> List[str]:
    """``key=value`` overrides of the preset, one per reference key the YAML sets."""
    result = _activation_overrides(params)
    for reference_key, our_key, convert in family_rules(family):
        value = _get(params, reference_key, _MISSING)
        if value is _MISSING:
            continue
        converted = convert(value, reference_key)
        if our_key is not None:
            result.append(f"{our_key}={_yaml_value(converted)}")
    return result


_MISSING = object()


def _yaml_value(value) -> str:
    """``value`` as a YAML 1.1 scalar or flow list (PyYAML reads 4e-05 as a string, 4.0e-05
    as a float)."""
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(item) for item in value) + "]"
    if isinstance(value, float):
        mantissa, _, exponent = repr(value).partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        return mantissa + (f"e{'' if exponent[0] in '+-' else '+'}{exponent}" if exponent else "")
    return json.dumps(value)


def experiment_config(params: Mapping[str, Any], family: str,
                      image_size: Optional[int] = None) -> ExperimentConfig:
    """The ExperimentConfig equal to the reference YAML ``params`` of ``family``, computing in
    float32 (the reference's bfloat16 is a TPU training choice)."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown checkpoint family {family!r} (one of {', '.join(FAMILIES)})")
    preset = preset_for(params, family)
    extra = overrides(params, family) + ["model.bfloat16=false"]
    if image_size:
        extra.append(f"input.image_size={int(image_size)}")
    return load_config(preset, extra)
