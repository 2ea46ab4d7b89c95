"""Feature pyramid network: lateral 1x1 + top-down upsampling + 3x3 output convs.

Input {level: [B, H_l, W_l, C_l]} for backbone levels; output {level: [B, H_l,
W_l, num_filters]} for min_level..max_level, levels above the backbone's made
by stride-2 max pooling (as for P6 in Mask R-CNN).
"""
from typing import Dict

import tensorflow as tf


class Fpn(tf.keras.layers.Layer):
    def __init__(self, min_level: int, max_level: int, num_filters: int, backbone_max_level: int = 5,
                 **kwargs):
        super().__init__(**kwargs)
        self._min_level = min_level
        self._max_level = max_level
        self._top = min(max_level, backbone_max_level)
        self._lateral = {level: tf.keras.layers.Conv2D(num_filters, 1, name=f"lateral_p{level}")
                         for level in range(min_level, self._top + 1)}
        self._output = {level: tf.keras.layers.Conv2D(num_filters, 3, padding="same",
                                                      name=f"output_p{level}")
                        for level in range(min_level, self._top + 1)}

    def call(self, features: Dict[int, tf.Tensor]) -> Dict[int, tf.Tensor]:
        merged = self._lateral[self._top](features[self._top])
        outputs = {self._top: self._output[self._top](merged)}
        for level in range(self._top - 1, self._min_level - 1, -1):
            lateral = self._lateral[level](features[level])
            upsampled = tf.repeat(tf.repeat(merged, 2, axis=1), 2, axis=2)
            merged = lateral + upsampled[:, :tf.shape(lateral)[1], :tf.shape(lateral)[2], :]
            outputs[level] = self._output[level](merged)
        for level in range(self._top + 1, self._max_level + 1):
            outputs[level] = tf.nn.max_pool2d(outputs[level - 1], 1, 2, "VALID")
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
