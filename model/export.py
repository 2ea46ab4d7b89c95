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
from model.config.schema import ModelConfig
from model.label_map import Attribute, Category, LabelMap
from model.modeling.maskrcnn import AttributeMaskRCNN
from model.serving import ServingModule
from model.variable_names import below_model_scope

LABELS_FILE = "labels.json"


def identity_label_map(config: ModelConfig) -> LabelMap:
    return LabelMap(
        tuple(Category(i, f"class {i + 1}") for i in range(config.num_classes - 1)),
        tuple(Attribute(i, f"attribute {i}") for i in range(config.num_attributes)))


def resolve_label_map(config: ModelConfig, labels: Optional[str],
                      checkpoint: Optional[str]) -> Tuple[LabelMap, str]:
    """(label map, where it came from)."""
    candidates = [labels] if labels else []
    if checkpoint:
        candidates.append(os.path.join(os.path.dirname(checkpoint), LABELS_FILE))
    for path in candidates:
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as stream:
                label_map = LabelMap.loads(stream.read())
            if label_map.num_classes != config.num_classes:
                raise ValueError(f"{path} has {label_map.num_classes} classes (with background), "
                                 f"the model {config.num_classes}")
            if label_map.num_attributes != config.num_attributes:
                raise ValueError(f"{path} has {label_map.num_attributes} attribute slots, "
                                 f"the model {config.num_attributes}")
            return label_map, path
        if path == labels:
            raise FileNotFoundError(f"--labels {labels} does not exist")
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
    label_map, source = resolve_label_map(config, labels, checkpoint)
    logging.info("label map: %s", source)
    model = AttributeMaskRCNN(config, image_size)
    model(tf.zeros([1, image_size, image_size, 3]),
          tf.constant([[[image_size, image_size], [image_size, image_size], [1, 1], [0, 0]]],
                      tf.float32), training=False)
    if checkpoint:
        restore_by_name(model, checkpoint)
    with tempfile.TemporaryDirectory() as staging:
        labels_path = os.path.join(staging, LABELS_FILE)
        with open(labels_path, "w") as stream:
            stream.write(label_map.dumps())
        module = ServingModule(model, label_map, image_size, labels_path)
        tf.saved_model.save(module, output, signatures={
            "serving_default": module.serve_image_bytes,
            "serve_examples": module.serve_examples,
        })
    return source


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
