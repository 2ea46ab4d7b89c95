"""IoU-threshold matching and balanced sampling with static shapes.

Shapes carry a leading batch dimension B; N reference boxes (anchors or RoIs)
are matched against M padded ground-truth boxes.
"""
from typing import Optional, Tuple

import tensorflow as tf

FOREGROUND, BACKGROUND, IGNORED = 1, 0, -1


def match(similarity: tf.Tensor, valid: tf.Tensor, foreground_threshold: float,
          background_threshold: float, low_quality_matches: bool = True,
          ignore_region: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, tf.Tensor]:
    """Assigns each reference box a ground truth and a label.

    Args:
      similarity: float [B, N, M] IoU of references with ground truth.
      valid: bool [B, M], False for padding and for ground truth that must not be
        matched (crowd regions).
      foreground_threshold: IoU >= this -> FOREGROUND.
      background_threshold: IoU < this -> BACKGROUND; in between -> IGNORED.
      low_quality_matches: also make each valid ground truth's best reference(s)
        FOREGROUND, so that no object goes unmatched.
      ignore_region: optional bool [B, M] (crowd regions): a reference that would
        be BACKGROUND but overlaps one of them by >= background_threshold
        becomes IGNORED.

    Returns:
      matched: int32 [B, N] index of the best valid ground truth (0 when none).
      labels: int32 [B, N] FOREGROUND / BACKGROUND / IGNORED.
    """
    masked = tf.where(valid[:, tf.newaxis, :], similarity, -1.0)
    best = tf.reduce_max(masked, axis=-1)
    matched = tf.cast(tf.argmax(masked, axis=-1), tf.int32)
    labels = tf.where(best >= foreground_threshold, FOREGROUND,
                      tf.where(best < background_threshold, BACKGROUND, IGNORED))
    if low_quality_matches:
        best_per_gt = tf.reduce_max(masked, axis=-2, keepdims=True)  # [B, 1, M]
        is_best = tf.logical_and(tf.equal(masked, best_per_gt), masked > 0.0)
        is_best = tf.logical_and(is_best, valid[:, tf.newaxis, :])
        has_best = tf.reduce_any(is_best, axis=-1)
        best_gt = tf.cast(tf.argmax(tf.cast(is_best, tf.float32), axis=-1), tf.int32)
        labels = tf.where(has_best, FOREGROUND, labels)
        matched = tf.where(has_best & (best < foreground_threshold), best_gt, matched)
    if ignore_region is not None:
        crowd = tf.where(ignore_region[:, tf.newaxis, :], similarity, -1.0)
        near_crowd = tf.reduce_max(crowd, axis=-1) >= background_threshold
        labels = tf.where(tf.logical_and(tf.equal(labels, BACKGROUND), near_crowd), IGNORED, labels)
    return matched, tf.cast(labels, tf.int32)


def balanced_sample(labels: tf.Tensor, num_samples: int, foreground_fraction: float,
                    seed: Optional[int] = None) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Draws ``num_samples`` references per image, at most a fraction of them foreground.

    Args:
      labels: int32 [B, N] FOREGROUND / BACKGROUND / IGNORED.

    Returns:
      indices: int32 [B, K] sampled references (K = num_samples), foreground first.
      is_valid: bool [B, K], False for filler slots when too few references exist.
      is_foreground: bool [B, K].
    """
    num_references = labels.shape[-1]
    k = min(num_samples, num_references)
    noise = tf.random.uniform(tf.shape(labels), 0.0, 1.0, seed=seed)

    def top(condition):
        scores = tf.where(condition, noise, -1.0)
        values, indices = tf.math.top_k(scores, k=k)
        return indices, values >= 0.0

    foreground, foreground_ok = top(tf.equal(labels, FOREGROUND))
    background, background_ok = top(tf.equal(labels, BACKGROUND))
    max_foreground = int(round(num_samples * foreground_fraction))
    slots = tf.range(k)[tf.newaxis, :]
    foreground_ok = foreground_ok & (slots < max_foreground)
    num_foreground = tf.reduce_sum(tf.cast(foreground_ok, tf.int32), axis=-1, keepdims=True)
    background_ok = background_ok & (slots < num_samples - num_foreground)
    # Valid foreground first, then valid background, then filler.
    candidates = tf.concat([foreground, background], axis=-1)
    ok = tf.concat([foreground_ok, background_ok], axis=-1)
    is_fg = tf.concat([foreground_ok, tf.zeros_like(background_ok)], axis=-1)
    order = tf.cast(ok, tf.float32) * 2.0 + tf.cast(is_fg, tf.float32) \
        - tf.cast(tf.range(2 * k), tf.float32)[tf.newaxis, :] / (4.0 * k)
    _, picked = tf.math.top_k(order, k=k)
    gather = lambda values: tf.gather(values, picked, batch_dims=1)  # noqa: E731
    indices, is_valid, is_foreground = gather(candidates), gather(ok), gather(is_fg)
    if k < num_samples:  # fewer references than samples: pad with filler slots
        padding = [[0, 0], [0, num_samples - k]]
        indices = tf.pad(indices, padding)
        is_valid = tf.pad(is_valid, padding)
        is_foreground = tf.pad(is_foreground, padding)
    return indices, is_valid, is_foreground
