"""The learning-rate schedule: linear warmup, then step decay.

  lr(step) = warmup_lr + (lr - warmup_lr) * step / warmup_steps   for step < warmup_steps
  lr(step) = lr * decay_factor ** (number of decay_steps <= step)  afterwards
"""
from typing import Sequence

import tensorflow as tf

from model.config.schema import TrainConfig


def learning_rate_at(step, learning_rate: float, warmup_steps: int, warmup_learning_rate: float,
                     decay_steps: Sequence[int], decay_factor: float) -> tf.Tensor:
    """float32 [] learning rate at an integer step (a tensor or a Python int)."""
    step = tf.cast(step, tf.float32)
    decayed = tf.constant(learning_rate, tf.float32)
    for boundary in decay_steps:
        decayed = decayed * tf.where(step >= float(boundary), decay_factor, 1.0)
    if warmup_steps <= 0:
        return decayed
    progress = tf.minimum(step / float(warmup_steps), 1.0)
    warmup = warmup_learning_rate + (learning_rate - warmup_learning_rate) * progress
    return tf.where(step < float(warmup_steps), warmup, decayed)


def learning_rate_for(step, config: TrainConfig) -> tf.Tensor:
    return learning_rate_at(step, config.learning_rate, config.warmup_steps,
                            config.warmup_learning_rate, config.decay_steps, config.decay_factor)
