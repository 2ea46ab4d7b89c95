"""Prediction heads of Attribute-Mask R-CNN (Keras layers, settings in constructors).

Shapes: B images, K RoIs per image, A anchors per location, N classes incl.
background, T attributes. Every head returns a dict.
"""
from typing import Dict, Sequence

import tensorflow as tf

from model.config.schema import NormConfig
from model.modeling.activations import activation_function, activation_layer
from model.modeling.norm import batch_norm


def _conv_stack(count: int, filters: int, use_bn: bool, prefix: str, norm: NormConfig,
                bias_with_bn: bool = False, activation: str = "relu"):
    layers = []
    for index in range(count):
        layers.append(tf.keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=bias_with_bn or not use_bn,
            name=f"{prefix}_conv{index}",
            kernel_initializer=tf.keras.initializers.VarianceScaling(2.0, "fan_out")))
        if use_bn:
            layers.append(batch_norm(norm, f"{prefix}_bn{index}"))
        layers.append(activation_layer(activation))
    return layers


def _apply(layers, x, training):
    for layer in layers:
        x = layer(x, training=training) if isinstance(
            layer, tf.keras.layers.BatchNormalization) else layer(x)
    return x


def _per_roi(x: tf.Tensor) -> tf.Tensor:
    """[B, K, H, W, C] -> [B * K, H, W, C]."""
    return tf.reshape(x, [-1] + x.shape.as_list()[2:])


