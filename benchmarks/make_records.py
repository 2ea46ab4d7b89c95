"""Benchmarks of beam_pipelines.make_records.

  python benchmarks/make_records.py throughput   # images/s vs the classic record script
  python benchmarks/make_records.py memory       # peak memory on a Fashionpedia-size JSON

throughput: the same images go through make_records (DirectRunner) and through
``classic_coco_records.py`` (W pool processes). Each is run at two dataset sizes
and marginal rates (extra images / extra seconds) are reported, so interpreter
and runner start-up cancel out: per CPU-second (user + system time of the whole
process tree, i.e. per core) and per wall second. Prints both ratios.

memory: writes a JSON of Fashionpedia's size (45k images, 330k polygon instances
by default; the images are small files reused across entries) and reports the
peak RSS of (a) the launcher's check of that file, (b) json.load of it (what a
launcher that loads the file would need), and (c) the whole DirectRunner job:
the runner process and its largest worker.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from model.synthetic.generate import SyntheticConfig, generate_split  # noqa: E402

_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")


def _timed(command):
    """(wall seconds, CPU seconds of the command and every process it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, env=_ENV, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _subset(json_path: str, count: int, out_path: str) -> int:
    with open(json_path) as stream:
        document = json.load(stream)
    document["images"] = document["images"][:count]
    keep = {image["id"] for image in document["images"]}
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] in keep]
    with open(out_path, "w") as stream:
        json.dump(document, stream)
    return len(document["annotations"])


def throughput(args) -> None:
    work = os.path.join(args.work_dir, f"throughput-{args.image_size}-{args.large}")
    json_path = os.path.join(work, "bench.json")
    if not os.path.exists(json_path):
        print(f"generating {args.large} images of {args.image_size}^2 in {work} ...", flush=True)
        config = SyntheticConfig(image_size=args.image_size, min_objects=4, max_objects=10, seed=11)
        generate_split(work, "bench", args.large, config)
    image_dir = os.path.join(work, "bench")
    results = {}
    for count in (args.small, args.large):
        subset = os.path.join(work, f"subset-{count}.json")
        instances = _subset(json_path, count, subset)
        ours = _timed([sys.executable, "-m", "beam_pipelines.make_records",
                       "--image_dir", image_dir, "--object_annotations_file", subset,
                       "--output_file_prefix", os.path.join(work, f"ours-{count}", "r"),
                       "--num_shards", "8", "--overwrite",  # the work dir is kept between runs
                       f"--direct_running_mode={args.running_mode}",
                       f"--direct_num_workers={args.workers}"])
        os.makedirs(os.path.join(work, f"base-{count}"), exist_ok=True)
        base = _timed([sys.executable, os.path.join(REPO, "benchmarks", "classic_coco_records.py"),
                       subset, image_dir, os.path.join(work, f"base-{count}", "r"), "8",
                       str(args.workers)])
        results[count] = (ours, base)
        print(f"{count} images ({instances} instances): make_records {ours[0]:.1f} s wall, "
              f"{ours[1]:.1f} s CPU; baseline {base[0]:.1f} s wall, {base[1]:.1f} s CPU", flush=True)
    extra = args.large - args.small

    def marginal(which, measure):
        return extra / (results[args.large][which][measure] - results[args.small][which][measure])

    print(f"marginal images per CPU-second (per core): make_records {marginal(0, 1):.1f}, "
          f"baseline {marginal(1, 1):.1f}")
    ours_setup = ("in_memory, one process" if args.running_mode == "in_memory"
                  else f"{args.running_mode}, {args.workers} workers")
    print(f"marginal images per wall second: make_records {marginal(0, 0):.1f} ({ours_setup}), "
          f"baseline {marginal(1, 0):.1f} ({args.workers} pool processes)")
    print(f"ratio per core (make_records / baseline) = {marginal(0, 1) / marginal(1, 1):.2f}x; "
          f"wall-clock ratio = {marginal(0, 0) / marginal(1, 0):.2f}x")


def _star_polygon(rng, size: int, points: int):
    cx, cy = rng.uniform(size * 0.3, size * 0.7, 2)
    radius = rng.uniform(size * 0.1, size * 0.28)
    angles = np.sort(rng.uniform(0, 2 * math.pi, points))
    radii = radius * rng.uniform(0.6, 1.0, points)
    xs, ys = cx + radii * np.cos(angles), cy + radii * np.sin(angles)
    polygon = np.round(np.stack([xs, ys], -1).reshape(-1), 1).tolist()
    bbox = [round(xs.min(), 1), round(ys.min(), 1), round(xs.max() - xs.min(), 1),
            round(ys.max() - ys.min(), 1)]
    return polygon, bbox


