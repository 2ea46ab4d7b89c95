"""Flags -> RunConfig/TPUConfig -> TPUEstimator, and the plan ``--dry_run`` prints.

On a TPU the global batch (``train.batch_size``) is split over ``num_cores``
cores, one input pipeline per host (per-host input v2), ``iterations_per_loop``
steps per session call. Without a TPU the same estimator runs on CPU/GPU with
``use_tpu=False`` and the whole batch in one step.
"""
import dataclasses
from typing import List, Optional

import tensorflow as tf

from model.config import ExperimentConfig, to_yaml
from model.label_map import LabelMap
from tpu.model_fn import build_model_fn


@dataclasses.dataclass
class ClusterSettings:
    tpu: Optional[str] = None
    tpu_zone: Optional[str] = None
    gcp_project: Optional[str] = None
    num_cores: int = 8
    iterations_per_loop: int = 100
    save_checkpoints_steps: int = 1000

    @property
    def use_tpu(self) -> bool:
        return bool(self.tpu)

    @property
    def replicas(self) -> int:
        return self.num_cores if self.use_tpu else 1


def per_replica_batch(config: ExperimentConfig, cluster: ClusterSettings) -> int:
    batch = config.train.batch_size
    if batch % cluster.replicas:
        raise ValueError(f"train.batch_size={batch} does not split over {cluster.replicas} cores")
    return batch // cluster.replicas


def build_estimator(config: ExperimentConfig, model_dir: str, cluster: ClusterSettings,
                    init_checkpoint: Optional[str] = None, skip_variables_regex: str = "",
                    label_map: Optional[LabelMap] = None):
    """The TPUEstimator of the experiment; ``label_map`` (the dataset's) for predictions."""
    per_replica_batch(config, cluster)
    resolver = None
    if cluster.use_tpu:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            cluster.tpu, zone=cluster.tpu_zone, project=cluster.gcp_project)
    run_config = tf.compat.v1.estimator.tpu.RunConfig(
        cluster=resolver,
        model_dir=model_dir,
        save_checkpoints_steps=cluster.save_checkpoints_steps,
        keep_checkpoint_max=5,
        log_step_count_steps=cluster.iterations_per_loop if cluster.use_tpu else 20,
        tpu_config=tf.compat.v1.estimator.tpu.TPUConfig(
            iterations_per_loop=cluster.iterations_per_loop,
            num_shards=cluster.num_cores if cluster.use_tpu else None,
            per_host_input_for_training=(
                tf.compat.v1.estimator.tpu.InputPipelineConfig.PER_HOST_V2)))
    model_fn = build_model_fn(config, model_dir, cluster.use_tpu, init_checkpoint,
                              skip_variables_regex, label_map=label_map)
    return tf.compat.v1.estimator.tpu.TPUEstimator(
        model_fn=model_fn, use_tpu=cluster.use_tpu, config=run_config,
        train_batch_size=config.train.batch_size,
        predict_batch_size=config.eval.batch_size * (cluster.replicas if cluster.use_tpu else 1))


def plan_lines(config: ExperimentConfig, model_dir: str, cluster: ClusterSettings,
               mode: str) -> List[str]:
    """What a run would do, without contacting a TPU."""
    train = config.train
    lines = ["resolved config:", *("  " + line for line in to_yaml(config).splitlines())]
    if cluster.use_tpu:
        lines.append(f"tpu: {cluster.tpu} (zone {cluster.tpu_zone or 'from metadata'}, project "
                     f"{cluster.gcp_project or 'from metadata'}), {cluster.num_cores} cores, "
                     "per-host input v2")
        if not model_dir.startswith("gs://"):
            lines.append(f"warning: a TPU cannot write --model_dir {model_dir}; use gs://")
    else:
        lines.append("tpu: none (use_tpu=False: CPU or GPU)")
    per_core = per_replica_batch(config, cluster)
    lines.append(f"mode: {mode}; model_dir: {model_dir}")
    lines.append(f"batch: global {train.batch_size}, per core {per_core} on {cluster.replicas} "
                 f"{'cores' if cluster.use_tpu else 'device'}")
    loops = -(-train.total_steps // cluster.iterations_per_loop)
    lines.append(f"steps: {train.total_steps} ({train.total_steps * train.batch_size} images), "
                 f"{cluster.iterations_per_loop} per loop -> {loops} loops; checkpoint every "
                 f"{cluster.save_checkpoints_steps} steps")
    decays = ", ".join(f"x{train.decay_factor:g} at {step}" for step in train.decay_steps)
    lines.append(f"learning rate: {train.warmup_learning_rate:g} -> {train.learning_rate:g} over "
                 f"{train.warmup_steps} warmup steps, then {decays or 'constant'}; momentum "
                 f"{train.momentum:g}; L2 {config.model.l2_weight_decay:g}; gradient clip "
                 f"{train.gradient_clip_norm or 'off'}")
    model = config.model
    precision = "bfloat16 compute, float32 losses" if model.bfloat16 else "float32"
    if not cluster.use_tpu:
        norm = "per batch"
    else:
        norm = "synchronised over cores" if model.norm.use_sync_bn else "per core"
    ops = ("gathers + padded NMS (TPU)" if model.static_ops_for_tpu
           else "crop_and_resize + combined NMS")
    lines.append(f"precision: {precision}; batch norm: {norm}; RoIAlign/NMS: {ops}; "
                 f"input {config.input.image_size}x{config.input.image_size}")
    return lines
