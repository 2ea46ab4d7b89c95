"""Trains, evaluates and exports Attribute-Mask R-CNN with TPUEstimator.

  python -m tpu.train --mode train|eval|train_and_eval|export|predict --config PRESET_OR_YAML
      [--override k=v ...] --model_dir DIR --train_file_pattern GLOB
      [--eval_file_pattern GLOB --eval_annotations_file JSON]
      [--predict_file_pattern GLOB --output PREFIX [--overwrite] [--min_score_threshold 0.05]
       [--attributes full|ids|top_k=K]]
      [--tpu NAME --tpu_zone Z --gcp_project P --num_cores 8 --iterations_per_loop N]
      [--init_checkpoint PATH --skip_variables_regex RE] [--stop_tpu_when_done VM.json] [--dry_run]
      [--label_map JSON --label_format auto|category_id|model_class]

Without --tpu it runs on CPU/GPU (use_tpu=False). See README "Training".
"""
import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shlex
import subprocess
import sys

# Grappler's cost model warns on every CropAndResize of every graph it builds; keep
# TensorFlow's C++ warnings out of the job's log unless the user asks for them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from typing import List, Optional, Sequence, Tuple

import tensorflow as tf

from model.config import ConfigError, ExperimentConfig, load_config
from model.dataset import record_files, tfrecord_framing
from model.evaluation.category_roles import MODES as MODES_OF_FASHIONPEDIA_EVAL
from model.evaluation.category_roles import OFFICIAL
from model.export import export as export_saved_model
from model.export import resolve_label_map
from model.label_map import LabelMap, LabelMapError
from model import detection_lines
from tpu import evaluation, model_dir as model_dir_files, prediction, record_errors, vm
from tpu.estimator import ClusterSettings, build_estimator, plan_lines
from tpu.input_fn import predict_input_fn, train_input_fn

MODES = ("train", "eval", "train_and_eval", "export", "predict")
# What the training records' image/object/class/label holds (see resolve_record_labels).
AUTO, CATEGORY_ID, MODEL_CLASS = "auto", "category_id", "model_class"
LABEL_FORMATS = (AUTO, CATEGORY_ID, MODEL_CLASS)


