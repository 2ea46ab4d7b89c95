"""Batch normalisation as configured by ``model.norm``, with cross-replica statistics on TPU.

Under TPUEstimator each TPU core runs the same graph on its own slice of the
global batch. ``CrossReplicaBatchNormalization`` averages the per-core batch
mean and mean of squares with ``tf.compat.v1.tpu.cross_replica_sum`` so every
core normalises with the statistics of the whole batch (sync BN). Outside a
TPU shard context (CPU, GPU, eval on one core) it is exactly
``tf.keras.layers.BatchNormalization``, fused kernel included. TPUEstimator calls
``model_fn`` inside that context, so layers built and called there synchronise.
"""
import tensorflow as tf
from tensorflow.python.tpu import tpu_function  # the shard count TPUEstimator sets

from model.config.schema import NormConfig


def _tpu_shards() -> int:
    """Number of TPU cores sharing the batch in the graph being built; 1 when not on TPU."""
    shards = tpu_function.get_tpu_context().number_of_shards
    return shards or 1


class CrossReplicaBatchNormalization(tf.keras.layers.BatchNormalization):
    """Batch norm whose training statistics are averaged over all TPU cores."""

    def call(self, inputs, training=None):
        if _tpu_shards() > 1:
            # The fused kernel computes its own moments; the unfused path asks for ours.
            self.fused = False
        return super().call(inputs, training=training)

    def _calculate_mean_and_var(self, inputs, reduction_axes, keep_dims, mask=None):
        shards = _tpu_shards()
        if shards == 1 or mask is not None:
            return super()._calculate_mean_and_var(inputs, reduction_axes, keep_dims, mask=mask)
        values = tf.cast(inputs, tf.float32)
        local_mean = tf.reduce_mean(values, axis=reduction_axes, keepdims=keep_dims)
        local_square = tf.reduce_mean(tf.square(values), axis=reduction_axes, keepdims=keep_dims)
        mean = tf.compat.v1.tpu.cross_replica_sum(local_mean) / shards
        mean_square = tf.compat.v1.tpu.cross_replica_sum(local_square) / shards
        variance = tf.maximum(mean_square - tf.square(mean), 0.0)
        return tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype)


def batch_norm(settings: NormConfig, name: str) -> tf.keras.layers.BatchNormalization:
    """A batch-norm layer over the last (channel) axis with the configured momentum and epsilon."""
    cls = CrossReplicaBatchNormalization if settings.use_sync_bn else tf.keras.layers.BatchNormalization
    return cls(momentum=settings.momentum, epsilon=settings.epsilon, name=name)
