"""Builds this package's model from a tensorflow/tpu detection checkpoint and its YAML.

Steps, each failing with one line (ImportError_ subclasses of ValueError):
  1. list the checkpoint's tensors and tell the family apart by them (or take it given):
     ``fast_rcnn_head/attribute-predict`` -> tensorflow/tpu's Fashionpedia project,
     ``attributes_head/attributes-predict`` -> the iMaterialist 2020 fork;
  2. turn the YAML into an ExperimentConfig (``reference_config``);
  3. build the model and pair every variable (``mapping.map_model``);
  4. assign the checkpoint's values; attribute outputs are then laid out by attribute id
     through the label map (tensorflow/tpu's 294 outputs are the taxonomy's attributes in
     ascending id order; the fork's 341 already are ids).
"""
import dataclasses
import json
import logging
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from model.checkpoint_import import checkpoint_io, mapping, reference_config
from model.config import MODEL_DIR_CONFIG_FILE, ConfigError, to_yaml
from model.config.schema import ExperimentConfig
from model.label_map import Attribute, Category, LabelMap, LabelMapError
from model.modeling.factory import build_model_with_variables
from model.variable_names import below_model_scope

_FAMILY_MARKERS = {
    reference_config.TPU_FASHIONPEDIA: "fast_rcnn_head/attribute-predict/kernel",
    reference_config.FORK_IMAT: "attributes_head/attributes-predict/kernel",
}
# Variables below this package's own model scope (a checkpoint of tpu.train).
OWN = "own"
_OWN_SCOPE = "attribute_mask_rcnn"


class CheckpointImportError(ValueError):
    """The checkpoint, YAML or label map cannot make this package's model; one line."""


@dataclasses.dataclass
class ImportedModel:
    family: str
    config: ExperimentConfig
    image_size: int
    model: tf.keras.Model
    label_map: LabelMap
    label_map_source: str


def checkpoint_variables(checkpoint: str) -> Dict[str, Tuple[int, ...]]:
    try:
        return checkpoint_io.variable_shapes(checkpoint)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointImportError(f"--checkpoint {checkpoint}: not a readable TensorFlow "
                                    f"checkpoint ({first})") from None


def detect_family(names, checkpoint: str = "the checkpoint") -> str:
    """The family of a checkpoint's tensor names, or CheckpointImportError."""
    names = set(names)
    found = [family for family, marker in _FAMILY_MARKERS.items() if marker in names]
    if len(found) == 1:
        return found[0]
    if any(name.split("/", 1)[0].startswith(_OWN_SCOPE) for name in names):
        return OWN
    sample = ", ".join(sorted(names)[:3])
    raise CheckpointImportError(
        f"{checkpoint} is not an Attribute-Mask R-CNN checkpoint of tensorflow/tpu's "
        "Fashionpedia project, of the iMaterialist 2020 fork or of this package "
        f"(none of {', '.join(_FAMILY_MARKERS.values())}; it holds {len(names)} tensors such as "
        f"{sample})")


def read_label_map(path: str) -> LabelMap:
    """A Fashionpedia/COCO JSON (categories + attributes) or a make_records labels.json."""
    try:
        with tf.io.gfile.GFile(path) as stream:
            return LabelMap.loads(stream.read())
    except tf.errors.NotFoundError:
        raise CheckpointImportError(f"--label_map {path} does not exist") from None
    except (json.JSONDecodeError, KeyError, LabelMapError, TypeError) as error:
        raise CheckpointImportError(f"--label_map {path}: not a label map ({error})") from None


def _label_map(family: str, config: ExperimentConfig, label_map: Optional[LabelMap],
               source: str) -> LabelMap:
    """Checks the label map against the checkpoint's outputs; the identity map without one."""
    num_classes, num_outputs = config.model.num_classes, config.model.num_attributes
    if label_map is None:
        if family == reference_config.TPU_FASHIONPEDIA:
            raise CheckpointImportError(
                f"this checkpoint's {num_outputs} attribute outputs are the taxonomy's attributes "
                "in id order: give --label_map (the Fashionpedia taxonomy JSON, such as "
                "category_attributes_descriptions.json) so that they get their ids")
        return LabelMap(tuple(Category(i, f"class {i + 1}") for i in range(num_classes - 1)),
                        tuple(Attribute(i, f"attribute {i}") for i in range(num_outputs)))
    if label_map.num_classes != num_classes:
        raise CheckpointImportError(
            f"--label_map {source} has {len(label_map.categories)} categories; the checkpoint "
            f"predicts {num_classes - 1} (+ background)")
    wanted = len(label_map.attributes) if family == reference_config.TPU_FASHIONPEDIA \
        else label_map.num_attributes
    if wanted != num_outputs:
        what = ("attributes" if family == reference_config.TPU_FASHIONPEDIA
                else "attribute slots (largest id + 1)")
        raise CheckpointImportError(
            f"--label_map {source} has {wanted} {what}; the checkpoint has {num_outputs} "
            "attribute outputs")
    return label_map


