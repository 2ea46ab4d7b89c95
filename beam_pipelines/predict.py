"""Batch prediction: images or TFRecords -> RunInference -> JSON Lines with COCO RLE masks.

  python -m beam_pipelines.predict (--model SAVED_MODEL_DIR | --checkpoint PREFIX --config YAML
      [--label_map JSON] [--image_size N] [--imported_model DIR]) \
      (--images DIR_OR_GLOB | --images_manifest FILE [--images DIR] | --tfrecords GLOB) \
      --output PREFIX \
      [--min_score_threshold 0.05] [--attribute_threshold 0.5] [--batch_size 8] \
      [--num_shards 0] [--max_image_pixels 50000000] [--max_failed_fraction 0.5] \
      [--overwrite] [--attributes full|ids|top_k=K] [--compression none|gzip] \
      [--output_table PROJECT:DATASET.TABLE [--table_write empty|append|truncate]] [Beam options]

Writes PREFIX-SSSSS-of-NNNNN.jsonl (one JSON object per detection, see
model.detection_lines; .jsonl.gz, gzip-compressed, with --compression gzip) and
PREFIX-errors.jsonl (one object per image that could not be
predicted, with ``filename``, ``code`` and ``reason``; never compressed); with
--output_table, the detections also go to that BigQuery table (bigquery_output).
Every image read is either predicted or in the errors file; the last line
printed is ``images_read=N images_predicted=N images_failed=N detections_written=N``.
Exit status 1 (after that line) when no image was predicted, or when more than
--max_failed_fraction of the images read failed; 2 for an unusable --model or
--output_table.

Work spreads over workers: the matched (or listed) paths are shuffled before
any file is read, so reading and inference do not fuse behind the one element
that matching starts from. With ``--template_location`` (DataflowRunner) the
job is written as a classic template instead of run.
"""
import argparse
import dataclasses
import functools
from typing import Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import CompressionTypes, FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from beam_pipelines import (bigquery_output, image_paths, launcher, model_source, output_prefix,
                            predict_inputs, predict_outputs, rle)
from beam_pipelines.dead_letters import ERRORS, WriteDeadLetters, errors_path, errors_sink_prefix
from beam_pipelines.inference_handlers import (RetrySingly, SavedModelSignatureHandler,
                                               example_handler)
from beam_pipelines.pipeline_metrics import counter_values
from beam_pipelines.saved_model_check import (EXAMPLE_INPUT, EXAMPLE_SIGNATURE, IMAGE_INPUT,
                                              IMAGE_SIGNATURE, ModelError, check_signature)
from model import detection_lines
from model.dataset.image_files import DEFAULT_MAX_PIXELS

SUMMARY_COUNTERS = ("images_read", "images_predicted", "images_failed", "detections_written")
MASK_THRESHOLD = 0.5
DETECTIONS_TEMPLATE = "-SSSSS-of-NNNNN"
# --compression -> (Beam compression type, detection shard suffix). The errors file
# stays plain JSON Lines: one short line per failed image, at a path known in advance.
COMPRESSIONS = {"none": (CompressionTypes.UNCOMPRESSED, ".jsonl"),
                "gzip": (CompressionTypes.GZIP, ".jsonl.gz")}
OUTPUTS = output_prefix.Outputs("--output", DETECTIONS_TEMPLATE,
                                tuple(suffix for _, suffix in COMPRESSIONS.values()),
                                files=(errors_path,), other_sinks=(errors_sink_prefix,))


