"""COCO/Fashionpedia JSON + images -> sharded TFRecords, on any Beam runner.

  python -m beam_pipelines.make_records \
      --image_dir gs://bucket/train --object_annotations_file gs://bucket/train.json \
      --output_file_prefix gs://bucket/records/train --num_shards 256 --include_masks \
      --runner DataflowRunner --project P --region R --temp_location gs://bucket/tmp \
      --setup_file ./setup.py

Writes PREFIX-SSSSS-of-NNNNN.tfrecord, PREFIX-labels.json (with annotations) and
PREFIX-errors.jsonl (one JSON object per failed image or skipped
annotation). The launcher streams the annotation file once to check it and to cut
its arrays into byte ranges; workers read those ranges from the file's path, so
the file never travels in the job graph nor is it held whole anywhere.
Without --object_annotations_file, every file matched by --image_dir becomes an
image-only record (prediction input); the matched paths are shuffled before any
file is read, so that the work spreads over workers instead of fusing behind the
one element matching starts from (with annotations the join by file name
already shuffles them). With --template_location (DataflowRunner) the job is
written as a classic template instead of run.
Exit status 1 (after the summary line) when no image was written, or when more
than --max_failed_fraction of the images read failed; 2 for a bad annotation file.
"""
import argparse
import functools
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import image_paths, launcher, output_prefix, record_dofns
from beam_pipelines.coco_scan import (ELEMENTS_PER_RANGE, AnnotationFileError, AnnotationSummary,
                                      scan_annotations)
from beam_pipelines.dead_letters import ERRORS, WriteDeadLetters, errors_path, errors_sink_prefix
from beam_pipelines.pipeline_metrics import counter_values
from model.dataset import record_files
from model.dataset.image_files import DEFAULT_MAX_PIXELS

SUMMARY_COUNTERS = ("images_read", "images_written", "images_failed",
                    "annotations_written", "annotations_skipped")
OUTPUTS = output_prefix.Outputs("--output_file_prefix", record_files.SHARD_TEMPLATE,
                                (record_files.RECORD_SUFFIX,),
                                files=(errors_path, record_files.labels_file),
                                other_sinks=(errors_sink_prefix,))