class _OneLineErrors(argparse.ArgumentParser):
    """Bad flags end the run with one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_flags() -> argparse.ArgumentParser:
    flags = _OneLineErrors(prog="python -m tpu.train", description=__doc__.split("\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_argument("--mode", choices=MODES, default="train")
    flags.add_argument("--config", required=True, help="preset name (tiny, r50fpn, ...) or YAML path")
    flags.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                       help="config override, e.g. train.total_steps=500 (repeatable)")
    flags.add_argument("--model_dir", required=True,
                       help="checkpoints, config.yaml, labels.json, events (gs:// on a TPU)")
    flags.add_argument("--train_file_pattern", help="training TFRecords from make_records")
    flags.add_argument("--eval_file_pattern", help="eval TFRecords from make_records")
    flags.add_argument("--eval_annotations_file", help="COCO JSON the eval records were made from")
    flags.add_argument("--predict_file_pattern",
                       help="predict: TFRecords from make_records (annotated or image-only)")
    flags.add_argument("--output", help="predict: output prefix (local or gs://): writes "
                                        "PREFIX-00000-of-00001.jsonl, predict's JSON Lines")
    flags.add_argument("--overwrite", action="store_true",
                       help="predict: replace the detection shards already under --output")
    flags.add_argument("--min_score_threshold", type=float, default=0.05,
                       help="predict: keep detections scoring at least this")
    flags.add_argument("--attributes", type=detection_lines.parse_attribute_output,
                       default=detection_lines.FULL, metavar="full|ids|top_k=K",
                       help="predict: attribute fields per detection, as beam_pipelines.predict")
    flags.add_argument("--tpu", help="Cloud TPU name or grpc:// address; absent: CPU/GPU")
    flags.add_argument("--tpu_zone", help="the TPU's zone (default: from GCE metadata)")
    flags.add_argument("--gcp_project", help="the TPU's project (default: from GCE metadata)")
    flags.add_argument("--num_cores", type=int, default=8, help="TPU cores (8 for a v3-8)")
    flags.add_argument("--iterations_per_loop", type=int, default=100,
                       help="training steps per TPU session call")
    flags.add_argument("--save_checkpoints_steps", type=int, default=1000)
    flags.add_argument("--steps_per_eval", type=int, default=1000,
                       help="train_and_eval: training steps between evaluations")
    flags.add_argument("--init_checkpoint", help="warm start from this checkpoint (prefix or dir)")
    flags.add_argument("--skip_variables_regex", default="",
                       help="variables (names below the model scope) not to warm start, e.g. "
                            "'^(box_head|mask_head|attribute_head)/'")
    flags.add_argument("--checkpoint",
                       help="eval/export/predict: this checkpoint instead of the latest")
    flags.add_argument("--export_dir", help="export: SavedModel directory "
                                            "(default MODEL_DIR/export/STEP)")
    flags.add_argument("--attribute_threshold", type=float, default=0.5,
                       help="eval: attribute probability counted as present; predict: "
                            "attribute_ids lists attributes with probability >= this")
    flags.add_argument("--fashionpedia_mode", choices=MODES_OF_FASHIONPEDIA_EVAL, default=OFFICIAL,
                       help="eval: AP_IoU+F1 as the official evaluator computes it, or corrected "
                            "(see README, Evaluation)")
    flags.add_argument("--stop_tpu_when_done", metavar="VM_CONFIG",
                       help="stop this TPU VM (python -m tpu.vm config) when the run ends, "
                            "done or failed; gcloud from $%s or PATH" % vm.GCLOUD_ENV)
    flags.add_argument("--label_map", metavar="JSON",
                       help="the dataset's categories (and attributes): a make_records "
                            "PREFIX-labels.json or a COCO/Fashionpedia JSON; needed for records "
                            "with no PREFIX-labels.json beside them (create_coco_tf_record.py's)")
    flags.add_argument("--label_format", choices=LABEL_FORMATS, default=AUTO,
                       help="what the training records' image/object/class/label holds: "
                            "dataset category ids (mapped to model classes through --label_map) "
                            "or model classes 1..N. auto: model_class with a PREFIX-labels.json "
                            "beside the records, else category_id with --label_map, else refused")
    flags.add_argument("--dry_run", action="store_true",
                       help="print the resolved config and the plan, touch nothing, exit")
    return flags


def _matches(pattern: str) -> List[str]:
    return tf.io.gfile.glob(pattern)


def _check_flags(flags: argparse.ArgumentParser, args) -> None:
    """Fails fast, one line each, before anything heavy starts; a dry run checks that the
    mode has its flags and that its file patterns and annotations file match (globs, no
    file read)."""
    _check_mode_flags(flags, args)
    if args.dry_run:
        _check_input_files(flags, args)
    else:
        _check_inputs(flags, args)


def _needs_train(args) -> bool:
    return args.mode in ("train", "train_and_eval")


def _needs_eval(args) -> bool:
    return args.mode in ("eval", "train_and_eval")


def _needs_label_map(args) -> bool:
    return _needs_eval(args) or args.mode == "predict"


def _check_mode_flags(flags: argparse.ArgumentParser, args) -> None:
    """The flags the mode cannot run without."""
    if args.mode == "predict" and not (args.predict_file_pattern and args.output):
        flags.error("--mode predict needs --predict_file_pattern and --output")
    if _needs_train(args) and not args.train_file_pattern:
        flags.error(f"--mode {args.mode} needs --train_file_pattern")
    if _needs_eval(args) and not (args.eval_file_pattern and args.eval_annotations_file):
        flags.error(f"--mode {args.mode} needs --eval_file_pattern and --eval_annotations_file")


def _record_patterns(args) -> List[tuple]:
    """(flag, pattern) of the records the mode reads."""
    return ([("--train_file_pattern", args.train_file_pattern)] if _needs_train(args) else []
            ) + ([("--eval_file_pattern", args.eval_file_pattern)] if _needs_eval(args) else []
                 ) + ([("--predict_file_pattern", args.predict_file_pattern)]
                      if args.mode == "predict" else [])


def _check_input_files(flags: argparse.ArgumentParser, args) -> dict:
    """The record patterns match files (of one make_records run per prefix) and the eval
    annotations file exists; returns {flag: matched files}."""
    matched = {}
    for flag, pattern in _record_patterns(args):
        files = _matches(pattern)
        if not files:
            flags.error(f"{flag} {pattern} matches no files")
        mixed = record_files.mixed_runs(files)
        if mixed:
            flags.error(f"{flag} {pattern} matches shards of different make_records runs "
                        f"under {', '.join(mixed)} (different -of-NNNNN totals); remove the old ones")
        matched[flag] = files
    if _needs_eval(args):
        if not tf.io.gfile.exists(args.eval_annotations_file):
            flags.error(f"--eval_annotations_file {args.eval_annotations_file} does not exist")
    if args.mode == "predict":
        earlier = prediction.earlier_outputs(args.output)
        if earlier and not args.overwrite:
            flags.error(f"--output {args.output} holds {len(earlier)} detection shard(s) of an "
                        f"earlier run, e.g. {earlier[0]}: pass --overwrite or another prefix")
    return matched


def _check_inputs(flags: argparse.ArgumentParser, args) -> None:
    """The input files exist, every matched shard is whole TFRecords (the framing check of
    ``model.dataset.tfrecord_framing``: every header of a local file, the ends of a remote
    one), and a TPU's model_dir is on GCS."""
    for flag, files in _check_input_files(flags, args).items():
        try:
            tfrecord_framing.check_files(files)
        except tfrecord_framing.FramingError as error:
            flags.error(f"{flag}: {error}")
    if args.init_checkpoint and not (tf.train.latest_checkpoint(args.init_checkpoint) or
                                     tf.io.gfile.glob(args.init_checkpoint + ".index")):
        flags.error(f"--init_checkpoint {args.init_checkpoint} is not a checkpoint")
    if args.tpu and not args.model_dir.startswith("gs://"):
        flags.error(f"a TPU cannot write --model_dir {args.model_dir}: use a gs:// path")


