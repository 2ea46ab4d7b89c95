"""Geometric helpers of the input parser (plain TF, graph-safe).

Boxes are [ymin, xmin, ymax, xmax]; "normalised" means divided by the image
height/width, "pixels" means absolute coordinates.
"""
from typing import Optional, Tuple

import tensorflow as tf


def horizontal_flip(image: tf.Tensor, boxes: tf.Tensor, masks: tf.Tensor
                    ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Mirrors an image [H, W, C], its normalised boxes [N, 4] and masks [N, H, W]."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    flipped_boxes = tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)
    return image[:, ::-1, :], flipped_boxes, masks[:, :, ::-1]


def resize_and_crop(image: tf.Tensor, output_size: Tuple[int, int], scale_min: float = 1.0,
                    scale_max: float = 1.0, seed=None, half_pixel_centers: bool = True
                    ) -> Tuple[tf.Tensor, tf.Tensor]:
    """Scales an image to fit ``output_size * s`` (s uniform in [scale_min, scale_max]),
    crops a random window of at most ``output_size`` when larger, and pads to it.
    Bilinear resize with half-pixel centres (TensorFlow 2), or without them
    (``half_pixel_centers=False``: TF1's resize_images, which tensorflow/tpu's parsers use).

    Args:
      image: float [H, W, C].
      output_size: (height, width) of the result.

    Returns:
      image float [output_h, output_w, C] and image_info float [4, 2]:
      [[original h, w], [scaled h, w], [scale y, x], [crop offset y, x]] where a
      pixel p of the original lands at p * scale - offset.
    """
    original = tf.cast(tf.shape(image)[:2], tf.float32)
    output = tf.constant(output_size, tf.float32)
    if scale_min == scale_max:
        random_scale = tf.constant(scale_min, tf.float32)
    else:
        random_scale = tf.random.uniform([], scale_min, scale_max, seed=seed)
    target = output * random_scale
    scale = tf.reduce_min(target / original)
    scaled = tf.round(original * scale)
    image_scale = scaled / original
    room = tf.maximum(scaled - output, 0.0)
    if scale_min == scale_max == 1.0:
        offset = tf.zeros([2], tf.float32)
    else:
        offset = tf.floor(room * tf.random.uniform([2], 0, 1, seed=seed))
    if half_pixel_centers:
        resized = tf.image.resize(image, tf.cast(scaled, tf.int32), method="bilinear")
    else:
        resized = tf.compat.v1.image.resize_bilinear(
            image[tf.newaxis], tf.cast(scaled, tf.int32), align_corners=False,
            half_pixel_centers=False)[0]
    offset_int = tf.cast(offset, tf.int32)
    cropped = resized[offset_int[0]:offset_int[0] + output_size[0],
                      offset_int[1]:offset_int[1] + output_size[1], :]
    padded = tf.image.pad_to_bounding_box(cropped, 0, 0, output_size[0], output_size[1])
    image_info = tf.stack([original, scaled, image_scale, offset])
    return padded, image_info


def zero_padding(image: tf.Tensor, image_info: tf.Tensor) -> tf.Tensor:
    """``image`` [H, W, C] with the padding that ``resize_and_crop`` added set to 0 (applied
    after normalising, this pads with the mean colour)."""
    valid = tf.cast(tf.minimum(image_info[1] - image_info[3],
                               tf.cast(tf.shape(image)[:2], tf.float32)), tf.int32)
    rows = tf.range(tf.shape(image)[0])[:, tf.newaxis] < valid[0]
    columns = tf.range(tf.shape(image)[1])[tf.newaxis, :] < valid[1]
    return tf.where(tf.logical_and(rows, columns)[..., tf.newaxis], image, tf.zeros_like(image))


def identity_image_info(size: int, batch: Optional[int] = None) -> tf.Tensor:
    """image_info of an S x S image fed unscaled and uncropped: float32 [4, 2], or
    [batch, 4, 2] when ``batch`` is given; rows as in ``resize_and_crop``:
    [[S, S], [S, S], [1, 1], [0, 0]]."""
    rows = [[size, size], [size, size], [1, 1], [0, 0]]
    return tf.constant(rows if batch is None else [rows] * batch, tf.float32)


def boxes_to_output(normalised_boxes: tf.Tensor, image_info: tf.Tensor) -> tf.Tensor:
    """Normalised boxes [N, 4] of the original image -> pixel boxes of the parser output."""
    original, scale, offset = image_info[0], image_info[2], image_info[3]
    factor = tf.tile(original * scale, [2])
    return normalised_boxes * factor - tf.tile(offset, [2])


def per_coordinate(pairs: tf.Tensor) -> tf.Tensor:
    """(y, x) pairs [..., 2] -> [..., 1, 4] (y, x, y, x), broadcasting over a box axis."""
    return tf.concat([pairs, pairs], axis=-1)[..., tf.newaxis, :]


def _undo_scale_and_crop(output_boxes: tf.Tensor, image_info: tf.Tensor,
                         divisor: tf.Tensor) -> tf.Tensor:
    """(output pixel + crop offset) / divisor: the inverse of resize_and_crop's
    ``p * scale - offset``, divided by ``divisor`` [..., 2] (y, x) in place of the scale."""
    return (output_boxes + per_coordinate(image_info[..., 3, :])) / per_coordinate(divisor)


def boxes_to_original_pixels(output_boxes: tf.Tensor, image_info: tf.Tensor) -> tf.Tensor:
    """Pixel boxes [..., N, 4] of the parser output -> pixel boxes of the original image
    (not clipped); image_info [..., 4, 2] as resize_and_crop's, one per leading index."""
    return _undo_scale_and_crop(output_boxes, image_info, image_info[..., 2, :])


def boxes_to_original(output_boxes: tf.Tensor, image_info: tf.Tensor) -> tf.Tensor:
    """Pixel boxes [..., N, 4] of the parser output -> normalised boxes of the original image:
    the inverse of boxes_to_output (boxes_to_original_pixels divided by the original size)."""
    return _undo_scale_and_crop(output_boxes, image_info,
                                image_info[..., 0, :] * image_info[..., 2, :])


def clip_boxes(boxes: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """Clips pixel boxes [N, 4] to [0, height] x [0, width]."""
    limits = tf.cast(tf.stack([height, width, height, width]), boxes.dtype)
    return tf.clip_by_value(boxes, 0.0, limits)


def pad_to(tensor: tf.Tensor, size: int, value) -> tf.Tensor:
    """Pads (or truncates) the first dimension of ``tensor`` to ``size`` with ``value``."""
    tensor = tensor[:size]
    padding = [[0, size - tf.shape(tensor)[0]]] + [[0, 0]] * (len(tensor.shape) - 1)
    padded = tf.pad(tensor, padding, constant_values=tf.cast(value, tensor.dtype))
    padded.set_shape([size] + tensor.shape.as_list()[1:])
    return padded