def parse_args(argv: Optional[Sequence[str]]) -> Tuple[argparse.Namespace, List[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image_dir", required=True,
                        help="Directory the JSON's file_names are relative to, or a glob whose "
                             "matches are named by their path below its fixed part; local or "
                             "gs://. A name without *, ? or [, or that names an existing "
                             "directory, is a directory; anything else is a glob. A file_name "
                             "must be a relative path that stays inside it (symlinks included).")
    parser.add_argument("--object_annotations_file", default=None,
                        help="COCO/Fashionpedia JSON (local or gs://). Without it: image-only records.")
    parser.add_argument("--output_file_prefix", required=True, help="Output prefix, local or gs://.")
    output_prefix.add_overwrite_flag(parser)
    parser.add_argument("--num_shards", type=int, default=32, help="Number of TFRecord shards.")
    parser.add_argument("--json_elements_per_range", type=int, default=ELEMENTS_PER_RANGE,
                        help="Images/annotations per byte range of the annotation file that one "
                             "worker reads (smaller ranges spread the reading wider).")
    parser.add_argument("--include_masks", dest="include_masks", action="store_true", default=True,
                        help="Store one PNG mask per instance (the default).")
    parser.add_argument("--noinclude_masks", "--no_include_masks", dest="include_masks",
                        action="store_false", help="Store boxes only.")
    parser.add_argument("--max_image_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="An image whose images entry or file is larger (width x height) "
                             "fails with image_too_large, before it is decoded.")
    launcher.add_outcome_flags(parser)
    args, beam_args = parser.parse_known_args(argv)
    if args.num_shards < 1 or args.json_elements_per_range < 1 or args.max_image_pixels < 1:
        parser.error("--num_shards, --json_elements_per_range and --max_image_pixels must be >= 1")
    return args, beam_args


def _write_outputs(records, errors: tuple, prefix: str, num_shards: int) -> None:
    """Records -> PREFIX-SSSSS-of-NNNNN.tfrecord; the PCollections of ``errors`` -> dead letters."""
    _ = records | "WriteRecords" >> beam.io.WriteToTFRecord(
        prefix, file_name_suffix=record_files.RECORD_SUFFIX, num_shards=num_shards,
        shard_name_template=record_files.SHARD_TEMPLATE)
    _ = errors | "DeadLetters" >> WriteDeadLetters(prefix)


def _locate_images(pipeline: beam.Pipeline, keyed_entries, source: image_paths.ImageSource):
    """(image_id, entry) -> (image_id, (entry, file path or None))."""
    if source.directory:
        return keyed_entries | "PathInImageDir" >> beam.Map(image_paths.path_in_directory,
                                                            source.name)
    pattern, root = source.pattern, source.root
    # A glob that matches nothing (even one without '*') leaves every entry missing_file.
    paths = (pipeline
             | "MatchImages" >> fileio.MatchFiles(pattern, fileio.EmptyMatchTreatment.ALLOW)
             | "KeyFilesByRelativePath" >> beam.Map(
                 lambda metadata, root: (image_paths.relative_path(metadata.path, root),
                                         metadata.path), root))
    entries = keyed_entries | "KeyEntriesByFileName" >> beam.Map(image_paths.key_by_file_name)
    return ({"entries": entries, "paths": paths}
            | "JoinFilesToEntries" >> beam.CoGroupByKey()
            | "AttachPaths" >> beam.FlatMap(image_paths.attach_matched_paths))


def build_annotated(pipeline: beam.Pipeline, args: argparse.Namespace,
                    summary: AnnotationSummary, source: image_paths.ImageSource) -> None:
    entries = (
        pipeline
        | "AnnotationFileRanges" >> beam.Create(summary.ranges)
        | "SpreadRanges" >> beam.Reshuffle()
        | "ReadCocoJson" >> beam.ParDo(record_dofns.ReadCocoRange(
            args.object_annotations_file)).with_outputs(
                record_dofns.IMAGES, record_dofns.ANNOTATIONS, ERRORS))
    located = _locate_images(pipeline, entries[record_dofns.IMAGES], source)
    built = (
        {record_dofns.IMAGES: located, record_dofns.ANNOTATIONS: entries[record_dofns.ANNOTATIONS]}
        | "GroupByImageId" >> beam.CoGroupByKey()
        | "BuildRecords" >> beam.ParDo(record_dofns.BuildAnnotatedRecords(
            summary.label_map.dumps(), args.include_masks, source.root,
            args.max_image_pixels)).with_outputs(ERRORS, main="records"))
    _write_outputs(built.records, (entries[ERRORS], built[ERRORS]), args.output_file_prefix,
                   args.num_shards)


def build_image_only(pipeline: beam.Pipeline, args: argparse.Namespace,
                     source: image_paths.ImageSource) -> None:
    pattern, root = source.pattern, source.root
    built = (
        pipeline
        | "MatchImages" >> fileio.MatchFiles(pattern)
        | "SpreadImages" >> beam.Reshuffle()
        | "ReadImages" >> fileio.ReadMatches()
        | "BuildRecords" >> beam.ParDo(record_dofns.BuildImageOnlyRecords(
            root, args.max_image_pixels)).with_outputs(
            ERRORS, main="records"))
    _write_outputs(built.records, (built[ERRORS],), args.output_file_prefix, args.num_shards)


def _write_text(path: str, text: str) -> None:
    with FileSystems.create(path, mime_type="application/json") as stream:
        stream.write(text.encode("utf-8"))


def run(argv: Optional[Sequence[str]] = None, save_main_session: bool = False) -> Dict[str, int]:
    """Runs the pipeline to completion and returns its counters by name ({} when
    --template_location made a template instead of running it).

    Raises AnnotationFileError (before building the pipeline) for an unusable
    annotation file, and launcher.JobFailed (after printing the summary) when the
    job failed as a whole.
    """
    args, beam_args = parse_args(argv)
    earlier = output_prefix.check(OUTPUTS, args.output_file_prefix, args.overwrite)
    with_annotations = args.object_annotations_file is not None
    source = image_paths.image_source(args.image_dir)
    if with_annotations:
        summary = scan_annotations(args.object_annotations_file, args.json_elements_per_range)
        output_prefix.remove(earlier)
        labels_path = record_files.labels_file(args.output_file_prefix)
        _write_text(labels_path, summary.label_map.dumps())
        logging.info("annotation file: %d images, %d annotations in %d ranges; label map -> %s",
                     summary.num_images, summary.num_annotations, len(summary.ranges), labels_path)
        build = functools.partial(build_annotated, args=args, summary=summary, source=source)
    else:
        if not FileSystems.match([source.pattern], limits=[1])[0].metadata_list:  # one is enough
            raise launcher.InputError(f"no file matches --image_dir {args.image_dir} ({source.pattern})")
        output_prefix.remove(earlier)
        build = functools.partial(build_image_only, args=args, source=source)
    result = launcher.run_to_completion(beam_args, save_main_session, build)
    if result is None:  # a template was written; nothing ran
        return {}
    counters = counter_values(result, record_dofns.NAMESPACE)
    outputs = [("records", record_files.shards_path(args.output_file_prefix, args.num_shards))]
    if with_annotations:
        outputs.append(("label map", labels_path))
    outputs.append(("errors", errors_path(args.output_file_prefix)))
    launcher.report(outputs, counters, SUMMARY_COUNTERS)
    launcher.check_outcome(counters, "images_written", args.max_failed_fraction,
                           errors_path(args.output_file_prefix))
    return counters


def main() -> None:
    launcher.main(run, (AnnotationFileError, output_prefix.OutputError))


if __name__ == "__main__":
    main()
