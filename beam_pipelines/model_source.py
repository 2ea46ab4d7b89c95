"""Where predict's SavedModel comes from: ``--model DIR``, or ``--checkpoint PREFIX
--config YAML``, which the launcher turns into a SavedModel before building the pipeline.

A checkpoint of tensorflow/tpu's detection code (Fashionpedia project or the
iMaterialist 2020 fork) is imported with ``model.import_checkpoint``'s code; a checkpoint
of this package's own training job is exported with ``model.export``'s, its --config
being this package's preset or YAML. The SavedModel is written to --imported_model, else
below the pipeline's --temp_location (so that remote workers can read it), else to a
local temporary directory.
"""
import argparse
import hashlib
import json
import tempfile
from typing import List

from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from beam_pipelines.saved_model_check import ModelError


def add_flags(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="SavedModel directory (local or gs://).")
    source.add_argument("--checkpoint",
                        help="Checkpoint prefix (model.ckpt-N) of tensorflow/tpu's detection code "
                             "or of this package's tpu.train; needs --config. The launcher makes "
                             "the SavedModel.")
    parser.add_argument("--config", help="With --checkpoint: the YAML the TPU run wrote (or the "
                                         "published one); for this package's checkpoints its "
                                         "preset or YAML.")
    parser.add_argument("--label_map", help="With --checkpoint: Fashionpedia-format JSON or "
                                            "make_records labels.json.")
    parser.add_argument("--image_size", type=int,
                        help="With --checkpoint: square input side (default: the config's).")
    parser.add_argument("--imported_model", help="With --checkpoint: where to write the "
                                                 "SavedModel (default: below --temp_location).")


def check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.checkpoint and not args.config:
        parser.error("--checkpoint needs --config (the YAML of the run that wrote it)")
    if args.model and (args.config or args.label_map or args.image_size or args.imported_model):
        parser.error("--config, --label_map, --image_size and --imported_model go with "
                     "--checkpoint, not --model")


def _destination(args: argparse.Namespace, beam_args: List[str]) -> str:
    if args.imported_model:
        return args.imported_model
    temp = PipelineOptions(beam_args).view_as(GoogleCloudOptions).temp_location
    if not temp:
        return tempfile.mkdtemp(prefix="imported-model-")
    key = json.dumps([args.checkpoint, args.config, args.label_map, args.image_size])
    return f"{temp.rstrip('/')}/imported_models/{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def saved_model(args: argparse.Namespace, beam_args: List[str]) -> str:
    """The SavedModel directory to serve: --model, or the one made from --checkpoint
    (ModelError, one line, when the checkpoint cannot be imported)."""
    if args.model:
        return args.model
    from model.checkpoint_import import importer
    from model.export import export, write_saved_model

    destination = _destination(args, beam_args)
    try:
        family = importer.detect_family(importer.checkpoint_variables(args.checkpoint),
                                        args.checkpoint)
        if family == importer.OWN:
            _export_own(args, destination, export)
        else:
            imported = importer.import_checkpoint(args.checkpoint, args.config, args.image_size,
                                                  args.label_map)
            write_saved_model(imported.model, imported.label_map, imported.image_size,
                              destination, imported.config.model.preprocessing)
    except importer.CheckpointImportError as error:
        raise ModelError(str(error)) from None
    print(f"SavedModel from --checkpoint {args.checkpoint}: {destination}")
    return destination


def _export_own(args: argparse.Namespace, destination: str, export) -> None:
    from model.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as error:
        raise ModelError(f"--config: {error}") from None
    try:
        export(config.model, args.image_size or config.input.image_size, destination,
               args.checkpoint, args.label_map)
    except (ValueError, FileNotFoundError) as error:
        raise ModelError(f"--checkpoint {args.checkpoint}: {error}") from None
