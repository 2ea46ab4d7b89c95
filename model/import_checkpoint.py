"""Imports a checkpoint of tensorflow/tpu's detection code as this package's model.

  python -m model.import_checkpoint --checkpoint PREFIX --config YAML --output SAVED_MODEL_DIR
      [--image_size N] [--label_map JSON] [--model_dir DIR] [--family tpu_fashionpedia|fork_imat]

PREFIX is a checkpoint written by tensorflow/tpu's Fashionpedia project (Attribute-Mask
R-CNN, ResNet-50/101-FPN or SpineNet-49/96/143) or by the iMaterialist 2020 fork
(SpineNet-143, attribute head on the mask RoIs); the family is told by the variables.
YAML is the published override file or the params/config YAML the TPU run wrote.
--label_map is a Fashionpedia-format JSON (categories + attributes) or a make_records
labels.json; output category ids and attribute indexes are then dataset ids.
The SavedModel serves ``beam_pipelines.predict --model``; --model_dir also writes this
package's checkpoint, config.yaml and labels.json there, for ``tpu.train
--init_checkpoint DIR/model.ckpt-0`` (fine-tuning) and ``tpu.train --mode eval``.
Every path may be gs://. Exit status 2 with one line for input that cannot be imported.
"""
import argparse
import logging
import os
import sys
from typing import Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from model.checkpoint_import import importer, reference_config  # noqa: E402
from model.export import write_saved_model  # noqa: E402


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint prefix (model.ckpt-N)")
    parser.add_argument("--config", required=True, help="the checkpoint's YAML")
    parser.add_argument("--output", required=True, help="SavedModel directory to write")
    parser.add_argument("--image_size", type=int,
                        help="square input side (default: the YAML's parser output_size)")
    parser.add_argument("--label_map", help="Fashionpedia-format JSON or make_records labels.json")
    parser.add_argument("--model_dir", help="also write this package's checkpoint + config here")
    parser.add_argument("--family", choices=reference_config.FAMILIES,
                        help="force the checkpoint family instead of telling it by its variables")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    logging.getLogger().setLevel(logging.INFO)
    args = parse_args(argv)
    try:
        imported = importer.import_checkpoint(args.checkpoint, args.config, args.image_size,
                                              args.label_map, args.family)
    except importer.CheckpointImportError as error:
        sys.stderr.write(f"error: {error}\n")
        raise SystemExit(2) from None
    write_saved_model(imported.model, imported.label_map, imported.image_size, args.output,
                      imported.config.model.preprocessing)
    print(f"SavedModel: {args.output} ({imported.family}, input {imported.image_size}x"
          f"{imported.image_size}, label map: {imported.label_map_source})")
    if args.model_dir:
        prefix = importer.write_model_dir(imported, args.model_dir)
        print(f"checkpoint: {prefix} (config.yaml and labels.json beside it)")


if __name__ == "__main__":
    main()