@dataclasses.dataclass(frozen=True)
class RecordLabels:
    """How the run reads the training records' labels and which label map model_dir keeps.

    category_ids: empty when the records hold model classes; else the label map's category
      ids (ascending) the records' labels are mapped through (``model.data.parser``).
    label_map, source: the --label_map given, and its path, to write to model_dir.
    labels_file: the records' PREFIX-labels.json, to copy to model_dir.
    """
    category_ids: Tuple[int, ...] = ()
    label_map: Optional[LabelMap] = None
    source: Optional[str] = None
    labels_file: Optional[str] = None

    def describe(self) -> str:
        if self.category_ids:
            return (f"labels: dataset category ids -> model classes 1..{len(self.category_ids)} "
                    f"through --label_map {self.source}")
        kept = self.labels_file or self.source
        return ("labels: model classes; label map " +
                (kept if kept else "none (exports and evaluations use identity ids)"))


def read_label_map_flag(flags: argparse.ArgumentParser, args,
                        config: ExperimentConfig) -> Optional[LabelMap]:
    """The --label_map, checked against the model's class and attribute counts; None without
    the flag. A missing or unreadable file, or one without categories, ends the run with one
    line."""
    path = args.label_map
    if not path:
        return None
    if not tf.io.gfile.exists(path):
        flags.error(f"--label_map {path} does not exist")
    try:
        with tf.io.gfile.GFile(path) as stream:
            label_map = LabelMap.loads(stream.read())
    except json.JSONDecodeError as error:
        flags.error(f"--label_map {path} is not JSON: {error}")
    except KeyError as error:
        flags.error(f"--label_map {path} has no {error} list")
    except (LabelMapError, TypeError) as error:
        flags.error(f"--label_map {path} is not a label map: {error}")
    try:
        record_files.check_label_map(label_map, config.model, f"--label_map {path}")
    except record_files.LabelMapMismatch as error:
        flags.error(str(error))
    return label_map


def resolve_record_labels(flags: argparse.ArgumentParser, args,
                          config: ExperimentConfig) -> RecordLabels:
    """Decides what the training records' labels are (--label_format, see README "Records of
    other tools"): make_records' records, with PREFIX-labels.json beside them, hold model
    classes; records without one (the TensorFlow tools' create_coco_tf_record.py writes the
    JSON's category_id and no label map) need --label_map and are read as category ids, or
    --label_format model_class; without either the run is refused with one line. A --label_map
    that differs from the records' PREFIX-labels.json or from model_dir's labels.json is
    refused too."""
    given = read_label_map_flag(flags, args, config)
    if given is not None:
        _check_against(flags, given, args.label_map,
                       os.path.join(args.model_dir, record_files.LABELS_FILE),
                       "the label map this model_dir was trained with")
    if not _needs_train(args):
        return RecordLabels(label_map=given, source=args.label_map)
    pattern = args.train_file_pattern
    beside = record_files.labels_file_for(pattern)
    label_format = args.label_format
    if label_format == AUTO:
        label_format = MODEL_CLASS if beside else CATEGORY_ID if given is not None else None
    if label_format is None:
        flags.error(f"--train_file_pattern {pattern}: no PREFIX-labels.json beside these records, "
                    "so their image/object/class/label may be dataset category ids (as "
                    "create_coco_tf_record.py writes them): pass --label_map JSON with the "
                    "dataset's categories, or --label_format model_class if they hold model "
                    f"classes 1..{config.model.num_classes - 1}")
    if label_format == CATEGORY_ID:
        if given is None:
            flags.error("--label_format category_id needs --label_map JSON, the categories the "
                        "records' ids are mapped to model classes through")
        if beside:
            flags.error(f"--label_format category_id, but {beside} is beside "
                        f"--train_file_pattern {pattern}: make_records' records hold model "
                        "classes; leave --label_format out")
        return RecordLabels(tuple(c.id for c in given.categories), given, args.label_map)
    if beside and given is not None:
        _check_against(flags, given, args.label_map, beside, "the label map of these records")
        return RecordLabels(labels_file=beside)
    return RecordLabels(label_map=given, source=args.label_map, labels_file=beside)


