"""SpineNet: the scale-permuted backbone of Du et al., "SpineNet: Learning Scale-Permuted
Backbone for Recognition and Localization" (CVPR 2020).

A stem (7x7/2 conv, 3x3/2 max pool, two level-2 bottleneck groups) feeds a chain of
blocks whose levels go up and down. Every block takes two earlier blocks, resamples
each to its own level and width (1x1 conv to ``alpha`` times the parent's width,
a 3x3/2 conv plus max pools to go down or nearest upsampling to go up, 1x1 conv to
the block's width), adds them, and applies a group of residual units. Output blocks
also absorb every earlier block of the same level and width that nothing has read.
Each output level then gets a 1x1 conv to ``endpoint_filters`` channels.

Output: {level: float [B, H / 2**level, W / 2**level, endpoint_filters]} for levels 3..7,
ready for the RPN and RoI heads without an FPN. Input sides must be multiples of 2**7.

Two switches choose between layouts with the same variables:
``strided_conv_padding`` "same" pads the stride-2 convolutions (stem, resampling) as
TensorFlow's SAME (for even sides one row after, none before, for the 3x3; two before
and three after for the 7x7); "fixed" pads (k - 1) // 2 before and the rest after and
convolves VALID, as tensorflow/tpu's conv2d_fixed_padding. ``resample_pooling``
"chained" goes down more than one level by repeated 3x3/2 max pools after the
stride-2 convolution; "single" uses one max pool of stride 2**(change - 1), size 3 for
a change of two levels and 5 for more, as tensorflow/tpu's resample_with_alpha.
"""
import dataclasses
from typing import Dict, List, Tuple

import tensorflow as tf

from model.config.schema import NormConfig
from model.modeling.activations import activation_function
from model.modeling.norm import batch_norm

# Base width of a block at each level (before the 4x expansion of bottleneck blocks).
LEVEL_FILTERS = {2: 64, 3: 128, 4: 256, 5: 256, 6: 256, 7: 256}


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    level: int
    kind: str  # "bottleneck" (1x1-3x3-1x1, 4x expansion) or "residual" (3x3-3x3)
    inputs: Tuple[int, int]  # indices into [stem block 0, stem block 1, block 0, block 1, ...]
    is_output: bool


# The SpineNet-49 permutation found by architecture search. The search's last block
# (a level-2 output) is left out: with output levels 3..7 nothing reads it.
SPINENET_49_BLOCKS = (
    BlockSpec(2, "bottleneck", (0, 1), False),
    BlockSpec(4, "residual", (0, 1), False),
    BlockSpec(3, "bottleneck", (2, 3), False),
    BlockSpec(4, "bottleneck", (2, 4), False),
    BlockSpec(6, "residual", (3, 5), False),
    BlockSpec(4, "bottleneck", (3, 5), False),
    BlockSpec(5, "residual", (6, 7), False),
    BlockSpec(7, "residual", (6, 8), False),
    BlockSpec(5, "bottleneck", (8, 9), False),
    BlockSpec(5, "bottleneck", (8, 10), False),
    BlockSpec(4, "bottleneck", (5, 10), True),
    BlockSpec(3, "bottleneck", (4, 10), True),
    BlockSpec(5, "bottleneck", (7, 12), True),
    BlockSpec(7, "bottleneck", (5, 14), True),
    BlockSpec(6, "bottleneck", (12, 14), True),
)


@dataclasses.dataclass(frozen=True)
class Scaling:
    filter_scale: float  # multiplies every block width
    resample_alpha: float  # width of the resampling path, as a fraction of the parent's
    block_repeats: int  # residual units per block
    endpoint_filters: int  # channels of each output level


SCALINGS = {
    "49S": Scaling(0.65, 0.5, 1, 128),
    "49": Scaling(1.0, 0.5, 1, 256),
    "96": Scaling(1.0, 0.5, 2, 256),
    "143": Scaling(1.0, 1.0, 3, 256),
}

STRIDED_CONV_PADDINGS = ("same", "fixed")
RESAMPLE_POOLINGS = ("chained", "single")


def _conv(filters: int, kernel: int, name: str, stride: int = 1,
          padding: str = "same") -> tf.keras.layers.Conv2D:
    """A conv without bias; with ``padding="fixed"`` and stride > 1 it convolves VALID and
    ``_strided_conv`` pads its input first."""
    return tf.keras.layers.Conv2D(
        filters, kernel, strides=stride, use_bias=False, name=name,
        padding="valid" if (padding == "fixed" and stride > 1) else "same",
        kernel_initializer=tf.keras.initializers.VarianceScaling(2.0, "fan_out"))


