"""The files make_records writes and the trainer reads: their names and the label map check.

make_records writes, for ``--output_file_prefix PREFIX``:
  PREFIX-SSSSS-of-NNNNN.tfrecord   the records, shard SSSSS of NNNNN (five digits each)
  PREFIX-labels.json               the label map (with annotations only; ``model.label_map``)
The trainer finds the label map next to the shards its file pattern matches and keeps a
copy in model_dir as ``labels.json`` (``LABELS_FILE``); model.export stores the label map
as the SavedModel asset ``assets/labels.json``. Whoever takes a label map for a model checks
it with ``check_label_map``.
"""
import re
from typing import Iterable, List, Optional

import tensorflow as tf

from model.config.schema import ModelConfig
from model.label_map import LabelMap

# The label map's name in model_dir and among a SavedModel's assets.
LABELS_FILE = "labels.json"
# The record shards: PREFIX + SHARD_TEMPLATE + RECORD_SUFFIX (Beam's shard name template).
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
RECORD_SUFFIX = ".tfrecord"
# A record shard's name: group 1 the prefix, group 2 the shard total (NNNNN).
SHARD_NAME = re.compile(r"^(.*)-\d{5}-of-(\d{5})\.tfrecord(\.gz)?$")


class LabelMapMismatch(ValueError):
    """A label map does not fit the model's class or attribute counts."""


def shards_path(prefix: str, num_shards: int) -> str:
    """``PREFIX-SSSSS-of-NNNNN.tfrecord`` with the shard total filled in, for messages."""
    return f"{prefix}-SSSSS-of-{num_shards:05d}{RECORD_SUFFIX}"


def labels_file(prefix: str) -> str:
    """``PREFIX-labels.json``: the label map make_records writes beside PREFIX's shards."""
    return prefix + "-labels.json"


def labels_file_for(file_pattern: str) -> Optional[str]:
    """``PREFIX-labels.json`` of the first shard (in name order) matching the pattern whose
    label map exists; None when there is none."""
    for name in sorted(tf.io.gfile.glob(file_pattern)):
        match = SHARD_NAME.match(name)
        if match and tf.io.gfile.exists(labels_file(match.group(1))):
            return labels_file(match.group(1))
    return None


def mixed_runs(files: Iterable[str]) -> List[str]:
    """Prefixes whose shards among ``files`` come from runs with different shard totals
    (``P-00000-of-00002`` beside ``P-00000-of-00004``): output of an earlier run left behind."""
    totals = {}
    for name in files:
        match = SHARD_NAME.match(name)
        if match:
            totals.setdefault(match.group(1), set()).add(match.group(2))
    return sorted(prefix for prefix, seen in totals.items() if len(seen) > 1)


def check_label_map(label_map: LabelMap, config: ModelConfig, source: str) -> None:
    """Raises LabelMapMismatch unless the label map (read from ``source``) has the model's
    class count (background included) and, for a model with attributes, its attribute
    slots (largest attribute id + 1). A model without attributes takes any attributes."""
    if label_map.num_classes != config.num_classes:
        raise LabelMapMismatch(
            f"{source} has {label_map.num_classes} classes with background; the model config "
            f"has model.num_classes={config.num_classes}")
    if config.num_attributes and label_map.num_attributes != config.num_attributes:
        raise LabelMapMismatch(
            f"{source} has {label_map.num_attributes} attribute slots; the model config has "
            f"model.num_attributes={config.num_attributes}")


def read_label_map(path: str, config: ModelConfig) -> LabelMap:
    """The label map in ``path`` (local or gs://), checked against the model config."""
    with tf.io.gfile.GFile(path) as stream:
        label_map = LabelMap.loads(stream.read())
    check_label_map(label_map, config, path)
    return label_map
