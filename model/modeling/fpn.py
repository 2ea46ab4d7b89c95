"""Feature pyramid network: lateral 1x1 + top-down upsampling + 3x3 output convs.

Input {level: [B, H_l, W_l, C_l]} for backbone levels; output {level: [B, H_l,
W_l, num_filters]} for min_level..max_level. Levels above the backbone's are made
from the level below either by stride-2 max pooling (as for P6 in Mask R-CNN,
``extra_levels="max_pool"``) or by a 3x3 stride-2 convolution with bias, ReLU
before all but the first such convolution (RetinaNet's P6/P7, as tensorflow/tpu's
detection FPN, ``extra_levels="conv"``). ``use_bn`` adds batch normalisation without
activation on every output level, after the extra levels are made from the
un-normalised ones (tensorflow/tpu).
"""
from typing import Dict, Optional

import tensorflow as tf

from model.config.schema import NormConfig
from model.modeling.norm import batch_norm

EXTRA_LEVELS = ("max_pool", "conv")


class Fpn(tf.keras.layers.Layer):
    def __init__(self, min_level: int, max_level: int, num_filters: int, backbone_max_level: int = 5,
                 extra_levels: str = "max_pool", use_bn: bool = False,
                 norm: Optional[NormConfig] = None, **kwargs):
        super().__init__(**kwargs)
        if extra_levels not in EXTRA_LEVELS:
            raise ValueError(f"fpn extra_levels must be one of {EXTRA_LEVELS}, "
                             f"got {extra_levels!r}")
        self._min_level = min_level
        self._max_level = max_level
        self._top = min(max_level, backbone_max_level)
        self._lateral = {level: tf.keras.layers.Conv2D(num_filters, 1, name=f"lateral_p{level}")
                         for level in range(min_level, self._top + 1)}
        self._output = {level: tf.keras.layers.Conv2D(num_filters, 3, padding="same",
                                                      name=f"output_p{level}")
                        for level in range(min_level, self._top + 1)}
        self._extra = ({level: tf.keras.layers.Conv2D(num_filters, 3, strides=2, padding="same",
                                                      name=f"extra_p{level}")
                        for level in range(self._top + 1, max_level + 1)}
                       if extra_levels == "conv" else None)
        norm = norm or NormConfig()
        self._bn = ({level: batch_norm(norm, f"bn_p{level}")
                     for level in range(min_level, max_level + 1)} if use_bn else None)

    def call(self, features: Dict[int, tf.Tensor], training=None) -> Dict[int, tf.Tensor]:
        merged = self._lateral[self._top](features[self._top])
        outputs = {self._top: self._output[self._top](merged)}
        for level in range(self._top - 1, self._min_level - 1, -1):
            lateral = self._lateral[level](features[level])
            upsampled = tf.repeat(tf.repeat(merged, 2, axis=1), 2, axis=2)
            merged = lateral + upsampled[:, :tf.shape(lateral)[1], :tf.shape(lateral)[2], :]
            outputs[level] = self._output[level](merged)
        for level in range(self._top + 1, self._max_level + 1):
            if self._extra is None:
                outputs[level] = tf.nn.max_pool2d(outputs[level - 1], 1, 2, "VALID")
            else:
                below = outputs[level - 1]
                outputs[level] = self._extra[level](tf.nn.relu(below) if level > self._top + 1
                                                    else below)
        if self._bn is not None:
            outputs = {level: self._bn[level](value, training=training)
                       for level, value in outputs.items()}
        return dict(sorted(outputs.items()))


class IdentityFeatures(tf.keras.layers.Layer):
    """For backbones that already output every level with the heads' width (SpineNet):
    passes levels min_level..max_level through unchanged and checks they are there."""

    def __init__(self, min_level: int, max_level: int, **kwargs):
        super().__init__(**kwargs)
        self._levels = range(min_level, max_level + 1)

    def call(self, features: Dict[int, tf.Tensor]) -> Dict[int, tf.Tensor]:
        missing = [level for level in self._levels if level not in features]
        if missing:
            raise ValueError(f"the backbone gives levels {sorted(features)}; {missing} are missing")
        return {level: features[level] for level in self._levels}
