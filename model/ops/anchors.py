"""Multilevel anchor boxes for a padded input of fixed size.

At level l (stride 2**l) there are ``num_scales * len(aspect_ratios)`` anchors
per feature-map cell, centred on the cell's centre, of base side
``anchor_size * 2**l * 2**(s / num_scales)`` for scale s and aspect ratio
r = width / height (height = side / sqrt(r), width = side * sqrt(r)).
"""
from typing import Dict, Sequence

import numpy as np
import tensorflow as tf


def anchors_per_location(num_scales: int, aspect_ratios: Sequence[float]) -> int:
    return num_scales * len(aspect_ratios)


def level_anchors(level: int, image_size: Sequence[int], num_scales: int,
                  aspect_ratios: Sequence[float], anchor_size: float,
                  tpu_rounding: bool = False) -> np.ndarray:
    """float32 [H_l, W_l, A, 4] pixel boxes [ymin, xmin, ymax, xmax] for one level.

    ``tpu_rounding``: the same boxes rounded as tensorflow/tpu's ``anchor.Anchor`` computes
    them (float32 centre minus float32 half size, not one float64 difference rounded)."""
    stride = 2 ** level
    height, width = (int(np.ceil(side / stride)) for side in image_size)
    if tpu_rounding:
        return _tpu_level_anchors(stride, height, width, num_scales, aspect_ratios, anchor_size)
    shapes = []
    for scale in range(num_scales):
        side = anchor_size * stride * 2.0 ** (scale / num_scales)
        for ratio in aspect_ratios:
            shapes.append((side / np.sqrt(ratio), side * np.sqrt(ratio)))
    half = np.array(shapes, np.float64) / 2.0  # [A, 2] (half height, half width)
    centre_y = (np.arange(height) + 0.5) * stride
    centre_x = (np.arange(width) + 0.5) * stride
    cy, cx = np.meshgrid(centre_y, centre_x, indexing="ij")
    centres = np.stack([cy, cx], axis=-1)[:, :, np.newaxis, :]  # [H, W, 1, 2]
    boxes = np.concatenate([centres - half, centres + half], axis=-1)
    return boxes.astype(np.float32)


def _tpu_level_anchors(stride, height, width, num_scales, aspect_ratios, anchor_size):
    centre_y = (np.arange(height) * stride + stride / 2).astype(np.float32)
    centre_x = (np.arange(width) * stride + stride / 2).astype(np.float32)
    cy, cx = np.meshgrid(centre_y, centre_x, indexing="ij")
    boxes = []
    for scale in range(num_scales):
        for ratio in aspect_ratios:
            side = anchor_size * stride * 2 ** (scale / float(num_scales))
            half_x = np.float32(side * ratio ** 0.5 / 2.0)
            half_y = np.float32(side * ratio ** -0.5 / 2.0)
            boxes.append(np.stack([cy - half_y, cx - half_x, cy + half_y, cx + half_x], axis=-1))
    return np.stack(boxes, axis=2).astype(np.float32)  # [H, W, A, 4]


def multilevel_anchors(min_level: int, max_level: int, image_size: Sequence[int],
                       num_scales: int, aspect_ratios: Sequence[float],
                       anchor_size: float, tpu_rounding: bool = False) -> Dict[int, tf.Tensor]:
    """{level: float32 [H_l * W_l * A, 4]} constants for levels min_level..max_level."""
    return {
        level: tf.constant(level_anchors(level, image_size, num_scales, aspect_ratios,
                                         anchor_size, tpu_rounding).reshape(-1, 4))
        for level in range(min_level, max_level + 1)
    }
