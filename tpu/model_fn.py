"""The TPUEstimator model_fn: features -> Attribute-Mask R-CNN -> losses, train op or predictions.

Features (from ``tpu.input_fn``): images float32 [B, S, S, 3], image_info float32
[B, 4, 2], source_id int64 [B] (eval/predict only). Labels (training): the
parser's padded ground truth. Predictions: the detections in dataset space
(original pixels, dataset category ids; ``model.outputs``) plus image_info and
source_id, one row per image.
"""
from typing import Dict, Optional

import tensorflow as tf

from model.config.schema import ExperimentConfig
from model.label_map import LabelMap
from model.maskrcnn_losses import total_losses
from model.modeling.factory import build_model
from model.outputs import to_dataset_space
from tpu import warm_start
from tpu.schedule import learning_rate_for

TPUEstimatorSpec = tf.compat.v1.estimator.tpu.TPUEstimatorSpec


def build_model_fn(config: ExperimentConfig, model_dir: str, use_tpu: bool,
                   init_checkpoint: Optional[str] = None, skip_variables_regex: str = "",
                   summary_every_steps: int = 10, label_map: Optional[LabelMap] = None):
    """A model_fn(features, labels, mode, params) closed over the experiment; predict mode
    needs the dataset's ``label_map``."""

    def model_fn(features, labels, mode, params):
        del params  # the batch size is fixed by the input; nothing else is read from it
        model = build_model(config.model, config.input.image_size)
        if mode == tf.estimator.ModeKeys.PREDICT:
            return _predict_spec(model, features, label_map)
        if mode != tf.estimator.ModeKeys.TRAIN:
            raise ValueError("evaluation runs through predictions (tpu.evaluation), not EVAL mode")
        outputs = model(features["images"], features["image_info"], labels, training=True)
        terms = total_losses(outputs, config.model, model.trainable_variables)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        learning_rate = learning_rate_for(global_step, config.train)
        train_op = _train_op(model, terms["total_loss"], learning_rate, global_step, config, use_tpu)
        scaffold_fn = None
        if init_checkpoint:
            plan = warm_start.plan(model.variables, init_checkpoint, skip_variables_regex)
            warm_start.log_plan(plan, init_checkpoint)
            scaffold_fn = warm_start.scaffold_fn(plan, init_checkpoint)
        return TPUEstimatorSpec(
            mode=mode, loss=terms["total_loss"], train_op=train_op, scaffold_fn=scaffold_fn,
            host_call=_summaries(model_dir, terms, learning_rate, global_step,
                                 summary_every_steps))

    return model_fn


def _train_op(model, total_loss, learning_rate, global_step, config: ExperimentConfig,
              use_tpu: bool) -> tf.Operation:
    optimizer = tf.compat.v1.train.MomentumOptimizer(learning_rate, config.train.momentum)
    if use_tpu:
        optimizer = tf.compat.v1.tpu.CrossShardOptimizer(optimizer)
    variables = model.trainable_variables
    gradients = tf.gradients(total_loss, variables)
    if config.train.gradient_clip_norm > 0:
        gradients, _ = tf.clip_by_global_norm(gradients, config.train.gradient_clip_norm)
    # Batch-norm moving averages are updated by ops Keras collects on the model in graph mode.
    with tf.control_dependencies(model.updates):
        return optimizer.apply_gradients(zip(gradients, variables), global_step=global_step)


def _summaries(model_dir: str, terms: Dict[str, tf.Tensor], learning_rate: tf.Tensor,
               global_step: tf.Tensor, every_n_steps: int):
    """A host_call writing every loss term and the learning rate to TensorBoard events.

    Tensors cross from the TPU as [1]-shaped values (host_call concatenates over cores).
    """
    scalars = {**terms, "learning_rate": learning_rate}
    names = sorted(scalars)
    tensors = [tf.reshape(global_step, [1])] + [
        tf.reshape(tf.cast(scalars[name], tf.float32), [1]) for name in names]

    def write(step, *values):
        step = step[0]
        writer = tf.compat.v2.summary.create_file_writer(model_dir, max_queue=every_n_steps)
        with writer.as_default(), tf.compat.v2.summary.record_if(
                tf.equal(step % every_n_steps, 0)):
            for name, value in zip(names, values):
                tf.compat.v2.summary.scalar(f"train/{name}", tf.reduce_mean(value), step=step)
            return tf.compat.v1.summary.all_v2_summary_ops()

    return write, tensors


def _predict_spec(model, features, label_map: Optional[LabelMap]) -> TPUEstimatorSpec:
    """Predictions in dataset space (``model.outputs.to_dataset_space``), one row per image:
    source_id, image_info, num_detections, boxes (original pixels), category_ids, scores,
    mask_probabilities and, with an attribute head, attribute_probabilities."""
    if label_map is None:
        raise ValueError("predictions name dataset categories: build_model_fn needs the label map")
    detections = model(features["images"], features["image_info"], training=False)["detections"]
    predictions = {
        "source_id": features["source_id"],
        "image_info": features["image_info"],
        **to_dataset_space(detections, features["image_info"], label_map),
    }
    return TPUEstimatorSpec(mode=tf.estimator.ModeKeys.PREDICT, predictions=predictions)
