"""Images per second of ``python -m beam_pipelines.predict`` on this machine, start-up excluded.

  python benchmarks/predict_throughput.py [--preset tiny] [--image_size 128]
      [--counts 16,64] [--photo_size 480x640] [--batch_size 8] [Beam options ...]

Exports the preset with random weights (every detection kept, so each image
carries the preset's max_detections masks through RLE and JSON), writes
--photo_size JPEGs, and runs the pipeline once per count in a fresh process,
as a user would. Beam start-up and the TensorFlow import take ~15 s, so the rate
reported is the marginal one: (n2 - n1) images / (t2 - t1). Also printed: CPU
seconds per image (user + system of every process, marginal as well), the
share of that CPU time spent encoding RLE (the ``rle.encode_micros`` counter),
and the peak RSS of the largest process.
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_photos(directory: str, count: int, height: int, width: int) -> None:
    rng = np.random.default_rng(0)
    for index in range(count):
        # Smooth colour fields with edges, closer to photos than white noise.
        small = rng.integers(0, 255, (height // 32 + 1, width // 32 + 1, 3), np.uint8)
        image = Image.fromarray(small).resize((width, height), Image.BILINEAR)
        image.save(os.path.join(directory, f"{index:05d}.jpg"), quality=90)


def export_model(output: str, preset: str, image_size=None) -> str:
    """Exports ``preset`` with random weights keeping every detection (score threshold 0) to
    ``output``, in a fresh process; returns ``output``."""
    export = [sys.executable, "-m", "model.export", "--config", preset, "--output", output,
              "--override", "model.postprocess.score_threshold=0.0"]
    if image_size:
        export += ["--image_size", str(image_size)]
    subprocess.run(export, cwd=REPO, check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=REPO))
    return output


def run_once(model: str, images: str, output: str, extra) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "beam_pipelines.predict", "--model", model, "--images", images,
         "--output", output, "--min_score_threshold", "0", *extra],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    lines = result.stdout.strip().splitlines()
    counters = {k: int(v) for k, v in re.findall(r"([\w.]+)=(\d+)", " ".join(lines[-2:]))}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "counters": counters, "peak_rss_mib": after.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--image_size", type=int, default=None, help="model input side")
    parser.add_argument("--counts", default="16,64")
    parser.add_argument("--photo_size", default="480x640", help="HEIGHTxWIDTH of the JPEGs")
    parser.add_argument("--batch_size", type=int, default=8)
    args, beam_args = parser.parse_known_args()
    counts = [int(c) for c in args.counts.split(",")]
    height, width = (int(v) for v in args.photo_size.split("x"))
    with tempfile.TemporaryDirectory() as work:
        model = export_model(os.path.join(work, "model"), args.preset, args.image_size)
        runs = []
        for count in counts:
            images = os.path.join(work, f"images{count}")
            os.makedirs(images)
            write_photos(images, count, height, width)
            runs.append(run_once(model, images, os.path.join(work, f"out{count}", "p"),
                                 ["--batch_size", str(args.batch_size), *beam_args]))
            run = runs[-1]
            print(f"{count} images: {run['wall']:.1f} s wall, {run['cpu']:.1f} s CPU, "
                  f"peak RSS {run['peak_rss_mib']:.0f} MiB, {run['counters']}", flush=True)
    first, last = runs[0], runs[-1]
    extra_images = counts[-1] - counts[0]
    wall = last["wall"] - first["wall"]
    cpu = last["cpu"] - first["cpu"]
    rle_seconds = (last["counters"].get("rle.encode_micros", 0)
                   - first["counters"].get("rle.encode_micros", 0)) / 1e6
    detections = last["counters"]["detections_written"] - first["counters"]["detections_written"]
    print(f"preset {args.preset}, {width}x{height} JPEG, batch {args.batch_size}, "
          f"{os.cpu_count()} CPUs, {' '.join(beam_args) or 'in-memory DirectRunner'}")
    print(f"marginal: {extra_images / wall:.2f} images/s wall, {cpu / extra_images:.3f} CPU s/image, "
          f"{detections / extra_images:.1f} detections/image")
    print(f"RLE encoding: {rle_seconds / extra_images * 1e3:.1f} ms/image = "
          f"{100 * rle_seconds / cpu:.1f}% of the pipeline's CPU time")
    print(f"peak RSS of the largest process: {max(r['peak_rss_mib'] for r in runs):.0f} MiB")


if __name__ == "__main__":
    main()
