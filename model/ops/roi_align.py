"""Multilevel RoIAlign with static shapes (gathers only, TPU-friendly).

Each box is pooled from the FPN level that suits its size, level =
floor(canonical_level + log2(sqrt(area) / canonical_size)) clipped to the
available levels. Within the box, ``output_size`` x ``output_size`` bins each
average ``sampling_ratio``^2 bilinear samples taken at the sub-bin centres, with
the half-pixel offset of the "aligned" RoIAlign (feature cell i covers input
pixels [i * stride, (i + 1) * stride)). Samples more than one cell outside the
feature map read 0; closer ones read the border.

Two implementations give the same numbers: ``multilevel_roi_align`` uses only
gathers on a static-shape flat tensor (for TPUs); ``multilevel_roi_align_by_crops``
routes boxes to their level and uses TensorFlow's crop_and_resize kernel, several
times faster on CPUs and GPUs.

``multilevel_roi_align_tpu`` is tensorflow/tpu's (and the iMaterialist fork's, the same
numbers) multilevel_crop_and_resize: one sample per bin, no half-pixel offset, clamped
corners (``roi_align.type: tpu``).
"""
from typing import Dict

import tensorflow as tf

CANONICAL_LEVEL = 4
CANONICAL_SIZE = 224.0


def assign_levels(boxes: tf.Tensor, min_level: int, max_level: int) -> tf.Tensor:
    """int32 [B, K] FPN level of each pixel box [B, K, 4]."""
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    size = tf.sqrt(tf.maximum(height * width, 1e-8))
    level = tf.floor(CANONICAL_LEVEL + tf.math.log(size / CANONICAL_SIZE) / tf.math.log(2.0))
    return tf.cast(tf.clip_by_value(level, min_level, max_level), tf.int32)


def _flat_levels(features: Dict[int, tf.Tensor], batch: tf.Tensor):
    """Features {level: [B, H_l, W_l, C]} as one [B, T, C] tensor, with each level's (in
    ascending order) offset in it, height and width."""
    flat, offsets, heights, widths = [], [], [], []
    total = 0
    for level in sorted(features):
        height, width, channels = features[level].shape[1:]
        flat.append(tf.reshape(features[level], [batch, height * width, channels]))
        offsets.append(total)
        heights.append(height)
        widths.append(width)
        total += height * width
    return tf.concat(flat, axis=1), offsets, heights, widths


def _bilinear(flat: tf.Tensor, base: tf.Tensor, row_width: tf.Tensor, rows, columns,
              num_boxes: int) -> tf.Tensor:
    """Bilinear samples [B, K, P, Q, C] from ``flat`` [B, T, C] (``_flat_levels``) at the
    grid of ``rows`` x ``columns``, each (low int32 [B, K, P], high, fraction float [B, K, P])
    in cells of the box's level; ``base`` and ``row_width`` int32 [B, K, 1, 1] are the level's
    offset in ``flat`` and its width."""
    (y0, y1, fy), (x0, x1, fx) = rows, columns
    batch, channels = tf.shape(flat)[0], flat.shape[-1]

    def gather(yi, xi):  # [B, K, P], [B, K, Q] -> [B, K, P, Q, C]
        index = base + yi[..., :, tf.newaxis] * row_width + xi[..., tf.newaxis, :]
        values = tf.gather(flat, tf.reshape(index, [batch, -1]), batch_dims=1)
        return tf.reshape(values, [batch, num_boxes, yi.shape[-1], xi.shape[-1], channels])

    wy = fy[..., :, tf.newaxis, tf.newaxis]
    wx = fx[..., tf.newaxis, :, tf.newaxis]
    return ((1.0 - wy) * (1.0 - wx) * gather(y0, x0) + (1.0 - wy) * wx * gather(y0, x1)
            + wy * (1.0 - wx) * gather(y1, x0) + wy * wx * gather(y1, x1))


