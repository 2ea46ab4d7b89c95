"""Attribute-Mask R-CNN losses from the model's training outputs (all float32 scalars)."""
from typing import Dict

import tensorflow as tf

from model import losses
from model.config.schema import ModelConfig
from model.modeling.maskrcnn import class_channel

RPN_HUBER_DELTA = 1.0 / 9.0
FRCNN_HUBER_DELTA = 1.0


def rpn_losses(outputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    normalizer = outputs["num_sampled"]
    return {
        "rpn_score_loss": losses.sigmoid_cross_entropy(
            outputs["score_logits"], outputs["score_targets"], outputs["score_weights"], normalizer),
        "rpn_box_loss": losses.huber(outputs["box_deltas"], outputs["box_targets"],
                                     outputs["box_weights"], normalizer, RPN_HUBER_DELTA),
    }


def box_losses(outputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    valid = tf.cast(outputs["is_valid"], tf.float32)
    foreground = valid * tf.cast(outputs["is_foreground"], tf.float32)
    deltas = tf.gather(outputs["box_deltas"], outputs["class_targets"], batch_dims=2)
    normalizer = tf.reduce_sum(valid)
    return {
        "frcnn_class_loss": losses.softmax_cross_entropy(
            outputs["class_logits"], outputs["class_targets"], valid, normalizer),
        "frcnn_box_loss": losses.huber(deltas, outputs["box_targets"], foreground, normalizer,
                                       FRCNN_HUBER_DELTA),
    }


def mask_loss(outputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    logits = class_channel(outputs["mask_logits"], outputs["classes"])
    weights = outputs["weights"][..., tf.newaxis, tf.newaxis]
    pixels = tf.reduce_sum(outputs["weights"]) * float(logits.shape[-1] * logits.shape[-2])
    return {"mask_loss": losses.sigmoid_cross_entropy(logits, outputs["mask_targets"], weights,
                                                      pixels)}


def attribute_loss(outputs: Dict[str, tf.Tensor], config: ModelConfig) -> Dict[str, tf.Tensor]:
    head = config.attribute_head
    logits, targets = outputs["attribute_logits"], outputs["attribute_targets"]
    weights = outputs["weights"][..., tf.newaxis]
    normalizer = tf.reduce_sum(outputs["weights"]) * float(logits.shape[-1])
    if head.loss == "focal":
        value = losses.sigmoid_focal(logits, targets, weights, normalizer, head.focal_alpha,
                                     head.focal_gamma)
    elif head.loss == "sigmoid":
        value = losses.sigmoid_cross_entropy(logits, targets, weights, normalizer)
    else:
        raise ValueError(f"attribute_head.loss must be 'sigmoid' or 'focal', got {head.loss!r}")
    return {"attribute_loss": head.loss_weight * value}


def total_losses(outputs: Dict[str, Dict[str, tf.Tensor]], config: ModelConfig,
                 trainable_variables) -> Dict[str, tf.Tensor]:
    """Every loss term, ``l2_loss`` and their sum ``total_loss``."""
    terms = {**rpn_losses(outputs["rpn"]), **box_losses(outputs["box"]),
             **mask_loss(outputs["mask"])}
    if "attribute" in outputs:
        terms.update(attribute_loss(outputs["attribute"], config))
    terms["l2_loss"] = losses.l2_weight_decay(trainable_variables, config.l2_weight_decay)
    terms["total_loss"] = tf.add_n(list(terms.values()))
    return terms
