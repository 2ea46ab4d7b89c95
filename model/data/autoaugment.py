"""Detection AutoAugment policy v3 (Zoph et al., "Learning Data Augmentation Strategies for
Object Detection", 2019) for instance segmentation.

A policy is a list of sub-policies; each sample gets one sub-policy chosen uniformly
at random, whose operations run in order, each with its own probability. Levels
0..10 map to operation arguments as in the detection AutoAugment; geometric and
cutout sizes are in pixels of the image the policy sees. Signed magnitudes
(translation, rotation, shear) are negated with probability 1/2.

``distort(image, boxes, masks, "v3")`` takes and returns a sample as described in
``model.data.autoaugment_ops``: the image changes, boxes and masks move together
under geometric operations, and the instance order (hence classes and attributes)
is kept.
"""
from typing import Callable, Dict, List, Tuple

import tensorflow as tf

from model.data import autoaugment_ops as ops

MAX_LEVEL = 10.0
TRANSLATE_PIXELS = 250.0  # translation at level 10
ROTATE_DEGREES = 30.0
SHEAR = 0.3
CUTOUT_HALF_SIZE = 100  # pixels, at level 10
BOX_CUTOUT_FRACTION = 0.75  # of the box size, at level 10

# (operation, probability, level) per step; one sub-policy per row.
POLICY_V3 = (
    (("Posterize", 0.8, 2), ("TranslateX", 1.0, 8)),
    (("BoxCutout", 0.2, 10), ("Sharpness", 1.0, 8)),
    (("Rotate", 0.6, 8), ("Rotate", 0.8, 10)),
    (("Equalize", 0.8, 10), ("AutoContrast", 0.2, 10)),
    (("SolarizeAdd", 0.2, 2), ("TranslateY", 0.2, 8)),
    (("Sharpness", 0.0, 2), ("Color", 0.4, 8)),
    (("Equalize", 1.0, 8), ("TranslateY", 1.0, 8)),
    (("Posterize", 0.6, 2), ("Rotate", 0.0, 10)),
    (("AutoContrast", 0.6, 0), ("Rotate", 1.0, 6)),
    (("Equalize", 0.0, 4), ("Cutout", 0.8, 10)),
    (("Brightness", 1.0, 2), ("TranslateY", 1.0, 6)),
    (("Contrast", 0.0, 2), ("ShearY", 0.8, 0)),
    (("AutoContrast", 0.8, 10), ("Contrast", 0.2, 10)),
    (("Rotate", 1.0, 10), ("Cutout", 1.0, 10)),
    (("SolarizeAdd", 0.8, 6), ("Equalize", 0.8, 8)),
)

POLICIES = {"v3": POLICY_V3}

Operation = Callable[[ops.Sample], ops.Sample]


def _random_sign(value: float) -> tf.Tensor:
    return tf.where(tf.random.uniform([]) < 0.5, -value, value)


def _enhance_factor(level: float) -> float:
    return level / MAX_LEVEL * 1.8 + 0.1


def _image_only(function: Callable[[tf.Tensor], tf.Tensor]) -> Operation:
    return lambda sample: (function(sample[0]), sample[1], sample[2])


def operation(name: str, level: float) -> Operation:
    """The operation ``name`` at ``level`` (0..10) as a function of a sample."""
    fraction = level / MAX_LEVEL
    image_ops: Dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
        "AutoContrast": ops.autocontrast,
        "Equalize": ops.equalize,
        "Posterize": lambda image: ops.posterize(image, int(fraction * 4)),
        "SolarizeAdd": lambda image: ops.solarize_add(image, int(fraction * 110)),
        "Color": lambda image: ops.color(image, _enhance_factor(level)),
        "Contrast": lambda image: ops.contrast(image, _enhance_factor(level)),
        "Brightness": lambda image: ops.brightness(image, _enhance_factor(level)),
        "Sharpness": lambda image: ops.sharpness(image, _enhance_factor(level)),
        "Cutout": lambda image: ops.cutout(image, int(fraction * CUTOUT_HALF_SIZE)),
    }
    if name in image_ops:
        return _image_only(image_ops[name])
    if name == "BoxCutout":
        return lambda sample: (ops.box_cutout(sample[0], sample[1],
                                              fraction * BOX_CUTOUT_FRACTION),
                               sample[1], sample[2])
    geometric: Dict[str, Operation] = {
        "TranslateX": lambda s: ops.translate(s, _random_sign(fraction * TRANSLATE_PIXELS), True),
        "TranslateY": lambda s: ops.translate(s, _random_sign(fraction * TRANSLATE_PIXELS), False),
        "Rotate": lambda s: ops.rotate(s, _random_sign(fraction * ROTATE_DEGREES)),
        "ShearX": lambda s: ops.shear(s, _random_sign(fraction * SHEAR), True),
        "ShearY": lambda s: ops.shear(s, _random_sign(fraction * SHEAR), False),
    }
    if name in geometric:
        return geometric[name]
    raise ValueError(f"unknown AutoAugment operation {name!r}")


def _with_probability(function: Operation, probability: float) -> Operation:
    if probability >= 1.0:
        return function
    return lambda sample: tf.cond(tf.random.uniform([]) < probability,
                                  lambda: function(sample), lambda: sample)


def _sub_policy(steps: Tuple[Tuple[str, float, float], ...]) -> Operation:
    # Steps that never run are left out of the graph.
    chain: List[Operation] = [_with_probability(operation(name, level), probability)
                              for name, probability, level in steps if probability > 0]

    def run(sample):
        for step in chain:
            sample = step(sample)
        return sample

    return run


def distort(image: tf.Tensor, boxes: tf.Tensor, masks: tf.Tensor, policy: str = "v3"
            ) -> ops.Sample:
    """Applies one random sub-policy of ``policy``.

    Args:
      image: uint8 [H, W, 3].
      boxes: float32 [N, 4] normalised [ymin, xmin, ymax, xmax].
      masks: uint8 [N, H, W] full-image 0/1 masks of the boxes' instances.

    Returns:
      (image, boxes, masks) of the same shapes and instance order.
    """
    if policy not in POLICIES:
        raise ValueError(f"AutoAugment policy must be one of {sorted(POLICIES)}, got {policy!r}")
    branches = [_sub_policy(steps) for steps in POLICIES[policy]]
    choice = tf.random.uniform([], 0, len(branches), tf.int32)
    sample = (image, tf.cast(boxes, tf.float32), masks)
    image, boxes, masks = tf.switch_case(
        choice, [lambda branch=branch: branch(sample) for branch in branches])
    return image, boxes, masks