def multilevel_roi_align(features: Dict[int, tf.Tensor], boxes: tf.Tensor, output_size: int,
                         sampling_ratio: int = 2) -> tf.Tensor:
    """Pools [B, K, output_size, output_size, C] from features {level: [B, H_l, W_l, C]}
    for pixel boxes [B, K, 4] ([ymin, xmin, ymax, xmax] in input pixels)."""
    levels = sorted(features)
    batch = tf.shape(boxes)[0]
    num_boxes = boxes.shape[1]
    channels = features[levels[0]].shape[-1]
    flat, offsets, heights, widths = _flat_levels(features, batch)  # flat [B, T, C]

    level_index = assign_levels(boxes, levels[0], levels[-1]) - levels[0]  # [B, K]
    pick = lambda values, dtype: tf.gather(tf.constant(values, dtype), level_index)  # noqa: E731
    stride = tf.pow(2.0, tf.cast(level_index + levels[0], tf.float32))
    offset, height, width = pick(offsets, tf.int32), pick(heights, tf.int32), pick(widths, tf.int32)

    points = output_size * sampling_ratio
    fractions = (tf.range(points, dtype=tf.float32) + 0.5) / points  # [P]
    ymin, xmin, ymax, xmax = (boxes[..., i, tf.newaxis] / stride[..., tf.newaxis] for i in range(4))
    ys = ymin + (ymax - ymin) * fractions - 0.5  # [B, K, P] in feature cells
    xs = xmin + (xmax - xmin) * fractions - 0.5

    def corners(coords, size):
        size_f = tf.cast(size, tf.float32)[..., tf.newaxis]
        inside = tf.logical_and(coords >= -1.0, coords <= size_f)
        coords = tf.clip_by_value(coords, 0.0, size_f - 1.0)
        low = tf.floor(coords)
        high = tf.minimum(low + 1.0, size_f - 1.0)
        frac = coords - low
        return (tf.cast(low, tf.int32), tf.cast(high, tf.int32), frac, inside)

    y0, y1, fy, y_inside = corners(ys, height)
    x0, x1, fx, x_inside = corners(xs, width)
    sampled = _bilinear(flat, offset[..., tf.newaxis, tf.newaxis],
                        width[..., tf.newaxis, tf.newaxis], (y0, y1, fy), (x0, x1, fx), num_boxes)
    inside = tf.logical_and(y_inside[..., :, tf.newaxis], x_inside[..., tf.newaxis, :])
    sampled *= tf.cast(inside, sampled.dtype)[..., tf.newaxis]
    binned = tf.reshape(sampled, [batch, num_boxes, output_size, sampling_ratio,
                                  output_size, sampling_ratio, channels])
    return tf.reduce_mean(binned, axis=[3, 5])