def _our_variables(model: tf.keras.Model) -> Dict[str, tf.Variable]:
    return {below_model_scope(variable.name): variable for variable in model.variables}


def _is_attribute_output(name: str) -> bool:
    """The attribute logits layer's variables (box_head/ or attribute_head/attribute_logits)."""
    return name.rsplit("/", 2)[-2] == "attribute_logits"


def _attribute_slots(value: np.ndarray, name: str, ids: Sequence[int],
                     num_slots: int) -> np.ndarray:
    """The attribute layer's columns (one per output) laid out at their attribute ids in
    ``num_slots`` columns: kernel 0 and bias -1e4 (probability 0) in the other slots."""
    slots = np.full(value.shape[:-1] + (num_slots,), -1e4 if name.endswith("bias") else 0.0,
                    np.float32)
    slots[..., list(ids)] = value
    return slots


def import_checkpoint(checkpoint: str, config_path: str, image_size: Optional[int] = None,
                      label_map_path: Optional[str] = None,
                      family: Optional[str] = None) -> ImportedModel:
    """The model of ``checkpoint`` (a tensorflow/tpu detection checkpoint prefix) with its
    YAML, every variable filled from the checkpoint."""
    shapes = checkpoint_variables(checkpoint)
    detected = detect_family(shapes, checkpoint)
    if family and family != detected:
        logging.warning("--family %s given; the tensors look like %s", family, detected)
    family = family or detected
    if family == OWN:
        raise CheckpointImportError(
            f"{checkpoint} is a checkpoint of this package's model: export it with "
            "python -m model.export --checkpoint (or give it to predict with its own --config)")
    try:
        config = reference_config.experiment_config(reference_config.read_yaml(config_path),
                                                    family, image_size)
    except ConfigError as error:
        raise CheckpointImportError(str(error)) from None
    size = image_size or config.input.image_size
    label_map = read_label_map(label_map_path) if label_map_path else None
    label_map = _label_map(family, config, label_map, label_map_path or "identity")

    # The model's attribute outputs are laid out by attribute id (label_map.num_attributes
    # slots); it is paired with the checkpoint as if it had the checkpoint's outputs.
    num_outputs, num_slots = config.model.num_attributes, label_map.num_attributes
    widen = num_slots != num_outputs
    config = dataclasses.replace(config, model=dataclasses.replace(
        config.model, num_attributes=num_slots))
    model = build_model_with_variables(config.model, size)
    ours = _our_variables(model)
    as_checkpoint = [(name, tuple(variable.shape.as_list()[:-1]) + (num_outputs,)
                      if widen and _is_attribute_output(name) else tuple(variable.shape.as_list()))
                     for name, variable in ours.items()]
    try:
        pairs = mapping.map_model(shapes, as_checkpoint, config.model)
    except mapping.UnmatchedVariables as error:
        raise CheckpointImportError(
            f"{checkpoint} does not fit the model of --config {config_path}: {error}") from None
    tensors = checkpoint_io.read_tensors(checkpoint, sorted(set(pairs.values())))
    ids = [attribute.id for attribute in label_map.attributes]
    for name, variable in ours.items():
        value = tensors[pairs[name]]
        variable.assign(_attribute_slots(value, name, ids, num_slots)
                        if widen and _is_attribute_output(name) else value)
    logging.info("imported %d variables (%s) from %s", len(ours), family, checkpoint)
    return ImportedModel(family, config, size, model, label_map, label_map_path or "identity")


def write_model_dir(imported: ImportedModel, model_dir: str) -> str:
    """This package's checkpoint (``model.ckpt-0``, graph-mode names, global_step 0),
    ``config.yaml`` and ``labels.json`` in ``model_dir``, for ``tpu.train --init_checkpoint``
    and ``tpu.train --mode eval``. Returns the checkpoint prefix."""
    from model.dataset import record_files

    tf.io.gfile.makedirs(model_dir)
    tensors = {f"{_OWN_SCOPE}/{name}": variable.numpy()
               for name, variable in _our_variables(imported.model).items()}
    tensors["global_step"] = np.array(0, np.int64)
    prefix = os.path.join(model_dir, "model.ckpt-0")
    checkpoint_io.write_checkpoint(prefix, tensors)
    tf.compat.v1.train.update_checkpoint_state(model_dir, prefix)
    with tf.io.gfile.GFile(os.path.join(model_dir, MODEL_DIR_CONFIG_FILE), "w") as stream:
        stream.write(to_yaml(imported.config))
    with tf.io.gfile.GFile(os.path.join(model_dir, record_files.LABELS_FILE), "w") as stream:
        stream.write(imported.label_map.dumps())
    return prefix
