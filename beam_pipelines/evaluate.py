"""Scores predictions against ground truth: COCO box/mask AP and Fashionpedia AP_IoU+F1.

  python -m beam_pipelines.evaluate --predictions 'gs://bucket/pred/val-*.jsonl' \
      --annotations gs://bucket/val.json --iou_type both --output metrics.json

Predictions are the predict pipeline's JSON Lines shards or a COCO results JSON
array (any mix, local or gs://). Prints a table; --output writes every number as
JSON ({"segm": {...}, "bbox": {...}}). Runs in this process: evaluation needs all
detections of a category together, and one validation set fits in memory.
"""
import argparse
import logging
import sys
from typing import Optional, Sequence

from beam_pipelines.prediction_files import (exit_status, load_json, matched_paths, open_text,
                                             write_json)
from model.evaluation.category_roles import MODES, OFFICIAL
from model.evaluation.detections import read_detections
from model.evaluation.evaluator import evaluate, format_metrics
from model.evaluation.ground_truth import load_ground_truth

IOU_TYPE_CHOICES = {"segm": ("segm",), "bbox": ("bbox",), "both": ("segm", "bbox")}


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", required=True, nargs="+",
                        help="Glob(s) of JSON Lines shards and/or COCO results JSON files.")
    parser.add_argument("--annotations", required=True, help="Ground-truth COCO/Fashionpedia JSON.")
    parser.add_argument("--iou_type", choices=sorted(IOU_TYPE_CHOICES), default="segm",
                        help="Masks (segm), boxes (bbox) or both.")
    parser.add_argument("--output", default=None, help="Where to write all metrics as JSON.")
    parser.add_argument("--mode", choices=MODES, default=OFFICIAL,
                        help="Fashionpedia AP rules: 'official' reproduces the official evaluator; "
                             "'corrected' fixes its quirks (see README, Evaluation).")
    parser.add_argument("--attribute_threshold", type=float, default=None,
                        help="Take predicted attributes from attribute_probabilities >= this value "
                             "instead of attribute_ids.")
    return parser.parse_args(argv)


def run(argv: Optional[Sequence[str]] = None) -> dict:
    """Evaluates and prints; returns the metrics. Raises on unusable inputs."""
    args = parse_args(argv)
    ground_truth = load_ground_truth(load_json(args.annotations))
    paths = matched_paths(args.predictions)
    detections = []
    for path in paths:
        with open_text(path) as stream:
            detections.extend(read_detections([stream], [path], args.attribute_threshold))
    logging.info("%d detections from %d file(s)", len(detections), len(paths))
    results = evaluate(ground_truth, detections, IOU_TYPE_CHOICES[args.iou_type], args.mode)
    print(format_metrics(results))
    if args.output:
        write_json(args.output, results)
        print(f"metrics written to {args.output}")
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    return exit_status(run, argv)


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    sys.exit(main())
