"""Deterministic stand-in weights for a list of variables: the same (seed, name, shape)
gives the same values on every machine, so a test can rebuild a checkpoint from its
variable names and shapes alone.

Values are those of a freshly initialised network: kernels normal with variance 2 / fan_in,
batch-norm scales and moving variances near 1, offsets, biases and moving means near 0.
Such batch-norm statistics normalise nothing, so activations grow through residual blocks
(by 1e3 to 1e7 at the outputs of the reference backbones), and ReLU features give every
RoI nearly the same class logits. ``logit_scales`` therefore multiplies the values of
chosen variables (by regular expression on the name): the batch-norm scales that feed the
features, the box-delta layers, and the class, mask and attribute logits, so that a random
network gives unit-scale features and confident detections of proper boxes.
"""
import re
import zlib
from typing import Dict, Iterable, Mapping, Sequence, Tuple

import numpy as np

Shape = Tuple[int, ...]


def seeded_value(seed: int, name: str, shape: Sequence[int],
                 logit_scales: Mapping[str, float] = {}) -> np.ndarray:
    """float32 array of ``shape`` for the variable ``name`` (its last component picks the kind)."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
    shape = tuple(int(side) for side in shape)
    kind = name.rsplit("/", 1)[-1]
    if kind == "gamma":
        value = rng.uniform(0.8, 1.2, shape)
    elif kind == "moving_variance":
        value = rng.uniform(0.8, 1.2, shape)
    elif kind in ("beta", "moving_mean", "bias"):
        value = rng.normal(0.0, 0.05, shape)
    elif len(shape) >= 2:
        fan_in = int(np.prod(shape[:-1]))
        value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    else:
        value = rng.normal(0.0, 0.05, shape)
    for pattern, scale in logit_scales.items():
        if re.search(pattern, name):
            value = value * scale
    return value.astype(np.float32)


def seeded_weights(seed: int, variables: Iterable[Tuple[str, Shape]],
                   logit_scales: Mapping[str, float] = {}) -> Dict[str, np.ndarray]:
    """{name: value} for (name, shape) pairs."""
    return {name: seeded_value(seed, name, shape, logit_scales) for name, shape in variables}