def _check_against(flags: argparse.ArgumentParser, given: LabelMap, source: str, other: str,
                   what: str) -> None:
    """--label_map must be the label map in ``other`` when that file exists."""
    if not tf.io.gfile.exists(other):
        return
    with tf.io.gfile.GFile(other) as stream:
        try:
            same = LabelMap.loads(stream.read()) == given
        except (ValueError, KeyError, TypeError):
            same = False
    if not same:
        flags.error(f"--label_map {source} differs from {other}, {what}")


def _checkpoint(args) -> str:
    checkpoint = args.checkpoint or tf.train.latest_checkpoint(args.model_dir)
    if not checkpoint:
        raise SystemExit(f"error: no checkpoint in {args.model_dir}")
    return checkpoint


def _step_of(checkpoint: str) -> int:
    return int(tf.train.load_checkpoint(checkpoint).get_tensor("global_step"))


def label_map_for_predictions(config: ExperimentConfig, args) -> LabelMap:
    """The label map the predictions of eval name categories and attributes with: --label_map,
    else ``labels.json`` beside --checkpoint, else in model_dir (where training copied it),
    else the identity (``model.export.resolve_label_map``)."""
    checkpoint_dir = os.path.dirname(args.checkpoint) if args.checkpoint else args.model_dir
    label_map, source = resolve_label_map(config.model, args.label_map, checkpoint_dir)
    tf.get_logger().info("label map: %s", source)
    return label_map


def run_eval(estimator, config, args, checkpoint: str) -> dict:
    """Predicts the eval records (in dataset space: the estimator's model_fn has the label
    map), scores them, writes and prints the metrics."""
    predictions = estimator.predict(predict_input_fn(config, args.eval_file_pattern),
                                    checkpoint_path=checkpoint, yield_single_examples=True)
    results, image_ids = evaluation.to_coco_results(predictions, args.attribute_threshold)
    metrics = evaluation.evaluate(results, image_ids, args.eval_annotations_file,
                                  args.fashionpedia_mode)
    path = evaluation.write_metrics(args.model_dir, _step_of(checkpoint), metrics)
    line = f"metrics: {path} box AP {metrics['bbox']['AP']:.4f} mask AP {metrics['segm']['AP']:.4f}"
    if "AP_IoU_F1" in metrics["segm"]:
        line += f" mask AP_IoU+F1 {metrics['segm']['AP_IoU_F1']:.4f}"
    if metrics["attribute_f1"] is not None:
        line += f" attribute F1 {metrics['attribute_f1']:.4f}"
    print(line)
    return metrics


def run_predict(estimator, label_map: LabelMap, config, args, checkpoint: str) -> dict:
    """Predicts every record of --predict_file_pattern and writes predict's JSON Lines."""
    attributes = args.attributes
    if attributes.mode == "top_k":
        attributes = dataclasses.replace(
            attributes, defined_ids=tuple(attribute.id for attribute in label_map.attributes))
    # Read before the estimator starts: its generator holds a finalized graph as default.
    keys = list(prediction.record_keys(args.predict_file_pattern))
    predictions = estimator.predict(predict_input_fn(config, args.predict_file_pattern, 0),
                                    checkpoint_path=checkpoint, yield_single_examples=True)
    prediction.remove(prediction.earlier_outputs(args.output))
    counts = prediction.write_predictions(predictions, keys, args.output, args.min_score_threshold,
                                          args.attribute_threshold, attributes)
    print(f"detections: {prediction.shard_path(args.output)} (from {checkpoint})")
    print(" ".join(f"{name}={value}" for name, value in counts.items()))
    return counts


