"""Seconds per image of exported SavedModels, side by side in one process.

  python benchmarks/export_speed.py [--size 640] [--peer DIR [--peer_input inputs]] [--rounds 5]

Exports ``r50fpn`` as shipped (47 classes, attribute head) and a like-for-like
variant without attributes and with 91 classes, and times each
``serving_default`` signature at batch 1 on the same JPEG photo. ``--peer``
adds any other image-bytes SavedModel (e.g. a TF Model Garden Mask R-CNN
export). Rounds alternate between the models so that machine noise spreads
evenly; the median per model is printed with the ratio to the peer.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import tensorflow as tf  # noqa: E402

from benchmarks.model_step import _photo_bytes  # noqa: E402
from model.config import load_config  # noqa: E402
from model.export import export  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--peer", help="another image-bytes SavedModel directory")
    parser.add_argument("--peer_input", default="inputs", help="its input tensor name")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    photo = tf.constant([_photo_bytes()])
    calls = {}
    with tempfile.TemporaryDirectory() as directory:
        variants = {
            "r50fpn (47 classes + attributes)": [],
            "r50fpn (91 classes, no attributes)": ["model.num_classes=91",
                                                   "model.attribute_head.enabled=false"],
        }
        for index, (name, overrides) in enumerate(variants.items()):
            path = os.path.join(directory, str(index))
            export(load_config("r50fpn", overrides).model, args.size, path)
            signature = tf.saved_model.load(path).signatures["serving_default"]
            calls[name] = lambda signature=signature: signature(image_bytes=photo)
        if args.peer:
            peer = tf.saved_model.load(args.peer).signatures["serving_default"]
            calls["peer"] = lambda: peer(**{args.peer_input: photo})
        times = {name: [] for name in calls}
        for call in calls.values():
            call()  # warm-up
        for _ in range(args.rounds):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    print(f"seconds per image at {args.size}x{args.size}, batch 1, {device}:")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        ratio = f"  ({medians['peer'] / value:.2f}x the peer's speed)" if "peer" in medians \
            and name != "peer" else ""
        print(f"  {name:36s} {value:6.2f}{ratio}")


if __name__ == "__main__":
    main()