def write_large_json(path: str, image_dir: str, num_images: int, num_instances: int,
                     points: int, size: int = 64, distinct_files: int = 50) -> None:
    """Streams a Fashionpedia-size annotation file to ``path`` (never held whole)."""
    os.makedirs(image_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(distinct_files):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), np.uint8)).save(
            os.path.join(image_dir, f"{index:03d}.jpg"))
    per_image = np.full(num_images, num_instances // num_images)
    per_image[: num_instances - per_image.sum()] += 1
    with open(path, "w") as stream:
        stream.write('{"info": {"description": "memory benchmark"}, "images": [')
        for index in range(num_images):
            entry = {"id": index + 1, "file_name": f"{index % distinct_files:03d}.jpg",
                     "width": size, "height": size}
            stream.write(("," if index else "") + json.dumps(entry))
        stream.write('], "annotations": [')
        annotation_id = 0
        for index in range(num_images):
            for _ in range(per_image[index]):
                polygon, bbox = _star_polygon(rng, size, points)
                annotation = {"id": annotation_id + 1, "image_id": index + 1,
                              "category_id": int(rng.integers(46)), "segmentation": [polygon],
                              "area": round(bbox[2] * bbox[3] * 0.6, 1), "bbox": bbox,
                              "iscrowd": 0, "attribute_ids": sorted(
                                  set(int(v) for v in rng.integers(0, 341, 3)))}
                stream.write(("," if annotation_id else "") + json.dumps(annotation))
                annotation_id += 1
        categories = [{"id": i, "name": f"category {i}", "supercategory": "s"} for i in range(46)]
        attributes = [{"id": i, "name": f"attribute {i}", "supercategory": "a"}
                      for i in range(341)]
        stream.write(f'], "categories": {json.dumps(categories)}, '
                     f'"attributes": {json.dumps(attributes)}}}')


_PEAK = ("import resource, sys\n{body}\n"
         "self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
         "child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
         "print('PEAK', self_kb, child_kb)\n")


def _peak_mib(body: str, *argv: str):
    """(peak RSS of the process, of its largest waited-for descendant) in MiB, and its stdout."""
    output = subprocess.run([sys.executable, "-c", _PEAK.format(body=body), *argv], check=True,
                            cwd=REPO, env=_ENV, capture_output=True, text=True).stdout
    line = [row for row in output.splitlines() if row.startswith("PEAK")][-1]
    _, self_kb, child_kb = line.split()
    return int(self_kb) / 1024, int(child_kb) / 1024, output


def memory(args) -> None:
    work = os.path.join(args.work_dir, f"memory-{args.images}-{args.instances}-{args.points}")
    json_path = os.path.join(work, "large.json")
    image_dir = os.path.join(work, "images")
    if not os.path.exists(json_path):
        print(f"writing {args.images} images / {args.instances} instances to {json_path} ...",
              flush=True)
        write_large_json(json_path + ".partial", image_dir, args.images, args.instances, args.points)
        os.replace(json_path + ".partial", json_path)
    print(f"annotation file: {os.path.getsize(json_path) / 2**20:.0f} MiB", flush=True)

    imports, _, _ = _peak_mib("import beam_pipelines.make_records")
    scan, _, _ = _peak_mib("import beam_pipelines.make_records\n"
                        "from beam_pipelines.coco_scan import scan_annotations\n"
                        "s = scan_annotations(sys.argv[1]); print(s.num_images, s.num_annotations)",
                        json_path)
    loaded, _, _ = _peak_mib("import json\nd = json.load(open(sys.argv[1]))", json_path)
    print(f"launcher peak RSS: {scan:.0f} MiB, of which imports {imports:.0f} MiB; "
          f"json.load of the same file: {loaded:.0f} MiB", flush=True)
    if args.skip_pipeline:
        return
    start = time.perf_counter()
    runner, worker, output = _peak_mib(
        "from beam_pipelines import make_records\nmake_records.run(sys.argv[1:])",
        "--image_dir", image_dir, "--object_annotations_file", json_path,
        "--output_file_prefix", os.path.join(work, "out", "r"), "--num_shards", "16", "--overwrite",
        "--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}")
    print(f"pipeline ({args.workers} workers, {time.perf_counter() - start:.0f} s): runner process "
          f"peak RSS {runner:.0f} MiB, largest worker {worker:.0f} MiB")
    print([row for row in output.splitlines() if row.startswith("images_read=")][-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work_dir", default="/tmp/fashion-benchmarks")
    parser.add_argument("--workers", type=int, default=2)
    commands = parser.add_subparsers(dest="command", required=True)
    rate = commands.add_parser("throughput")
    rate.add_argument("--image_size", type=int, default=800)
    rate.add_argument("--small", type=int, default=100)
    rate.add_argument("--large", type=int, default=500)
    rate.add_argument("--running_mode", default="in_memory",
                      choices=["in_memory", "multi_threading", "multi_processing"])
    mem = commands.add_parser("memory")
    mem.add_argument("--images", type=int, default=45_000)
    mem.add_argument("--instances", type=int, default=330_000)
    mem.add_argument("--points", type=int, default=40, help="vertices per polygon")
    mem.add_argument("--skip_pipeline", action="store_true")
    args = parser.parse_args()
    throughput(args) if args.command == "throughput" else memory(args)


if __name__ == "__main__":
    main()