def run_export(config, args, checkpoint: str) -> str:
    output = args.export_dir or os.path.join(args.model_dir, "export", str(_step_of(checkpoint)))
    source = export_saved_model(config.model, config.input.image_size, output, checkpoint,
                                labels=args.label_map)
    print(f"SavedModel: {output} (from {checkpoint}, label map: {source})")
    return output


def resolved_config(flags: argparse.ArgumentParser, args) -> ExperimentConfig:
    """--config with --override, fixed up for the cluster: TPUs compile only the
    gather-based RoIAlign and the padded NMS, so ``--tpu`` turns static_ops_for_tpu on."""
    try:
        config = load_config(args.config, args.override)
    except ConfigError as error:
        flags.error(str(error))
    if args.tpu and not config.model.static_ops_for_tpu:
        config.model.static_ops_for_tpu = True
    return config


def cluster_settings(args) -> ClusterSettings:
    """The TPU (or its absence) and the session settings the flags name."""
    return ClusterSettings(args.tpu, args.tpu_zone, args.gcp_project, args.num_cores,
                           args.iterations_per_loop, args.save_checkpoints_steps)


def stop_when_done_command(flags: argparse.ArgumentParser, args) -> Optional[List[str]]:
    """The gcloud command that stops --stop_tpu_when_done's TPU VM (``tpu.vm``, --async:
    the run may be on that VM), or None without the flag. A config ``tpu.vm`` refuses, a
    spot or preemptible TPU VM (which cannot be stopped), a --tpu, --tpu_zone or
    --gcp_project naming another TPU, or no gcloud to run end the job with one line."""
    if not args.stop_tpu_when_done:
        return None
    where = args.stop_tpu_when_done
    try:
        tpu_vm = vm.load_config(where)
    except vm.ConfigError as error:
        flags.error(f"--stop_tpu_when_done {error}")
    if not tpu_vm.restartable:
        flags.error(f"--stop_tpu_when_done {vm.not_restartable_line(tpu_vm, where)}")
    named = args.tpu and "://" not in args.tpu and args.tpu != "local"
    for flag, given, configured in (("--tpu", args.tpu if named else None, tpu_vm.name),
                                    ("--tpu_zone", args.tpu_zone, tpu_vm.zone),
                                    ("--gcp_project", args.gcp_project, tpu_vm.project)):
        if given and given != configured:
            flags.error(f"{flag} {given} but --stop_tpu_when_done {where} stops {configured}")
    command = vm.stop_command(tpu_vm, vm.gcloud_executable(), wait=False)
    if not vm.executable_exists(command[0]):
        flags.error(f"--stop_tpu_when_done: {command[0]} not found: install the Google Cloud "
                    f"CLI or set ${vm.GCLOUD_ENV}")
    return command


def stop_tpu(command: List[str], run_failed: bool) -> None:
    """Runs the stop command; if it fails, says so with the command to run by hand, and
    a run that succeeded ends with exit status 1."""
    tf.get_logger().info("stopping the TPU VM: %s", shlex.join(command))
    try:
        status = subprocess.run(command, check=False).returncode
    except OSError as error:
        status = f"{error.strerror or error}"
    if status == 0:
        print(f"stop requested: {shlex.join(command)}")
        return
    print(f"error: stopping the TPU VM failed ({status}); stop it yourself: {shlex.join(command)}",
          file=sys.stderr, flush=True)
    if not run_failed:
        raise SystemExit(1)


@contextlib.contextmanager
def stopping_tpu_when_done(command: Optional[List[str]]):
    """Runs the stop command when the block ends, however it ends (done, an error, a one-line
    refusal, Ctrl-C); the block's own error, if any, propagates after it."""
    if command is None:
        yield
        return
    try:
        yield
    except BaseException:
        stop_tpu(command, run_failed=True)
        raise
    stop_tpu(command, run_failed=False)


def dry_run(flags: argparse.ArgumentParser, config: ExperimentConfig, args,
            cluster: ClusterSettings, stop_command: Optional[List[str]] = None,
            labels: Optional[RecordLabels] = None) -> None:
    """Prints the resolved config and the plan; touches nothing."""
    try:
        lines = plan_lines(config, args.model_dir, cluster, args.mode)
    except ValueError as error:
        flags.error(str(error))
    if labels is not None and _needs_train(args):
        lines.append(labels.describe())
    if stop_command:
        lines.append(f"when done (or failed): {shlex.join(stop_command)}")
    print("\n".join(lines))


