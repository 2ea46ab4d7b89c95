"""Counts the multiply-adds of one inference pass of a configured model.

The model is traced at batch 1 into a graph with static shapes and TensorFlow's
profiler counts the floating-point operations it knows (convolutions, matrix
products, element-wise ops); the count is halved to give multiply-adds, the unit of
the "FLOPs" column in the SpineNet and TPU detection model-zoo tables. Ops the
profiler has no count for (RoIAlign gathers, NMS) add nothing.
"""
import tensorflow as tf

from model.config.schema import ModelConfig
from model.data.augment import identity_image_info


def count_multiply_adds(config: ModelConfig, image_size: int) -> int:
    """Multiply-adds of ``AttributeMaskRCNN`` inference on one image of image_size^2 pixels."""
    from model.modeling.factory import build_model  # heavy import, only when counting

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [1, image_size, image_size, 3])
        info = identity_image_info(image_size, batch=1)
        build_model(config, image_size)(images, info, training=False)
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        profile = tf.compat.v1.profiler.profile(graph, cmd="op", options=options)
    return profile.total_float_ops // 2
