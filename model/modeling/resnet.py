"""ResNet-18/34/50/101 backbone (Keras layers) returning multilevel features.

Output: {level: float [B, H / 2**level, W / 2**level, C_level]} for levels 2..5.

``stem_pool_padding`` places the stem's 3x3 stride-2 max pool: "pad1" pads one row and
column on each side and pools VALID (windows centred on even pixels); "same" uses
TensorFlow's SAME padding (no row before, one after for even sides: windows start at
even pixels), as tensorflow/tpu's detection ResNet.
"""
from typing import Dict

import tensorflow as tf

from model.config.schema import NormConfig
from model.modeling.norm import batch_norm

# depth -> (block kind, blocks per stage)
_SPECS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


class FrozenBatchNorm(tf.keras.layers.BatchNormalization):
    """Batch normalisation that always uses its moving statistics and never updates them."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=False)


def _norm(freeze: bool, name: str, settings: NormConfig) -> tf.keras.layers.Layer:
    if freeze:
        return FrozenBatchNorm(momentum=settings.momentum, epsilon=settings.epsilon, name=name)
    return batch_norm(settings, name)


def _conv(filters: int, kernel: int, stride: int, name: str) -> tf.keras.layers.Layer:
    return tf.keras.layers.Conv2D(
        filters, kernel, strides=stride, use_bias=False, name=name,
        padding="same" if stride == 1 else "valid",
        kernel_initializer=tf.keras.initializers.VarianceScaling(2.0, "fan_out"))


def _pad_for_stride(inputs: tf.Tensor, kernel: int) -> tf.Tensor:
    """Fixed padding so strided convolutions do not depend on the input size's parity."""
    total = kernel - 1
    return tf.pad(inputs, [[0, 0], [total // 2, total - total // 2],
                           [total // 2, total - total // 2], [0, 0]])


class _Block(tf.keras.layers.Layer):
    """A basic (two 3x3) or bottleneck (1x1-3x3-1x1, 4x expansion) residual block."""

    def __init__(self, kind: str, filters: int, stride: int, project: bool, freeze_bn: bool,
                 norm: NormConfig = NormConfig(), **kwargs):
        super().__init__(**kwargs)
        self._stride = stride
        out_filters = filters * 4 if kind == "bottleneck" else filters
        self._shortcut = ([_conv(out_filters, 1, stride, "shortcut"), _norm(freeze_bn, "shortcut_bn", norm)]
                          if project else [])
        if kind == "bottleneck":
            spec = [(filters, 1, 1), (filters, 3, stride), (out_filters, 1, 1)]
        else:
            spec = [(filters, 3, stride), (out_filters, 3, 1)]
        self._convs = [(_conv(f, k, s, f"conv{i}"), _norm(freeze_bn, f"bn{i}", norm), k, s)
                       for i, (f, k, s) in enumerate(spec)]

    def call(self, inputs, training=None):
        shortcut = inputs
        for layer in self._shortcut:
            shortcut = layer(shortcut, training=training) if isinstance(
                layer, tf.keras.layers.BatchNormalization) else layer(shortcut)
        x = inputs
        for index, (conv, norm, kernel, stride) in enumerate(self._convs):
            x = conv(_pad_for_stride(x, kernel) if stride > 1 else x)
            x = norm(x, training=training)
            if index < len(self._convs) - 1:
                x = tf.nn.relu(x)
        return tf.nn.relu(x + shortcut)


STEM_POOL_PADDINGS = ("pad1", "same")


class ResNet(tf.keras.layers.Layer):
    def __init__(self, depth: int = 50, width_multiplier: float = 1.0, freeze_bn: bool = False,
                 norm: NormConfig = NormConfig(), stem_pool_padding: str = "pad1", **kwargs):
        super().__init__(**kwargs)
        if depth not in _SPECS:
            raise ValueError(f"ResNet depth must be one of {sorted(_SPECS)}, got {depth}")
        if stem_pool_padding not in STEM_POOL_PADDINGS:
            raise ValueError(f"ResNet stem_pool_padding must be one of {STEM_POOL_PADDINGS}, "
                             f"got {stem_pool_padding!r}")
        self._stem_pool_padding = stem_pool_padding
        kind, repeats = _SPECS[depth]
        width = lambda filters: max(8, int(round(filters * width_multiplier)))  # noqa: E731
        self._stem_conv = _conv(width(64), 7, 2, "stem_conv")
        self._stem_bn = _norm(freeze_bn, "stem_bn", norm)
        self._stages = []
        for stage, blocks in enumerate(repeats):
            filters = width(64 * 2 ** stage)
            self._stages.append([
                _Block(kind, filters, stride=2 if (block == 0 and stage > 0) else 1,
                       project=block == 0 and (stage > 0 or kind == "bottleneck"),
                       freeze_bn=freeze_bn, norm=norm, name=f"stage{stage + 2}_block{block}")
                for block in range(blocks)])

    def call(self, images, training=None) -> Dict[int, tf.Tensor]:
        x = self._stem_conv(_pad_for_stride(images, 7))
        x = tf.nn.relu(self._stem_bn(x, training=training))
        if self._stem_pool_padding == "same":
            x = tf.nn.max_pool2d(x, 3, 2, "SAME")
        else:
            x = tf.nn.max_pool2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, "VALID")
        features = {}
        for level, blocks in enumerate(self._stages, start=2):
            for block in blocks:
                x = block(x, training=training)
            features[level] = x
        return features