class RpnHead(tf.keras.layers.Layer):
    """Per level: objectness logits [B, H, W, A] and box deltas [B, H, W, 4A].

    Convolution weights are shared by all levels; batch-norm layers (when used)
    are per level, since each level has its own statistics.
    """

    def __init__(self, num_anchors: int, num_convs: int, num_filters: int, use_bn: bool,
                 levels: Sequence[int], norm: NormConfig = NormConfig(),
                 conv_bias_with_bn: bool = False, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self._activation = activation_function(activation)
        self._convs = [tf.keras.layers.Conv2D(num_filters, 3, padding="same",
                                              use_bias=conv_bias_with_bn or not use_bn,
                                              name=f"conv{i}") for i in range(num_convs)]
        self._norms = {level: [batch_norm(norm, f"bn_p{level}_{i}")
                               for i in range(num_convs)] if use_bn else []
                       for level in levels}
        init = tf.keras.initializers.RandomNormal(stddev=0.01)
        self._scores = tf.keras.layers.Conv2D(num_anchors, 1, kernel_initializer=init, name="scores")
        self._boxes = tf.keras.layers.Conv2D(4 * num_anchors, 1, kernel_initializer=init, name="boxes")

    def call(self, features: Dict[int, tf.Tensor], training=None) -> Dict[str, Dict[int, tf.Tensor]]:
        scores, boxes = {}, {}
        for level, x in features.items():
            for index, conv in enumerate(self._convs):
                x = conv(x)
                if self._norms[level]:
                    x = self._norms[level][index](x, training=training)
                x = self._activation(x)
            scores[level] = self._scores(x)
            boxes[level] = self._boxes(x)
        return {"scores": scores, "boxes": boxes}


class BoxHead(tf.keras.layers.Layer):
    """RoI features [B, K, S, S, C] -> class logits [B, K, N], class-specific deltas [B, K, N, 4]
    and, with ``num_attributes`` > 0 (attributes on the box features, tensorflow/tpu's
    Fashionpedia model), attribute logits [B, K, T] from the last fc."""

    def __init__(self, num_classes: int, num_convs: int, conv_filters: int, num_fcs: int,
                 fc_dims: int, use_bn: bool, norm: NormConfig = NormConfig(),
                 conv_bias_with_bn: bool = False, activation: str = "relu",
                 num_attributes: int = 0, **kwargs):
        super().__init__(**kwargs)
        self._num_classes = num_classes
        self._num_attributes = num_attributes
        self._convs = _conv_stack(num_convs, conv_filters, use_bn, "box", norm,
                                  conv_bias_with_bn, activation)
        self._fcs = []
        for index in range(num_fcs):
            self._fcs.append(tf.keras.layers.Dense(
                fc_dims, use_bias=conv_bias_with_bn or not use_bn, name=f"fc{index}"))
            if use_bn:
                self._fcs.append(batch_norm(norm, f"fc_bn{index}"))
            self._fcs.append(activation_layer(activation))
        self._attributes = tf.keras.layers.Dense(
            num_attributes, kernel_initializer=tf.keras.initializers.RandomNormal(stddev=0.01),
            name="attribute_logits") if num_attributes else None
        self._classes = tf.keras.layers.Dense(
            num_classes, kernel_initializer=tf.keras.initializers.RandomNormal(stddev=0.01),
            name="class_logits")
        self._deltas = tf.keras.layers.Dense(
            4 * num_classes, kernel_initializer=tf.keras.initializers.RandomNormal(stddev=0.001),
            name="box_deltas")

    def call(self, roi_features: tf.Tensor, training=None) -> Dict[str, tf.Tensor]:
        batch, rois = tf.shape(roi_features)[0], roi_features.shape[1]
        x = _apply(self._convs, _per_roi(roi_features), training)
        x = tf.reshape(x, [tf.shape(x)[0], -1])
        x = _apply(self._fcs, x, training)
        outputs = {
            "class_logits": tf.reshape(self._classes(x), [batch, rois, self._num_classes]),
            "box_deltas": tf.reshape(self._deltas(x), [batch, rois, self._num_classes, 4]),
        }
        if self._attributes is not None:
            outputs["attribute_logits"] = tf.reshape(self._attributes(x),
                                                     [batch, rois, self._num_attributes])
        return outputs


class MaskHead(tf.keras.layers.Layer):
    """RoI features [B, K, S, S, C] -> mask logits [B, K, 2S, 2S, N] (one mask per class)."""

    def __init__(self, num_classes: int, num_convs: int, num_filters: int, use_bn: bool,
                 norm: NormConfig = NormConfig(), conv_bias_with_bn: bool = False,
                 deconv_bn: bool = False, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self._convs = _conv_stack(num_convs, num_filters, use_bn, "mask", norm,
                                  conv_bias_with_bn, activation)
        after_deconv = []
        if use_bn and deconv_bn:  # tensorflow/tpu: deconv, batch norm, activation
            after_deconv = [batch_norm(norm, "deconv_bn"), activation_layer(activation)]
        elif activation != "relu":
            after_deconv = [activation_layer(activation)]
        self._upsample = tf.keras.layers.Conv2DTranspose(
            num_filters, 2, strides=2, activation=None if after_deconv else "relu",
            use_bias=conv_bias_with_bn or not (use_bn and deconv_bn), name="deconv")
        if after_deconv:  # only then tracked, so default checkpoints keep their object paths
            self._after_deconv = after_deconv
        self._logits = tf.keras.layers.Conv2D(num_classes, 1, name="mask_logits")

    def call(self, roi_features: tf.Tensor, training=None) -> Dict[str, tf.Tensor]:
        batch, rois = tf.shape(roi_features)[0], roi_features.shape[1]
        x = _apply(self._convs, _per_roi(roi_features), training)
        x = self._upsample(x)
        if hasattr(self, "_after_deconv"):
            x = _apply(self._after_deconv, x, training)
        logits = self._logits(x)
        return {"mask_logits": tf.reshape(logits, tf.concat([[batch, rois],
                                                             tf.shape(logits)[1:]], 0))}


class AttributeHead(tf.keras.layers.Layer):
    """RoI features [B, K, S, S, C] -> attribute logits [B, K, T]: convs, flatten, fc, logits."""

    def __init__(self, num_attributes: int, num_convs: int, num_filters: int, fc_dims: int,
                 use_bn: bool, norm: NormConfig = NormConfig(), conv_bias_with_bn: bool = False,
                 activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self._num_attributes = num_attributes
        self._convs = _conv_stack(num_convs, num_filters, use_bn, "attribute", norm,
                                  conv_bias_with_bn, activation)
        self._fc = [tf.keras.layers.Dense(fc_dims, use_bias=conv_bias_with_bn or not use_bn,
                                          name="fc")]
        if use_bn:
            self._fc.append(batch_norm(norm, "fc_bn"))
        self._fc.append(activation_layer(activation))
        self._logits = tf.keras.layers.Dense(num_attributes, name="attribute_logits")

    def call(self, roi_features: tf.Tensor, training=None) -> Dict[str, tf.Tensor]:
        batch, rois = tf.shape(roi_features)[0], roi_features.shape[1]
        x = _apply(self._convs, _per_roi(roi_features), training)
        x = _apply(self._fc, tf.reshape(x, [tf.shape(x)[0], -1]), training)
        return {"attribute_logits": tf.reshape(self._logits(x),
                                               [batch, rois, self._num_attributes])}
