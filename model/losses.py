"""Loss functions of Attribute-Mask R-CNN, each small and separate.

All take a ``weights`` tensor broadcastable to the per-element loss and return
a scalar normalised by ``normalizer`` (at least 1), so that padded or unsampled
entries contribute nothing and an empty batch gives a finite zero.
"""
import tensorflow as tf


def _normalise(total: tf.Tensor, normalizer: tf.Tensor) -> tf.Tensor:
    return total / tf.maximum(tf.cast(normalizer, total.dtype), 1.0)


def huber(predictions: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor, normalizer,
          delta: float) -> tf.Tensor:
    """Huber (smooth L1) loss summed over the last axis; weights [...]."""
    error = tf.abs(tf.cast(predictions, tf.float32) - targets)
    quadratic = tf.minimum(error, delta)
    per_element = 0.5 * quadratic ** 2 + delta * (error - quadratic)
    return _normalise(tf.reduce_sum(tf.reduce_sum(per_element, axis=-1) * weights), normalizer)


def sigmoid_cross_entropy(logits: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor,
                          normalizer) -> tf.Tensor:
    per_element = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=targets, logits=tf.cast(logits, tf.float32))
    return _normalise(tf.reduce_sum(per_element * weights), normalizer)


def softmax_cross_entropy(logits: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor,
                          normalizer) -> tf.Tensor:
    """logits [..., C], integer labels [...]."""
    per_element = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.cast(logits, tf.float32))
    return _normalise(tf.reduce_sum(per_element * weights), normalizer)


def sigmoid_focal(logits: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor, normalizer,
                  alpha: float, gamma: float) -> tf.Tensor:
    """Focal loss -alpha_t (1 - p_t)^gamma log(p_t) with p_t the probability of the target."""
    logits = tf.cast(logits, tf.float32)
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    probability = tf.sigmoid(logits)
    p_t = targets * probability + (1 - targets) * (1 - probability)
    alpha_t = targets * alpha + (1 - targets) * (1 - alpha)
    per_element = alpha_t * tf.pow(1.0 - p_t, gamma) * cross_entropy
    return _normalise(tf.reduce_sum(per_element * weights), normalizer)


def l2_weight_decay(variables, weight: float) -> tf.Tensor:
    """weight * sum of squared kernels (batch-norm parameters and biases excluded)."""
    kernels = [v for v in variables if "kernel" in v.name]
    if not kernels or weight == 0.0:
        return tf.constant(0.0)
    return weight * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in kernels]) * 2.0