def prepare_model_dir(flags: argparse.ArgumentParser, config: ExperimentConfig, args,
                      labels: RecordLabels) -> None:
    """Writes or checks model_dir/config.yaml and, when training, copies the records'
    label map (or writes --label_map) there (``tpu.model_dir``); a conflict ends the run
    with one line."""
    try:
        note = model_dir_files.save_or_check_config(args.model_dir, config)
        if note:
            tf.get_logger().warning(note)
        if _needs_train(args):
            tf.get_logger().info(labels.describe())
            if labels.labels_file:
                model_dir_files.copy_label_map(labels.labels_file, args.model_dir, config)
            elif labels.label_map is not None:
                model_dir_files.write_label_map(labels.label_map, args.model_dir, labels.source)
            else:
                tf.get_logger().warning("no label map for %s (--label_format model_class): "
                                        "exports will use identity ids", args.train_file_pattern)
    except ValueError as error:  # ModelDirError, LabelMapError, LabelMapMismatch
        flags.error(str(error))


def run_mode(flags: argparse.ArgumentParser, config: ExperimentConfig, args,
             cluster: ClusterSettings, labels: RecordLabels = RecordLabels()) -> None:
    """export, or an estimator that trains, evaluates or alternates the two."""
    if args.mode == "export":
        run_export(config, args, _checkpoint(args))
        return
    label_map = None
    if _needs_label_map(args):
        try:
            label_map = label_map_for_predictions(config, args)
        except ValueError as error:  # LabelMapError, LabelMapMismatch
            flags.error(str(error))
    estimator = build_estimator(config, args.model_dir, cluster, args.init_checkpoint,
                                args.skip_variables_regex, label_map)
    if args.mode == "train":
        with _data_errors(flags, "--train_file_pattern", args.train_file_pattern):
            estimator.train(train_input_fn(config, args.train_file_pattern, labels.category_ids),
                            max_steps=config.train.total_steps)
    elif args.mode == "eval":
        with _data_errors(flags, "--eval_file_pattern", args.eval_file_pattern):
            run_eval(estimator, config, args, _checkpoint(args))
    elif args.mode == "predict":
        with _data_errors(flags, "--predict_file_pattern", args.predict_file_pattern):
            run_predict(estimator, label_map, config, args, _checkpoint(args))
    else:
        train_and_eval(flags, estimator, config, args, labels)


@contextlib.contextmanager
def _data_errors(flags: argparse.ArgumentParser, flag: str, pattern: str):
    """A corrupt record of ``pattern`` (``tpu.record_errors``) ends the run with one line
    and exit status 2; every other error propagates."""
    try:
        yield
    except tf.errors.OpError as error:
        line = record_errors.one_line(error, flag, pattern)
        if line is None:
            raise
        flags.error(line)


def train_and_eval(flags: argparse.ArgumentParser, estimator, config: ExperimentConfig,
                   args, labels: RecordLabels = RecordLabels()) -> None:
    """Trains --steps_per_eval steps at a time up to train.total_steps, evaluating after each."""
    total = config.train.total_steps
    step = _current_step(args.model_dir)
    while step < total:
        step = min(step + args.steps_per_eval, total)
        with _data_errors(flags, "--train_file_pattern", args.train_file_pattern):
            estimator.train(train_input_fn(config, args.train_file_pattern, labels.category_ids),
                            max_steps=step)
        with _data_errors(flags, "--eval_file_pattern", args.eval_file_pattern):
            run_eval(estimator, config, args, _checkpoint(args))


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Flags -> config -> checks -> dry run, or model_dir bookkeeping and the mode's work."""
    flags = build_flags()
    args = flags.parse_args(argv)
    config = resolved_config(flags, args)
    cluster = cluster_settings(args)
    _check_flags(flags, args)
    stop_command = stop_when_done_command(flags, args)
    labels = resolve_record_labels(flags, args, config)
    if args.dry_run:
        dry_run(flags, config, args, cluster, stop_command, labels)
        return
    tf.get_logger().setLevel(logging.INFO)
    with stopping_tpu_when_done(stop_command):
        prepare_model_dir(flags, config, args, labels)
        run_mode(flags, config, args, cluster, labels)


def _current_step(model_dir: str) -> int:
    checkpoint = tf.train.latest_checkpoint(model_dir)
    return _step_of(checkpoint) if checkpoint else 0


if __name__ == "__main__":
    main()
