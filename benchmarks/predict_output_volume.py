"""Bytes per image that ``python -m beam_pipelines.predict`` writes, by --attributes and --compression.

  python benchmarks/predict_output_volume.py [--images 8] [--image_size 640]
      [--num_attributes 341] [--max_detections 100] [--top_k 5] [--attribute_thresholds 0.5,0.99] [--seed 1]

Exports the ``tiny`` preset with random weights (drawn from --seed) and Fashionpedia's output shape
(--num_attributes slots, --max_detections detections, score threshold 0, so every
image carries max_detections detections), generates --images synthetic images, and
runs the pipeline (DirectRunner, in this process) once per attribute threshold and
mode (full, ids, top_k=K), each plain and gzip-compressed. Prints, per run, the bytes
of the detection shards per image and per detection, the size relative to full, the
gzip ratio, the mean length of the mask RLE strings and the mean number of
attribute_ids per detection, which drives the size of the compact modes: a
random-weight model spreads its attribute probabilities over (0, 1), about half of
them >= 0.5, where a trained one has a handful per detection; a threshold near 1
gives such a handful.
"""
import argparse
import glob
import gzip
import json
import os
import sys
import tempfile

import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from beam_pipelines import predict  # noqa: E402
from model.export import main as export_main  # noqa: E402
from model.synthetic.generate import SyntheticConfig, generate_split  # noqa: E402


def shard_bytes(prefix: str, suffix: str) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(f"{prefix}-?????-of-?????{suffix}"))


def mean_lengths(prefix: str) -> tuple:
    """(mean RLE string length, mean attribute_ids count) per detection."""
    rows = []
    for path in glob.glob(f"{prefix}-?????-of-?????.jsonl.gz"):
        with gzip.open(path, "rt") as stream:
            rows += [json.loads(line) for line in stream]
    count = max(len(rows), 1)
    return (sum(len(r["segmentation"]["counts"]) for r in rows) / count,
            sum(len(r["attribute_ids"]) for r in rows) / count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=640)
    parser.add_argument("--num_attributes", type=int, default=341)
    parser.add_argument("--max_detections", type=int, default=100)
    parser.add_argument("--top_k", type=int, default=5)
    parser.add_argument("--attribute_thresholds", default="0.5,0.99")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="predict_volume_")
    model = os.path.join(work, "model")
    tf.keras.utils.set_random_seed(args.seed)
    export_main(["--config", "tiny", "--output", model,
                 "--override", f"model.num_attributes={args.num_attributes}",
                 "--override", f"model.postprocess.max_detections={args.max_detections}",
                 "--override", "model.postprocess.score_threshold=0.0"])
    generate_split(work, "images", args.images, SyntheticConfig(image_size=args.image_size, seed=3))
    rows = []
    for threshold in args.attribute_thresholds.split(","):
        for mode in ("full", "ids", f"top_k={args.top_k}"):
            sizes = {}
            for compression, suffix in (("none", ".jsonl"), ("gzip", ".jsonl.gz")):
                prefix = os.path.join(work, f"{threshold}-{mode}-{compression}".replace("=", ""),
                                      "out")
                counters = predict.run([
                    "--model", model, "--images", os.path.join(work, "images"), "--output", prefix,
                    "--min_score_threshold", "0", "--attribute_threshold", threshold,
                    "--attributes", mode, "--compression", compression, "--num_shards", "1"])
                sizes[compression] = shard_bytes(prefix, suffix)
                detections = counters["detections_written"]
            rows.append((threshold, mode, sizes["none"], sizes["gzip"], detections,
                         *mean_lengths(prefix)))
    print(f"\n{args.images} images of {args.image_size}x{args.image_size}, {args.num_attributes} "
          f"attribute slots, up to {args.max_detections} detections an image")
    print("| --attribute_threshold | --attributes | detections/image | bytes/image | bytes/detection "
          "| vs full | gzip bytes/image | gzip ratio | RLE chars/detection | attribute_ids/detection |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    full = {}
    for threshold, mode, plain, packed, detections, rle_chars, ids in rows:
        full.setdefault(threshold, plain)
        print(f"| {threshold} | {mode} | {detections / args.images:.1f} | {plain / args.images:,.0f} "
              f"| {plain / max(detections, 1):,.0f} | {plain / full[threshold]:.3f} "
              f"| {packed / args.images:,.0f} | {plain / max(packed, 1):.1f}x | {rle_chars:.0f} "
              f"| {ids:.1f} |")


if __name__ == "__main__":
    main()
