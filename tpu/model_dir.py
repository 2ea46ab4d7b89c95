"""What the training job keeps in ``model_dir`` besides checkpoints.

- ``config.yaml``: the resolved experiment config, written at the start. A
  restart with a config that differs in anything but the schedule length
  (``train.total_steps``), the eval settings (``eval.*``), the inference-only
  post-processing (``model.postprocess.*``) or the compute-path switches that
  leave the variables as they are (``model.bfloat16``,
  ``model.static_ops_for_tpu``) is refused, naming the differing keys: the
  checkpoints there belong to the saved config.
- ``labels.json``: the label map make_records wrote next to the training
  records (``PREFIX-labels.json``; names in ``model.dataset.record_files``), so
  exports and evaluations of any checkpoint here map model classes back to the
  dataset's category and attribute ids. With ``--label_map`` the label map given there
  is written instead (in the ``PREFIX-labels.json`` form: ``write_label_map``).
"""
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf
import yaml

from model.config import MODEL_DIR_CONFIG_FILE, ExperimentConfig, loads_config, to_yaml
from model.dataset import record_files
from model.label_map import LabelMap

CONFIG_FILE = MODEL_DIR_CONFIG_FILE
RESTARTABLE_KEYS = (re.compile(r"^train\.total_steps$"), re.compile(r"^eval\."),
                    re.compile(r"^model\.postprocess\."),
                    re.compile(r"^model\.(bfloat16|static_ops_for_tpu)$"))


class ModelDirError(ValueError):
    """model_dir holds artifacts that do not belong to this run."""


def _flatten(data: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(data, dict):
        flat = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: data}


def differences(saved: ExperimentConfig, current: ExperimentConfig
                ) -> List[Tuple[str, Any, Any]]:
    """(dotted key, saved value, current value) for every leaf that differs."""
    old = _flatten(yaml.safe_load(to_yaml(saved)))
    new = _flatten(yaml.safe_load(to_yaml(current)))
    return [(key, old.get(key), new.get(key)) for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)]


def save_or_check_config(model_dir: str, config: ExperimentConfig) -> Optional[str]:
    """Writes config.yaml, or checks it against the saved one; returns a note of
    tolerated differences (None when there were none). Raises ModelDirError."""
    path = os.path.join(model_dir, CONFIG_FILE)
    note = None
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as stream:
            try:
                saved = loads_config(stream.read())
            except ValueError as error:
                raise ModelDirError(f"{path} is not a valid config: {error}") from error
        changed = differences(saved, config)
        refused = [item for item in changed
                   if not any(pattern.search(item[0]) for pattern in RESTARTABLE_KEYS)]
        if refused:
            listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in refused)
            raise ModelDirError(
                f"{model_dir} was trained with another config ({path}); differing keys: {listed}. "
                "Use a new --model_dir, or the saved config's values.")
        if changed:
            note = "config changes accepted on restart: " + "; ".join(
                f"{key}: {old!r} -> {new!r}" for key, old, new in changed)
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(path, "w") as stream:
        stream.write(to_yaml(config))
    return note


def copy_label_map(source: str, model_dir: str, config: ExperimentConfig) -> LabelMap:
    """Checks the label map against the model's class and attribute counts
    (``record_files.check_label_map``) and copies it to model_dir, or checks that the copy
    already there is the same label map. Raises LabelMapMismatch or ModelDirError."""
    label_map = record_files.read_label_map(source, config.model)
    target = os.path.join(model_dir, record_files.LABELS_FILE)
    if not _already_there(target, label_map, f"{target} differs from {source}: these records "
                          "have another label map than the ones this model_dir was trained on"):
        tf.io.gfile.makedirs(model_dir)
        tf.io.gfile.copy(source, target)
    return label_map


def write_label_map(label_map: LabelMap, model_dir: str, source: str) -> None:
    """Writes the label map read from ``source`` (checked against the config by the
    caller) as model_dir's labels.json, or checks that the one already there is the same
    label map. Raises ModelDirError."""
    target = os.path.join(model_dir, record_files.LABELS_FILE)
    if not _already_there(target, label_map, f"{target} differs from {source}: this model_dir "
                          "was trained with another label map"):
        tf.io.gfile.makedirs(model_dir)
        with tf.io.gfile.GFile(target, "w") as stream:
            stream.write(label_map.dumps())


def _already_there(target: str, label_map: LabelMap, mismatch: str) -> bool:
    """True when model_dir's label map ``target`` exists and is ``label_map``; False when it
    does not exist. Raises ModelDirError(``mismatch``) when it holds another label map."""
    if not tf.io.gfile.exists(target):
        return False
    with tf.io.gfile.GFile(target) as stream:
        if LabelMap.loads(stream.read()) != label_map:
            raise ModelDirError(mismatch)
    return True
