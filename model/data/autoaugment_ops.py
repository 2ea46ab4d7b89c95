"""Image operations of detection AutoAugment, extended to instance masks (plain TF, graph-safe).

A sample is ``image`` uint8 [H, W, 3], ``boxes`` float [N, 4] as normalised
[ymin, xmin, ymax, xmax], and ``masks`` uint8 [N, H, W] (0/1, one full-image mask
per instance, same order as the boxes).

Colour operations (``brightness`` ... ``equalize``) and cutouts change only the
image. Geometric operations (``translate``, ``rotate``, ``shear``) warp the image
(bilinear, grey fill) and the masks (nearest, fill 0) with one transform and map
each box's corners through it: the new box is the corners' enclosing box clipped
to the image, so it still encloses its warped mask (to within a pixel of
nearest-neighbour rounding). A box pushed wholly outside the image gets zero
area, for the parser to drop with its mask, class and attributes.
"""
import math
from typing import Tuple

import tensorflow as tf

GREY = 128.0  # fill of uncovered and cut-out pixels, as in detection AutoAugment

Sample = Tuple[tf.Tensor, tf.Tensor, tf.Tensor]


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def blend(degenerate: tf.Tensor, image: tf.Tensor, factor) -> tf.Tensor:
    """degenerate + factor * (image - degenerate), clipped: 0 gives ``degenerate``, 1 the
    image, above 1 extrapolates. Both float [H, W, 3] in 0..255; returns uint8."""
    return _to_uint8(degenerate + factor * (image - degenerate))


def brightness(image: tf.Tensor, factor: float) -> tf.Tensor:
    image = tf.cast(image, tf.float32)
    return blend(tf.zeros_like(image), image, factor)


def color(image: tf.Tensor, factor: float) -> tf.Tensor:
    """Saturation: blends with the grey-level image."""
    image = tf.cast(image, tf.float32)
    return blend(tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image)), image, factor)


def contrast(image: tf.Tensor, factor: float) -> tf.Tensor:
    """Blends with a flat image at the mean grey level."""
    image = tf.cast(image, tf.float32)
    mean = tf.reduce_mean(tf.image.rgb_to_grayscale(image))
    return blend(tf.fill(tf.shape(image), mean), image, factor)


def sharpness(image: tf.Tensor, factor: float) -> tf.Tensor:
    """Blends with a 3x3-smoothed image (border pixels are not smoothed)."""
    image = tf.cast(image, tf.float32)
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
    kernel = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, 3, 1])
    smooth = tf.nn.depthwise_conv2d(image[tf.newaxis], kernel, [1, 1, 1, 1], "SAME")[0]
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    rows = tf.range(height)[:, tf.newaxis]
    cols = tf.range(width)[tf.newaxis, :]
    inner = (rows > 0) & (rows < height - 1) & (cols > 0) & (cols < width - 1)
    smooth = tf.where(inner[..., tf.newaxis], tf.round(smooth), image)
    return blend(smooth, image, factor)


