"""The whole product on a synthetic dataset, on this machine, with embedded defaults.

  python -m beam_pipelines.demo [--output_dir demo_output] [--train_images 400]
      [--val_images 100] [--override key=value ...]

Runs, as separate processes and with the same commands a user types:
  1. ``model.synthetic``            train and held-out val splits (COCO JSON + images)
  2. ``beam_pipelines.make_records`` both splits -> sharded TFRecords + labels.json
  3. ``tpu.train --mode train``     the ``tiny`` preset on CPU (TPUEstimator, use_tpu=False)
  4. ``tpu.train --mode export``    the SavedModel with the label map
  5. ``beam_pipelines.predict``     val records -> JSON Lines with RLE masks (DirectRunner)
  6. ``beam_pipelines.evaluate``    COCO box/mask AP and Fashionpedia AP_IoU+F1 vs val JSON
  7. ``beam_pipelines.visualize``   one picture per val image
then prints a table of the numbers and where everything is. The run replaces
what an earlier run left in those folders of ``--output_dir``. ``--override``
passes config overrides to training (the default run uses none).
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Sequence

from beam_pipelines.prediction_files import open_text
from model.evaluation.detections import read_detections
from model.evaluation.ground_truth import load_ground_truth
from model.evaluation.matched_attribute_f1 import matched_attribute_f1


def _run(step: str, arguments: Sequence[str], log_dir: str, timings: Dict[str, float]) -> None:
    """Runs ``python -m ARGS``, its output to ``log_dir/STEP.log``; fails with the log's tail."""
    log_path = os.path.join(log_dir, f"{step}.log")
    print(f"[{step}] python -m {' '.join(arguments)}", flush=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        finished = subprocess.run([sys.executable, "-m", *arguments], stdout=log,
                                  stderr=subprocess.STDOUT)
    timings[step] = time.perf_counter() - start
    if finished.returncode:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        raise SystemExit(f"{step} failed (exit {finished.returncode}); log {log_path}:\n{tail}")


def _matched_f1(predictions: List[str], annotations: str) -> float:
    with open(annotations) as stream:
        ground_truth = load_ground_truth(json.load(stream))
    streams = [open_text(path) for path in predictions]
    try:
        detections = read_detections(streams, predictions)
    finally:
        for stream in streams:
            stream.close()
    value = matched_attribute_f1(ground_truth.dataset, detections)
    return float("nan") if value is None else value


def run(argv: Sequence[str] = None) -> Dict[str, float]:
    flags = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    flags.add_argument("--output_dir", default="demo_output")
    flags.add_argument("--train_images", type=int, default=400)
    flags.add_argument("--val_images", type=int, default=100)
    flags.add_argument("--seed", type=int, default=1)
    flags.add_argument("--override", action="append", default=[],
                       help="tpu.train config override (repeatable)")
    args = flags.parse_args(argv)
    out = os.path.abspath(args.output_dir)
    paths = {name: os.path.join(out, name) for name in
             ("data", "records", "model", "predictions", "pictures", "logs")}
    # A rerun starts clean: records or checkpoints of an earlier run would match the globs below.
    for path in paths.values():
        shutil.rmtree(path, ignore_errors=True)
    os.makedirs(paths["logs"], exist_ok=True)
    timings: Dict[str, float] = {}
    overrides = [flag for item in args.override for flag in ("--override", item)]

    _run("generate", ["model.synthetic", "--output_dir", paths["data"], "--image_size", "128",
                      "--seed", str(args.seed),
                      "--splits", f"train:{args.train_images},val:{args.val_images}"],
         paths["logs"], timings)
    for split in ("train", "val"):
        _run(f"make_records_{split}",
             ["beam_pipelines.make_records", "--image_dir", os.path.join(paths["data"], split),
              "--object_annotations_file", os.path.join(paths["data"], f"{split}.json"),
              "--output_file_prefix", os.path.join(paths["records"], split), "--num_shards", "2"],
             paths["logs"], timings)
    model_flags = ["tpu.train", "--config", "tiny", "--model_dir", paths["model"], *overrides]
    _run("train", [*model_flags, "--mode", "train", "--train_file_pattern",
                   os.path.join(paths["records"], "train-*.tfrecord")], paths["logs"], timings)
    export_dir = os.path.join(paths["model"], "export", "demo")
    _run("export", [*model_flags, "--mode", "export", "--export_dir", export_dir],
         paths["logs"], timings)
    prediction_prefix = os.path.join(paths["predictions"], "val")
    # From the val records: annotated records carry the COCO image ids the evaluation needs.
    _run("predict", ["beam_pipelines.predict", "--model", export_dir,
                     "--tfrecords", os.path.join(paths["records"], "val-*.tfrecord"),
                     "--output", prediction_prefix], paths["logs"], timings)
    predictions = sorted(glob.glob(prediction_prefix + "-?????-of-?????.jsonl"))
    val_json = os.path.join(paths["data"], "val.json")
    metrics_path = os.path.join(out, "metrics.json")
    _run("evaluate", ["beam_pipelines.evaluate", "--predictions", *predictions,
                      "--annotations", val_json, "--iou_type", "both", "--output", metrics_path],
         paths["logs"], timings)
    _run("visualize", ["beam_pipelines.visualize", "--predictions", *predictions,
                       "--images", os.path.join(paths["data"], "val"), "--out", paths["pictures"],
                       "--labels", os.path.join(paths["records"], "train-labels.json")],
         paths["logs"], timings)

    with open(metrics_path) as stream:
        metrics = json.load(stream)
    numbers = {
        "box AP": metrics["bbox"]["AP"], "box AP50": metrics["bbox"]["AP50"],
        "mask AP": metrics["segm"]["AP"], "mask AP50": metrics["segm"]["AP50"],
        "mask AP_IoU+F1": metrics["segm"].get("AP_IoU_F1", float("nan")),
        "attribute F1 (matched, IoU .5)": _matched_f1(predictions, val_json),
        "predict images/s (incl. start-up)": args.val_images / timings["predict"],
        "training minutes": timings["train"] / 60,
        "total minutes": sum(timings.values()) / 60,
    }
    print(f"\nheld-out val split: {args.val_images} images")
    for name, value in numbers.items():
        print(f"  {name:<36} {value:8.3f}")
    print("\nwritten:")
    for name in ("data", "records", "model", "predictions", "pictures", "logs"):
        print(f"  {name:<12} {paths[name]}")
    print(f"  {'savedmodel':<12} {export_dir}\n  {'metrics':<12} {metrics_path}")
    return numbers


if __name__ == "__main__":
    run()