def _crop_level(feature: tf.Tensor, boxes: tf.Tensor, image_index: tf.Tensor, stride: float,
                points: int) -> tf.Tensor:
    """Samples a points x points grid per box [n, 4] on one level -> [n, points, points, C].

    The feature map is padded by one replicated cell on each side, so that
    crop_and_resize's zero extrapolation starts exactly one cell outside the map.
    """
    height, width = feature.shape[1], feature.shape[2]
    padded = tf.pad(feature, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    ymin, xmin, ymax, xmax = tf.unstack(boxes / stride, axis=-1)
    # First and last sample centres in padded cells (+1 for the padding, -0.5 for alignment).
    first_y = ymin + 0.5 * (ymax - ymin) / points + 0.5
    last_y = ymin + (points - 0.5) * (ymax - ymin) / points + 0.5
    first_x = xmin + 0.5 * (xmax - xmin) / points + 0.5
    last_x = xmin + (points - 0.5) * (xmax - xmin) / points + 0.5
    normalised = tf.stack([first_y / (height + 1), first_x / (width + 1),
                           last_y / (height + 1), last_x / (width + 1)], axis=-1)
    return tf.image.crop_and_resize(padded, normalised, image_index, [points, points],
                                    method="bilinear", extrapolation_value=0.0)


def multilevel_roi_align_by_crops(features: Dict[int, tf.Tensor], boxes: tf.Tensor,
                                  output_size: int, sampling_ratio: int = 2) -> tf.Tensor:
    """Same contract and numbers as ``multilevel_roi_align``; dynamic partitioning
    by level (not for TPUs)."""
    levels = sorted(features)
    batch = tf.shape(boxes)[0]
    num_boxes = boxes.shape[1]
    channels = features[levels[0]].shape[-1]
    flat_boxes = tf.reshape(boxes, [-1, 4])
    image_index = tf.repeat(tf.range(batch), num_boxes)
    position = tf.range(tf.shape(flat_boxes)[0])
    level_index = tf.reshape(assign_levels(boxes, levels[0], levels[-1]) - levels[0], [-1])
    box_parts = tf.dynamic_partition(flat_boxes, level_index, len(levels))
    image_parts = tf.dynamic_partition(image_index, level_index, len(levels))
    position_parts = tf.dynamic_partition(position, level_index, len(levels))
    points = output_size * sampling_ratio
    crops = [_crop_level(features[level], box_parts[i], image_parts[i], 2.0 ** level, points)
             for i, level in enumerate(levels)]
    stitched = tf.dynamic_stitch(position_parts, crops)
    binned = tf.reshape(stitched, [batch, num_boxes, output_size, sampling_ratio, output_size,
                                   sampling_ratio, channels])
    return tf.reduce_mean(binned, axis=[3, 5])


def tpu_assign_levels(boxes: tf.Tensor, min_level: int, max_level: int) -> tf.Tensor:
    """int32 [B, K] level of each box as tensorflow/tpu's multilevel_crop_and_resize picks
    it: floor(log2(sqrt(area) / 224)) + 4, clipped; empty or inverted boxes get min_level."""
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    level = tf.math.floordiv(tf.math.log(tf.sqrt(height * width) / CANONICAL_SIZE),
                             tf.math.log(2.0)) + float(CANONICAL_LEVEL)
    level = tf.where(tf.math.is_nan(level), float(min_level),
                     tf.clip_by_value(level, float(min_level), float(max_level)))
    return tf.cast(level, tf.int32)


def multilevel_roi_align_tpu(features: Dict[int, tf.Tensor], boxes: tf.Tensor,
                             output_size: int) -> tf.Tensor:
    """RoIAlign as tensorflow/tpu's (and the iMaterialist fork's) detection code computes
    it: one bilinear sample per bin, at ``box_start + (i + 0.5) * box_size / output_size``
    in feature cells of the box's level (box pixels / stride, no half-pixel offset); the
    top-left corner is clamped to [0, size - 1] and the bottom-right one to size - 1,
    with the interpolation weights of the unclamped position. Same contract as
    ``multilevel_roi_align``: features {level: [B, H_l, W_l, C]}, pixel boxes [B, K, 4]
    -> [B, K, output_size, output_size, C]."""
    levels = sorted(features)
    min_level, max_level = levels[0], levels[-1]
    flat, offsets, _, widths = _flat_levels(features, tf.shape(boxes)[0])  # flat [B, T, C]

    level = tpu_assign_levels(boxes, min_level, max_level)  # [B, K]
    scale = tf.pow(2.0, tf.cast(level, tf.float32))
    ymin, xmin = boxes[..., 0] / scale, boxes[..., 1] / scale
    box_height = (boxes[..., 2] - boxes[..., 0]) / scale
    box_width = (boxes[..., 3] - boxes[..., 1]) / scale
    index = level - min_level
    stride_from_min = tf.pow(2.0, tf.cast(index, tf.float32))
    bound_y = float(features[min_level].shape[1]) / stride_from_min - 1.0  # [B, K]
    bound_x = float(features[min_level].shape[2]) / stride_from_min - 1.0

    def grid(start, size, bound):
        coords = tf.stack([start + (i + 0.5) * size / output_size for i in range(output_size)],
                          axis=2)  # [B, K, S]
        low = tf.minimum(tf.maximum(0.0, tf.floor(coords)), bound[..., tf.newaxis])
        high = tf.minimum(low + 1.0, bound[..., tf.newaxis])
        frac = coords - low
        return tf.cast(low, tf.int32), tf.cast(high, tf.int32), frac

    base = tf.gather(tf.constant(offsets, tf.int32), index)[..., tf.newaxis, tf.newaxis]
    row = tf.gather(tf.constant(widths, tf.int32), index)[..., tf.newaxis, tf.newaxis]
    return _bilinear(flat, base, row, grid(ymin, box_height, bound_y),
                     grid(xmin, box_width, bound_x), boxes.shape[1])