def posterize(image: tf.Tensor, bits: int) -> tf.Tensor:
    """Keeps the top ``bits`` bits of each value. Fewer than 1 bit acts as 1 bit (the shift
    of an 8-bit value saturates at 7)."""
    step = 2 ** (8 - min(max(bits, 1), 8))
    return tf.cast(tf.cast(image, tf.int32) // step * step, tf.uint8)


def solarize_add(image: tf.Tensor, addition: int, threshold: int = 128) -> tf.Tensor:
    """Adds ``addition`` (clipped to 0..255) to the values below ``threshold``."""
    values = tf.cast(image, tf.int32)
    added = tf.cast(tf.clip_by_value(values + addition, 0, 255), tf.uint8)
    return tf.where(values < threshold, added, image)


def autocontrast(image: tf.Tensor) -> tf.Tensor:
    """Stretches each channel so its darkest value becomes 0 and its brightest 255."""
    image = tf.cast(image, tf.float32)
    low = tf.reduce_min(image, axis=[0, 1])
    high = tf.reduce_max(image, axis=[0, 1])
    span = high - low
    stretched = (image - low) * 255.0 / tf.where(span > 0, span, 1.0)
    return _to_uint8(tf.where(span > 0, stretched, image))


def _equalize_channel(channel: tf.Tensor) -> tf.Tensor:
    """Histogram equalisation of one int32 [H, W] channel, by PIL's lookup-table rule."""
    histogram = tf.histogram_fixed_width(channel, [0, 255], nbins=256)
    used = tf.boolean_mask(histogram, histogram > 0)
    step = (tf.reduce_sum(used) - used[-1]) // 255

    def equalised():
        table = (tf.cumsum(histogram) + step // 2) // step
        table = tf.clip_by_value(tf.concat([[0], table[:-1]], 0), 0, 255)
        return tf.gather(table, channel)

    return tf.cond(step > 0, equalised, lambda: channel)


def equalize(image: tf.Tensor) -> tf.Tensor:
    values = tf.cast(image, tf.int32)
    return tf.cast(tf.stack([_equalize_channel(values[..., c]) for c in range(3)], -1), tf.uint8)


def _fill_rectangle(image: tf.Tensor, center_y, center_x, half_height, half_width) -> tf.Tensor:
    rows = tf.range(tf.shape(image)[0])[:, tf.newaxis]
    cols = tf.range(tf.shape(image)[1])[tf.newaxis, :]
    inside = ((rows >= center_y - half_height) & (rows < center_y + half_height)
              & (cols >= center_x - half_width) & (cols < center_x + half_width))
    return tf.where(inside[..., tf.newaxis], tf.cast(GREY, image.dtype), image)


def cutout(image: tf.Tensor, half_size: int) -> tf.Tensor:
    """Greys a (2 half_size)^2 square centred on a uniformly random pixel."""
    center_y = tf.random.uniform([], 0, tf.shape(image)[0], tf.int32)
    center_x = tf.random.uniform([], 0, tf.shape(image)[1], tf.int32)
    return _fill_rectangle(image, center_y, center_x, half_size, half_size)


def box_cutout(image: tf.Tensor, boxes: tf.Tensor, fraction: float) -> tf.Tensor:
    """Greys a rectangle of ``fraction`` times the size of one random box, centred inside it."""

    def apply():
        size = tf.cast(tf.shape(image)[:2], tf.float32)
        box = tf.gather(boxes, tf.random.uniform([], 0, tf.shape(boxes)[0], tf.int32))
        low = tf.cast(box[:2] * size, tf.int32)
        high = tf.maximum(tf.cast(box[2:] * size, tf.int32), low + 1)
        center_y = tf.random.uniform([], low[0], high[0], tf.int32)
        center_x = tf.random.uniform([], low[1], high[1], tf.int32)
        half = tf.cast(fraction * tf.cast(high - low, tf.float32) / 2.0, tf.int32)
        return _fill_rectangle(image, center_y, center_x, half[0], half[1])

    return tf.cond(tf.shape(boxes)[0] > 0, apply, lambda: image)


def _affine(a, b, c, d, e, f) -> tf.Tensor:
    """The 3x3 matrix of (x, y) -> (a x + b y + c, d x + e y + f)."""
    values = [tf.cast(v, tf.float32) for v in (a, b, c, d, e, f, 0.0, 0.0, 1.0)]
    return tf.reshape(tf.stack(values), [3, 3])


def _warp_images(images: tf.Tensor, output_to_input: tf.Tensor, interpolation: str,
                 fill: float) -> tf.Tensor:
    """Resamples images [B, H, W, C] at output_to_input(pixel index) (a 3x3 matrix)."""
    transform = tf.reshape(output_to_input, [9])[:8][tf.newaxis]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transform, output_shape=tf.shape(images)[1:3],
        fill_value=fill, interpolation=interpolation, fill_mode="CONSTANT")


def warp(sample: Sample, forward: tf.Tensor) -> Sample:
    """Applies the map ``forward`` (3x3, on continuous pixel coordinates (x, y) where pixel
    (i, j) covers [j, j + 1) x [i, i + 1)) to the image, masks and boxes of a sample."""
    image, boxes, masks = sample
    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    # Image kernels sample at pixel indices (pixel centres sit at index + 0.5).
    on_indices = _affine(1, 0, -0.5, 0, 1, -0.5) @ forward @ _affine(1, 0, 0.5, 0, 1, 0.5)
    inverse = tf.linalg.inv(on_indices)
    warped_image = _warp_images(tf.cast(image, tf.float32)[tf.newaxis], inverse, "BILINEAR",
                                GREY)[0]
    warped_masks = _warp_images(masks[..., tf.newaxis], inverse, "NEAREST", 0.0)[..., 0]

    ymin, xmin, ymax, xmax = tf.unstack(boxes * tf.stack([height, width, height, width]), axis=1)
    corners_x = tf.stack([xmin, xmax, xmin, xmax], axis=1)  # [N, 4]
    corners_y = tf.stack([ymin, ymin, ymax, ymax], axis=1)
    moved = tf.einsum("ij,njk->nik", forward,
                      tf.stack([corners_x, corners_y, tf.ones_like(corners_x)], axis=1))
    new_x = tf.clip_by_value(moved[:, 0] / moved[:, 2], 0.0, width)
    new_y = tf.clip_by_value(moved[:, 1] / moved[:, 2], 0.0, height)
    new_boxes = tf.stack([tf.reduce_min(new_y, 1) / height, tf.reduce_min(new_x, 1) / width,
                          tf.reduce_max(new_y, 1) / height, tf.reduce_max(new_x, 1) / width],
                         axis=1)
    return _to_uint8(warped_image), new_boxes, warped_masks


def translate(sample: Sample, pixels, horizontal: bool) -> Sample:
    """Moves the content by ``pixels`` (right or down when positive)."""
    shift = (pixels, 0.0) if horizontal else (0.0, pixels)
    return warp(sample, _affine(1, 0, shift[0], 0, 1, shift[1]))


def _about_center(sample: Sample, matrix: tf.Tensor) -> tf.Tensor:
    center_y = tf.cast(tf.shape(sample[0])[0], tf.float32) / 2.0
    center_x = tf.cast(tf.shape(sample[0])[1], tf.float32) / 2.0
    return (_affine(1, 0, center_x, 0, 1, center_y) @ matrix
            @ _affine(1, 0, -center_x, 0, 1, -center_y))


def rotate(sample: Sample, degrees) -> Sample:
    """Rotates the content about the image centre (clockwise on screen when positive)."""
    radians = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    cos, sin = tf.cos(radians), tf.sin(radians)
    return warp(sample, _about_center(sample, _affine(cos, -sin, 0, sin, cos, 0)))


def shear(sample: Sample, level, horizontal: bool) -> Sample:
    """Shears about the image centre: x += level * y (horizontal) or y += level * x."""
    matrix = _affine(1, level, 0, 0, 1, 0) if horizontal else _affine(1, 0, 0, level, 1, 0)
    return warp(sample, _about_center(sample, matrix))
