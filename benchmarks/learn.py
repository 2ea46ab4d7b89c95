"""The learning bar: does ``tiny``, trained by tpu.train on CPU, learn the synthetic set?

  python benchmarks/learn.py [--work_dir DIR] [--train_images 400] [--val_images 100]

Generates a synthetic Fashionpedia-format dataset (train and held-out val
splits), writes records with make_records, then runs exactly the README recipe:

  python -m tpu.train --mode train --config tiny --model_dir D --train_file_pattern 'P-*.tfrecord'
  python -m tpu.train --mode export ...   and   --mode eval on the val split

and prints the training wall time and CPU time, box and mask AP (COCO
IoU .50:.95) and attribute F1 on matched detections (threshold 0.5), next to
the reference numbers of a shrunken torchvision Mask R-CNN trained for 10
minutes on such a set without attributes (mask AP 0.86, box AP 0.75).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = {"mask AP": 0.86, "box AP": 0.75}
_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore",
            PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _run(arguments, log_path):
    """Runs ``python ARGS`` in the repo; returns (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        subprocess.run([sys.executable, *arguments], cwd=REPO, env=_ENV, stdout=log,
                       stderr=subprocess.STDOUT, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    flags = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    flags.add_argument("--work_dir", default="/tmp/learn_benchmark")
    flags.add_argument("--train_images", type=int, default=400)
    flags.add_argument("--val_images", type=int, default=100)
    flags.add_argument("--seed", type=int, default=1)
    flags.add_argument("--override", action="append", default=[],
                       help="extra tpu.train overrides (the bar uses none)")
    args = flags.parse_args()
    work = args.work_dir
    data, records, model_dir = (os.path.join(work, name) for name in ("data", "records", "model"))
    if not os.path.exists(os.path.join(data, "val.json")):
        _run(["-m", "model.synthetic", "--output_dir", data, "--image_size", "128",
              "--seed", str(args.seed),
              "--splits", f"train:{args.train_images},val:{args.val_images}"],
             os.path.join(work + "-generate.log"))
        for split in ("train", "val"):
            _run(["-m", "beam_pipelines.make_records", "--image_dir", os.path.join(data, split),
                  "--object_annotations_file", os.path.join(data, f"{split}.json"),
                  "--output_file_prefix", os.path.join(records, split), "--num_shards", "2"],
                 os.path.join(work + f"-records-{split}.log"))
    common = ["-m", "tpu.train", "--config", "tiny", "--model_dir", model_dir,
              *[flag for item in args.override for flag in ("--override", item)]]
    train_wall, train_cpu = _run(
        [*common, "--mode", "train",
         "--train_file_pattern", os.path.join(records, "train-*.tfrecord")],
        os.path.join(work + "-train.log"))
    _run([*common, "--mode", "export"], os.path.join(work + "-export.log"))
    _run([*common, "--mode", "eval", "--eval_file_pattern", os.path.join(records, "val-*.tfrecord"),
          "--eval_annotations_file", os.path.join(data, "val.json")],
         os.path.join(work + "-eval.log"))
    metrics_dir = os.path.join(model_dir, "eval")
    latest = max(os.listdir(metrics_dir), key=lambda name: (name.endswith(".json"),
                                                             os.path.getmtime(
                                                                 os.path.join(metrics_dir, name))))
    with open(os.path.join(metrics_dir, latest)) as stream:
        metrics = json.load(stream)
    ours = {"mask AP": metrics["segm"]["AP"], "box AP": metrics["bbox"]["AP"]}
    print(f"training: {train_wall / 60:.1f} min wall, {train_cpu / 60:.1f} CPU-min "
          f"({os.cpu_count()} cores), {metrics['step']} steps")
    print(f"val ({args.val_images} images): mask AP {ours['mask AP']:.3f} "
          f"(AP50 {metrics['segm']['AP50']:.3f}), box AP {ours['box AP']:.3f} "
          f"(AP50 {metrics['bbox']['AP50']:.3f}), attribute F1 {metrics['attribute_f1']:.3f}")
    for name, reference in PEER.items():
        print(f"{name}: {ours[name]:.3f} vs reference {reference:.2f} -> "
              f"ratio {ours[name] / reference:.3f}")


if __name__ == "__main__":
    main()