def _strided_conv(conv: tf.keras.layers.Conv2D, x: tf.Tensor) -> tf.Tensor:
    """Applies a stride-2 conv made by ``_conv``: pads first when it convolves VALID."""
    if conv.padding == "valid":
        total = conv.kernel_size[0] - 1
        x = tf.pad(x, [[0, 0], [total // 2, total - total // 2],
                       [total // 2, total - total // 2], [0, 0]])
    return conv(x)


def _nearest_upsample(x: tf.Tensor, factor: int) -> tf.Tensor:
    """[B, H, W, C] -> [B, H * factor, W * factor, C] by repeating each cell."""
    return tf.repeat(tf.repeat(x, factor, axis=1), factor, axis=2)


def _drop_path(x: tf.Tensor, rate: float) -> tf.Tensor:
    """Zeroes a whole residual branch per example with probability ``rate`` (stochastic depth)."""
    keep = 1.0 - rate
    shape = tf.stack([tf.shape(x)[0], 1, 1, 1])
    kept = tf.floor(keep + tf.random.uniform(shape, dtype=x.dtype))
    return x / keep * kept


class ResidualUnit(tf.keras.layers.Layer):
    """One stride-1 residual unit: [B, H, W, C_in] -> [B, H, W, filters * (4 if bottleneck else 1)]."""

    def __init__(self, kind: str, filters: int, project: bool, norm: NormConfig, activation,
                 drop_rate: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        out_filters = filters * 4 if kind == "bottleneck" else filters
        spec = ([(filters, 1), (filters, 3), (out_filters, 1)] if kind == "bottleneck"
                else [(filters, 3), (out_filters, 3)])
        self._convs = [(_conv(f, k, f"conv{i}"), batch_norm(norm, f"bn{i}"))
                       for i, (f, k) in enumerate(spec)]
        self._shortcut = ((_conv(out_filters, 1, "shortcut"), batch_norm(norm, "shortcut_bn"))
                          if project else None)
        self._activation = activation
        self._drop_rate = drop_rate

    def call(self, inputs, training=None):
        shortcut = inputs
        if self._shortcut is not None:
            conv, norm = self._shortcut
            shortcut = norm(conv(inputs), training=training)
        x = inputs
        for index, (conv, norm) in enumerate(self._convs):
            x = norm(conv(x), training=training)
            if index < len(self._convs) - 1:
                x = self._activation(x)
        if training and self._drop_rate > 0:
            x = _drop_path(x, self._drop_rate)
        return self._activation(x + shortcut)


class Resample(tf.keras.layers.Layer):
    """Brings a parent block to a target block's level and width (last BN, no activation)."""

    def __init__(self, parent_filters: int, level_change: int, target_channels: int,
                 norm: NormConfig, activation, strided_conv_padding: str = "same",
                 pooling: str = "chained", **kwargs):
        super().__init__(**kwargs)
        self._reduce = (_conv(parent_filters, 1, "reduce"), batch_norm(norm, "reduce_bn"))
        self._down = ((_conv(parent_filters, 3, "down", stride=2, padding=strided_conv_padding),
                       batch_norm(norm, "down_bn"))
                      if level_change > 0 else None)
        self._pooling = pooling
        self._level_change = level_change
        self._expand = (_conv(target_channels, 1, "expand"), batch_norm(norm, "expand_bn"))
        self._activation = activation

    def call(self, inputs, training=None):
        conv, norm = self._reduce
        x = self._activation(norm(conv(inputs), training=training))
        if self._down is not None:
            conv, norm = self._down
            x = self._activation(norm(_strided_conv(conv, x), training=training))
            if self._pooling == "single" and self._level_change > 1:
                x = tf.nn.max_pool2d(x, 3 if self._level_change == 2 else 5,
                                     2 ** (self._level_change - 1), "SAME")
            elif self._level_change > 1:
                for _ in range(self._level_change - 1):
                    x = tf.nn.max_pool2d(x, 3, 2, "SAME")
        elif self._level_change < 0:
            x = _nearest_upsample(x, 2 ** -self._level_change)
        conv, norm = self._expand
        return norm(conv(x), training=training)


@dataclasses.dataclass
class _Node:
    """What the wiring needs to know of a built block."""
    level: int
    kind: str
    channels: int
    readers: int = 0


class SpineNet(tf.keras.layers.Layer):
    """SpineNet-``model_id``: images [B, H, W, 3] -> {level: [B, H / 2**level, W / 2**level,
    endpoint_filters]} for min_level..max_level.

    Args:
      model_id: "49S", "49", "96" or "143", the scaling applied to ``blocks``.
      norm: batch-norm settings of every layer (sync BN on TPU when asked for).
      activation: "relu" (the paper's detection models) or "swish".
      stochastic_depth_rate: drop rate of the last block's residual branches in training,
        growing linearly from 0 over the blocks.
      blocks: the permutation; the SpineNet-49 one unless exploring others.
      strided_conv_padding, resample_pooling: see the module's docstring.
    """

    def __init__(self, model_id: str = "49", norm: NormConfig = NormConfig(),
                 activation: str = "relu", stochastic_depth_rate: float = 0.0,
                 min_level: int = 3, max_level: int = 7,
                 blocks: Tuple[BlockSpec, ...] = SPINENET_49_BLOCKS,
                 strided_conv_padding: str = "same", resample_pooling: str = "chained",
                 **kwargs):
        super().__init__(**kwargs)
        if strided_conv_padding not in STRIDED_CONV_PADDINGS:
            raise ValueError(f"strided_conv_padding must be one of {STRIDED_CONV_PADDINGS}, "
                             f"got {strided_conv_padding!r}")
        if resample_pooling not in RESAMPLE_POOLINGS:
            raise ValueError(f"resample_pooling must be one of {RESAMPLE_POOLINGS}, "
                             f"got {resample_pooling!r}")
        if model_id not in SCALINGS:
            raise ValueError(f"SpineNet model_id must be one of {sorted(SCALINGS)}, "
                             f"got {model_id!r}")
        outputs = sorted(spec.level for spec in blocks if spec.is_output)
        if not set(range(min_level, max_level + 1)) <= set(outputs):
            raise ValueError(f"SpineNet outputs levels {outputs}; levels {min_level}..{max_level} "
                             "were asked for")
        scaling = SCALINGS[model_id]
        self._scaling = scaling
        self._act = activation_function(activation)
        self._levels = range(min_level, max_level + 1)
        width = lambda level: int(LEVEL_FILTERS[level] * scaling.filter_scale)  # noqa: E731

        self._stem_conv = _conv(64, 7, "stem_conv", stride=2, padding=strided_conv_padding)
        self._stem_bn = batch_norm(norm, "stem_bn")
        self._stem_groups = [self._group("bottleneck", width(2), 64 if i == 0 else 4 * width(2),
                                         norm, 0.0, f"stem_block{i}") for i in range(2)]
        nodes = [_Node(2, "bottleneck", 4 * width(2)) for _ in range(2)]
        wiring = []
        self._resamples, self._block_groups = [], []
        for index, spec in enumerate(blocks):
            channels = width(spec.level) * (4 if spec.kind == "bottleneck" else 1)
            pair = []
            for slot, parent_index in enumerate(spec.inputs):
                parent = nodes[parent_index]
                parent_width = parent.channels / (4 if parent.kind == "bottleneck" else 1)
                pair.append(Resample(int(parent_width * scaling.resample_alpha),
                                     spec.level - parent.level, channels, norm, self._act,
                                     strided_conv_padding, resample_pooling,
                                     name=f"block{index}_resample{slot}"))
                parent.readers += 1
            extras = []
            if spec.is_output:
                for other_index, other in enumerate(nodes):
                    unread = other.readers == 0
                    if unread and (other.level, other.channels) == (spec.level, channels):
                        extras.append(other_index)
                        other.readers += 1
            rate = stochastic_depth_rate * (index + 1) / len(blocks)
            self._resamples.append(pair)
            self._block_groups.append(self._group(spec.kind, width(spec.level), channels, norm,
                                                  rate, f"block{index}"))
            wiring.append((spec.inputs, tuple(extras), spec))
            nodes.append(_Node(spec.level, spec.kind, channels))
        self._wiring = tuple(wiring)
        self._endpoints = [(_conv(scaling.endpoint_filters, 1, f"endpoint{level}"),
                            batch_norm(norm, f"endpoint{level}_bn")) for level in self._levels]

    def _group(self, kind, filters, in_channels, norm, drop_rate, name) -> List[ResidualUnit]:
        """``block_repeats`` residual units; only a first unit that changes width projects."""
        out_channels = filters * 4 if kind == "bottleneck" else filters
        return [ResidualUnit(kind, filters, project=(repeat == 0 and in_channels != out_channels),
                             norm=norm, activation=self._act, drop_rate=drop_rate,
                             name=f"{name}_unit{repeat}")
                for repeat in range(self._scaling.block_repeats)]

    @staticmethod
    def _run(units, x, training):
        for unit in units:
            x = unit(x, training=training)
        return x

    def call(self, images, training=None) -> Dict[int, tf.Tensor]:
        x = self._act(self._stem_bn(_strided_conv(self._stem_conv, images), training=training))
        x = tf.nn.max_pool2d(x, 3, 2, "SAME")
        net = []
        for group in self._stem_groups:
            x = self._run(group, x, training)
            net.append(x)
        outputs = {}
        for (inputs, extras, spec), pair, group in zip(self._wiring, self._resamples,
                                                       self._block_groups):
            parents = [resample(net[i], training=training) for resample, i in zip(pair, inputs)]
            parents += [net[i] for i in extras]
            total = parents[0]
            for parent in parents[1:]:  # in order, as the reference sums them
                total = total + parent
            x = self._run(group, self._act(total), training)
            net.append(x)
            if spec.is_output:
                outputs[spec.level] = x
        features = {}
        for level, (conv, norm) in zip(self._levels, self._endpoints):
            features[level] = self._act(norm(conv(outputs[level]), training=training))
        return features