def parse_args(argv: Optional[Sequence[str]]) -> Tuple[argparse.Namespace, List[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    model_source.add_flags(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", help="Directory of images, or a glob (local or gs://); "
                                         "filenames are paths below the directory / the glob's "
                                         "fixed part. A name without *, ? or [, or that names an "
                                         "existing directory, is a directory; anything else is a "
                                         "glob. Symlinks that leave it are not read. With "
                                         "--images_manifest: the directory its paths are below.")
    source.add_argument("--tfrecords", help="Glob of TFRecords written by make_records.")
    parser.add_argument("--images_manifest", default=None,
                        help="Text file (local or gs://) listing the images to predict, one path a "
                             "line: absolute / gs:// or relative to --images (default: the "
                             "manifest's directory). Blank lines and lines starting with # are "
                             "skipped; a path listed twice is predicted once.")
    parser.add_argument("--output", required=True, help="Output prefix (local or gs://).")
    bigquery_output.add_flags(parser)
    output_prefix.add_overwrite_flag(parser)
    parser.add_argument("--min_score_threshold", type=float, default=0.05,
                        help="Keep detections scoring at least this.")
    parser.add_argument("--attribute_threshold", type=float, default=0.5,
                        help="attribute_ids lists attributes with probability >= this.")
    parser.add_argument("--attributes", type=detection_lines.parse_attribute_output,
                        default=detection_lines.FULL, metavar="full|ids|top_k=K",
                        help="Attribute fields per detection: full (attribute_probabilities, "
                             "every slot, and attribute_ids; default), ids (attribute_ids only), "
                             "top_k=K (attribute_ids and the K most probable attributes).")
    parser.add_argument("--compression", choices=sorted(COMPRESSIONS), default="none",
                        help="gzip: detection shards are written gzip-compressed (.jsonl.gz).")
    parser.add_argument("--batch_size", type=int, default=8, help="Largest inference batch.")
    parser.add_argument("--min_batch_size", type=int, default=None,
                        help="Smallest inference batch (default: --batch_size; the last batch "
                             "of a bundle may be smaller).")
    parser.add_argument("--num_shards", type=int, default=0,
                        help="Number of detection shards (0: the runner decides).")
    parser.add_argument("--max_image_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="Images with more pixels (width x height, read from the header) "
                             "fail with code image_too_large instead of being decoded.")
    launcher.add_outcome_flags(parser)
    parser.add_argument("--tfx_bsl_handler", dest="tfx_bsl_handler", action="store_true",
                        default=True, help="--tfrecords: infer through tfx-bsl's handler (default).")
    parser.add_argument("--notfx_bsl_handler", dest="tfx_bsl_handler", action="store_false",
                        help="--tfrecords: call the tf.Example signature with tf.saved_model.load.")
    args, beam_args = parser.parse_known_args(argv)
    model_source.check_flags(parser, args)
    if args.images_manifest and args.tfrecords:
        parser.error("--images_manifest lists images: it does not go with --tfrecords")
    if not (args.images or args.images_manifest or args.tfrecords):
        parser.error("one of --images, --images_manifest, --tfrecords is required")
    if args.batch_size < 1 or args.num_shards < 0 or args.max_image_pixels < 1:
        parser.error("--batch_size and --max_image_pixels must be >= 1, --num_shards >= 0")
    args.min_batch_size = args.min_batch_size or args.batch_size
    if not 1 <= args.min_batch_size <= args.batch_size:
        parser.error("--min_batch_size must be in [1, --batch_size]")
    return args, beam_args


def model_handler(args: argparse.Namespace) -> KeyedModelHandler:
    """Checks --model on the launcher (ModelError) and builds the keyed, retrying handler."""
    if args.images or args.images_manifest:
        check_signature(args.model, IMAGE_SIGNATURE, IMAGE_INPUT)
        inner = SavedModelSignatureHandler(args.model, IMAGE_SIGNATURE, IMAGE_INPUT)
    else:
        check_signature(args.model, EXAMPLE_SIGNATURE, EXAMPLE_INPUT)
        inner = (example_handler(args.model, EXAMPLE_SIGNATURE) if args.tfx_bsl_handler
                 else SavedModelSignatureHandler(args.model, EXAMPLE_SIGNATURE, EXAMPLE_INPUT))
    return KeyedModelHandler(RetrySingly(inner, min_batch_size=args.min_batch_size,
                                         max_batch_size=args.batch_size))


def read_inputs(pipeline: beam.Pipeline, args: argparse.Namespace):
    """-> tagged outputs: main ((image_id, filename), model input), ``errors``.

    Image paths are shuffled (``SpreadImages``, ``UniquePaths``) between finding
    them and reading them: matching emits every path from one element, and
    without a shuffle the runner fuses reading and inference behind it, on one
    worker thread.
    """
    if args.images_manifest:
        root = predict_inputs.manifest_root(args.images_manifest, args.images)
        return (pipeline
                | "ReadManifest" >> beam.io.ReadFromText(args.images_manifest)
                | "ManifestPaths" >> beam.FlatMap(predict_inputs.manifest_path, root)
                | "UniquePaths" >> beam.Distinct()
                | "CheckImages" >> beam.ParDo(predict_inputs.ReadListedImages(
                    root, args.max_image_pixels)).with_outputs(ERRORS, main="inputs"))
    if args.images:
        pattern, root = image_paths.glob_and_root(args.images)
        return (pipeline
                | "MatchImages" >> fileio.MatchFiles(pattern)
                | "SpreadImages" >> beam.Reshuffle()
                | "ReadImages" >> fileio.ReadMatches()
                | "CheckImages" >> beam.ParDo(predict_inputs.ReadImageFiles(
                    root, args.max_image_pixels)).with_outputs(ERRORS, main="inputs"))
    return (pipeline
            | "ReadRecords" >> beam.io.ReadFromTFRecord(args.tfrecords)
            | "CheckRecords" >> beam.ParDo(predict_inputs.ReadRecords(
                args.max_image_pixels)).with_outputs(ERRORS, main="inputs"))


def attribute_output(args: argparse.Namespace) -> detection_lines.AttributeOutput:
    """--attributes, with top_k's candidates taken from the SavedModel's label map."""
    if args.attributes.mode != "top_k":
        return args.attributes
    try:
        defined = predict_outputs.defined_attribute_ids(args.model)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"--model {args.model}: its label map cannot be read ({exc})") from None
    return dataclasses.replace(args.attributes, defined_ids=defined)


def detections_suffix(args: argparse.Namespace) -> str:
    return COMPRESSIONS[args.compression][1]


def build(pipeline: beam.Pipeline, args: argparse.Namespace, handler: KeyedModelHandler) -> None:
    inputs = read_inputs(pipeline, args)
    compression_type, suffix = COMPRESSIONS[args.compression]
    attributes = attribute_output(args)
    detections = (
        inputs.inputs
        | "RunInference" >> RunInference(handler)
        | "SelectDetections" >> beam.ParDo(predict_outputs.ToDetections(
            args.min_score_threshold)).with_outputs(ERRORS, main="detections"))
    lines = (detections.detections
             | "EncodeMasksRle" >> beam.ParDo(rle.EncodeMasksRle(MASK_THRESHOLD))
             | "ToJsonLines" >> beam.FlatMap(predict_outputs.to_json_lines,
                                             args.attribute_threshold, attributes))
    _ = (lines
         | "WriteDetections" >> beam.io.WriteToText(
             args.output, file_name_suffix=suffix, num_shards=args.num_shards,
             shard_name_template=DETECTIONS_TEMPLATE, compression_type=compression_type))
    if args.output_table:
        _ = lines | "WriteTable" >> bigquery_output.WriteDetectionsTable(
            args.output_table, attributes, args.table_write)
    _ = (inputs[ERRORS], detections[ERRORS]) | "DeadLetters" >> WriteDeadLetters(args.output)


def _check_inputs_exist(args: argparse.Namespace) -> None:
    if args.images_manifest:
        if not FileSystems.exists(args.images_manifest):
            raise launcher.InputError(f"--images_manifest {args.images_manifest} does not exist")
        if args.images and not image_paths.image_source(args.images).directory:
            raise launcher.InputError(f"with --images_manifest, --images is the directory the listed "
                             f"paths are below, not a glob: {args.images}")
        return
    pattern = image_paths.glob_and_root(args.images)[0] if args.images else args.tfrecords
    # One match is enough to know the input exists: no listing of millions of objects.
    if not FileSystems.match([pattern], limits=[1])[0].metadata_list:
        flag = "--images" if args.images else "--tfrecords"
        raise launcher.InputError(f"no file matches {flag} {args.images or args.tfrecords} ({pattern})")


def run(argv: Optional[Sequence[str]] = None, save_main_session: bool = False) -> Dict[str, int]:
    """Runs the pipeline to completion and returns its counters by name ({} when
    --template_location made a template instead of running it).

    Raises TableError (first) for an unusable --output_table, ModelError (before building the
    pipeline) when --model cannot serve, OutputError when --output holds earlier output
    (without --overwrite) or lies below a file, and launcher.JobFailed (after printing the
    summary) when the job failed as a whole.
    """
    args, beam_args = parse_args(argv)
    args.output_table = bigquery_output.checked_table(args.output_table, beam_args)
    earlier = output_prefix.check(OUTPUTS, args.output, args.overwrite)
    args.model = model_source.saved_model(args, beam_args)
    handler = model_handler(args)
    _check_inputs_exist(args)
    output_prefix.remove(earlier)
    result = launcher.run_to_completion(beam_args, save_main_session,
                                        functools.partial(build, args=args, handler=handler))
    if result is None:  # a template was written; nothing ran
        return {}
    counters = counter_values(result, predict_inputs.NAMESPACE)
    for name in SUMMARY_COUNTERS:
        counters.setdefault(name, 0)
    counters.update({f"{rle.NAMESPACE}.{name}": value
                     for name, value in counter_values(result, rle.NAMESPACE).items()})
    shards = f"{args.num_shards:05d}" if args.num_shards else "NNNNN"
    table = [("table", str(args.output_table))] if args.output_table else []
    launcher.report([("detections", f"{args.output}-SSSSS-of-{shards}{detections_suffix(args)}"),
                     *table, ("errors", errors_path(args.output))], counters, SUMMARY_COUNTERS)
    launcher.check_outcome(counters, "images_predicted", args.max_failed_fraction,
                           errors_path(args.output))
    return counters


def main() -> None:
    launcher.main(run, (ModelError, output_prefix.OutputError, bigquery_output.TableError))


if __name__ == "__main__":
    main()
