"""Exports a SavedModel for batch prediction.

  python -m model.export --config PRESET_OR_YAML [--override k=v ...]
      [--checkpoint PATH] [--image_size N] [--labels PREFIX-labels.json] --output DIR

Without --checkpoint the weights are randomly initialised (for tests). A
checkpoint is read by variable name, so checkpoints written by the training job
(graph mode) load here. The label map comes from --labels, else from
``labels.json`` in the checkpoint's directory, else is the identity (category id
= model class - 1, attribute id = index); the choice is logged, and the file is
stored as the SavedModel asset ``assets/labels.json``.
"""
import argparse
import logging
import os
import tempfile
from typing import Optional, Sequence, Tuple

import tensorflow as tf

from model.config import ConfigError, load_config
from model.config.schema import ModelConfig, PreprocessingConfig
from model.dataset import record_files
from model.label_map import Attribute, Category, LabelMap
from model.modeling.factory import build_model_with_variables
from model.serving import ServingModule
from model.variable_names import below_model_scope


def identity_label_map(config: ModelConfig) -> LabelMap:
    return LabelMap(
        tuple(Category(i, f"class {i + 1}") for i in range(config.num_classes - 1)),
        tuple(Attribute(i, f"attribute {i}") for i in range(config.num_attributes)))


def resolve_label_map(config: ModelConfig, labels: Optional[str],
                      checkpoint_dir: Optional[str]) -> Tuple[LabelMap, str]:
    """(label map, where it came from): ``labels`` (must exist), else ``LABELS_FILE`` in
    ``checkpoint_dir`` ("" is the working directory) when there is one, else the identity.
    A label map read from a file is checked against the config (``record_files``)."""
    if labels:
        if not tf.io.gfile.exists(labels):
            raise FileNotFoundError(f"--labels {labels} does not exist")
        return record_files.read_label_map(labels, config), labels
    if checkpoint_dir is not None:
        beside = os.path.join(checkpoint_dir, record_files.LABELS_FILE)
        if tf.io.gfile.exists(beside):
            return record_files.read_label_map(beside, config), beside
    return identity_label_map(config), "identity"


def restore_by_name(model: tf.keras.Model, checkpoint: str) -> None:
    """Assigns every model variable from the checkpoint tensor of the same name
    (compared below the model's own name scope)."""
    reader = tf.train.load_checkpoint(checkpoint)
    available = {below_model_scope(name): (name, shape)
                 for name, shape in reader.get_variable_to_shape_map().items()}
    missing = []
    for variable in model.variables:
        found = available.get(below_model_scope(variable.name))
        if found and list(found[1]) == variable.shape.as_list():
            variable.assign(reader.get_tensor(found[0]))
        else:
            missing.append(variable.name.split(":")[0])
    if missing:
        raise ValueError(f"{len(missing)} model variables are not in {checkpoint}: "
                         f"{', '.join(missing[:10])}")


def export(config: ModelConfig, image_size: int, output: str, checkpoint: Optional[str] = None,
           labels: Optional[str] = None) -> str:
    label_map, source = resolve_label_map(config, labels,
                                          os.path.dirname(checkpoint) if checkpoint else None)
    logging.info("label map: %s", source)
    model = build_model_with_variables(config, image_size)
    if checkpoint:
        restore_by_name(model, checkpoint)
    write_saved_model(model, label_map, image_size, output, config.preprocessing)
    return source


def write_saved_model(model: tf.keras.Model, label_map: LabelMap, image_size: int,
                      output: str, preprocessing: PreprocessingConfig) -> None:
    """Saves ``model`` (built, variables set) with the serving signatures, which preprocess
    images as ``preprocessing`` says, and the label map as the asset ``assets/labels.json``."""
    with tempfile.TemporaryDirectory() as staging:
        labels_path = os.path.join(staging, record_files.LABELS_FILE)
        with open(labels_path, "w") as stream:
            stream.write(label_map.dumps())
        module = ServingModule(model, label_map, image_size, labels_path, preprocessing)
        tf.saved_model.save(module, output, signatures={
            "serving_default": module.serve_image_bytes,
            "serve_examples": module.serve_examples,
        })


def main(argv: Optional[Sequence[str]] = None) -> None:
    logging.getLogger().setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="preset name or YAML path")
    parser.add_argument("--override", action="append", default=[], help="key.sub=value")
    parser.add_argument("--checkpoint", help="checkpoint prefix; random weights without it")
    parser.add_argument("--image_size", type=int, help="square input side (default: the config's)")
    parser.add_argument("--labels", help="label map (make_records PREFIX-labels.json)")
    parser.add_argument("--output", required=True, help="SavedModel directory")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.override)
    except ConfigError as error:
        parser.exit(2, f"error: {error}\n")
    image_size = args.image_size or config.input.image_size
    source = export(config.model, image_size, args.output, args.checkpoint, args.labels)
    print(f"SavedModel: {args.output} (input {image_size}x{image_size}, label map: {source})")


if __name__ == "__main__":
    main()
