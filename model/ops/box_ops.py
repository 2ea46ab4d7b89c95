"""Box arithmetic. Boxes are [..., 4] as [ymin, xmin, ymax, xmax] in pixels.

Regression targets follow the Faster R-CNN parameterisation
[dy, dx, dh, dw] = w * [(y - ya) / ha, (x - xa) / wa, log(h / ha), log(w / wa)]
of centre (y, x) and size (h, w) relative to a reference box (anchor or RoI),
scaled by per-coordinate weights w.
"""
import math
from typing import Sequence

import tensorflow as tf

# exp(dh) is capped so a bad prediction cannot produce an overflowing box.
_MAX_LOG_SCALE = math.log(1000.0 / 16.0)


def area(boxes: tf.Tensor) -> tf.Tensor:
    """[..., 4] -> [...] (zero for empty or inverted boxes)."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)


def iou(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tf.Tensor:
    """Pairwise IoU: [..., N, 4] x [..., M, 4] -> [..., N, M] (0 where the union is empty)."""
    a = tf.expand_dims(boxes_a, -2)  # [..., N, 1, 4]
    b = tf.expand_dims(boxes_b, -3)  # [..., 1, M, 4]
    top_left = tf.maximum(a[..., :2], b[..., :2])
    bottom_right = tf.minimum(a[..., 2:], b[..., 2:])
    size = tf.maximum(bottom_right - top_left, 0.0)
    intersection = size[..., 0] * size[..., 1]
    union = area(a) + area(b) - intersection
    return tf.math.divide_no_nan(intersection, union)


def _centre_size(boxes: tf.Tensor):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    height, width = ymax - ymin, xmax - xmin
    return ymin + 0.5 * height, xmin + 0.5 * width, height, width


def _plus_one_centre_size(boxes: tf.Tensor):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    height, width = ymax - ymin + 1.0, xmax - xmin + 1.0
    return ymin + 0.5 * height, xmin + 0.5 * width, height, width


def encode(boxes: tf.Tensor, references: tf.Tensor,
           weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), plus_one: bool = False) -> tf.Tensor:
    """Regression targets [..., 4] of ``boxes`` relative to same-shaped ``references``
    (``plus_one``: sizes ymax - ymin + 1, tensorflow/tpu's ``box_utils.encode_boxes``)."""
    centre_size = _plus_one_centre_size if plus_one else _centre_size
    y, x, h, w = centre_size(boxes)
    ya, xa, ha, wa = centre_size(references)
    ha, wa = tf.maximum(ha, 1e-6), tf.maximum(wa, 1e-6)
    h, w = tf.maximum(h, 1e-6), tf.maximum(w, 1e-6)
    return tf.stack([weights[0] * (y - ya) / ha, weights[1] * (x - xa) / wa,
                     weights[2] * tf.math.log(h / ha), weights[3] * tf.math.log(w / wa)], axis=-1)


def decode(deltas: tf.Tensor, references: tf.Tensor,
           weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), plus_one: bool = False) -> tf.Tensor:
    """Inverse of ``encode``: deltas [..., 4] applied to references [..., 4] -> boxes.

    ``plus_one``: tensorflow/tpu's legacy pixel convention, a box spanning pixels
    ymin..ymax has height ymax - ymin + 1 (references and results alike)."""
    ya, xa, ha, wa = (_plus_one_centre_size if plus_one else _centre_size)(references)
    dy, dx, dh, dw = tf.unstack(deltas, axis=-1)
    dy, dx = dy / weights[0], dx / weights[1]
    dh = tf.minimum(dh / weights[2], _MAX_LOG_SCALE)
    dw = tf.minimum(dw / weights[3], _MAX_LOG_SCALE)
    if plus_one:
        y, x = dy * ha + ya, dx * wa + xa
        h, w = tf.exp(dh) * ha, tf.exp(dw) * wa
        top, left = y - 0.5 * h, x - 0.5 * w
        return tf.stack([top, left, top + h - 1.0, left + w - 1.0], axis=-1)
    y, x = ya + dy * ha, xa + dx * wa
    h, w = ha * tf.exp(dh), wa * tf.exp(dw)
    return tf.stack([y - 0.5 * h, x - 0.5 * w, y + 0.5 * h, x + 0.5 * w], axis=-1)


def clip(boxes: tf.Tensor, height, width, plus_one: bool = False) -> tf.Tensor:
    """Clips boxes to [0, height] x [0, width] (scalars or tensors broadcastable to [..., 1]);
    ``plus_one`` (tensorflow/tpu's pixel convention): to [0, height - 1] x [0, width - 1]."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    height = tf.cast(height, boxes.dtype)
    width = tf.cast(width, boxes.dtype)
    if plus_one:
        height, width = height - 1.0, width - 1.0
        return tf.stack([tf.maximum(tf.minimum(ymin, height), 0.0),
                         tf.maximum(tf.minimum(xmin, width), 0.0),
                         tf.maximum(tf.minimum(ymax, height), 0.0),
                         tf.maximum(tf.minimum(xmax, width), 0.0)], axis=-1)
    return tf.stack([tf.clip_by_value(ymin, 0.0, height), tf.clip_by_value(xmin, 0.0, width),
                     tf.clip_by_value(ymax, 0.0, height), tf.clip_by_value(xmax, 0.0, width)],
                    axis=-1)


def cell_centre_crop_boxes(boxes: tf.Tensor, height, width, crop_size: int) -> tf.Tensor:
    """Boxes [..., 4] ``[ymin, xmin, ymax, xmax]`` in the continuous coordinates of a
    ``height x width`` grid (cell i spans [i, i + 1], its centre at i + 0.5) -> the
    normalised boxes with which ``tf.image.crop_and_resize`` samples a ``crop_size``
    square at the centres of the equal cells that tile each box.

    This is the convention the predicted masks are pasted back with (cell k of an
    M-cell mask over [x1, x2] is centred at x1 + (k + 0.5) (x2 - x1) / M), so training
    targets and pasted masks agree to the sub-pixel.
    """
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    half_y = (ymax - ymin) * (0.5 / crop_size)
    half_x = (xmax - xmin) * (0.5 / crop_size)
    # crop_and_resize puts normalised coordinate c on cell index c * (size - 1).
    span_y = tf.maximum(tf.cast(height, boxes.dtype) - 1.0, 1.0)
    span_x = tf.maximum(tf.cast(width, boxes.dtype) - 1.0, 1.0)
    return tf.stack([(ymin + half_y - 0.5) / span_y, (xmin + half_x - 0.5) / span_x,
                     (ymax - half_y - 0.5) / span_y, (xmax - half_x - 0.5) / span_x], axis=-1)
