"""Regenerates tests/fixtures/fork_records: records written by the fork's COCO record tool.

The fork (github.com/hrsma2i/kaggle-imaterialist2020-model) makes its training records with
``tools/datasets/create_coco_tf_record.py``, which stores each annotation's own ``category_id``
as ``image/object/class/label`` and writes no label map. This script makes a small synthetic
Fashionpedia-format set (``model.synthetic``: category ids 0..5, attribute ids 1..81), runs that
tool on it in a subprocess, outside this package, and copies the JSON, the images and the records
into the fixture folder:

  python benchmarks/fork_records.py --fork_checkout PATH [--tf_models PATH] [--output DIR]

PATH is a checkout of the fork. The tool imports ``research.object_detection.utils`` from
tensorflow/models, which the fork's scripts put on PYTHONPATH as ``tf-models`` and
``tf-models/research`` (``scripts/create_tf_records.sh``); --tf_models names that checkout when it
is not PATH/tf-models (its ``research/object_detection/protos`` need their ``*_pb2.py`` compiled).
The tool uses ``np.bool``, which numpy 1.24 removed: the subprocess sets ``numpy.bool = bool``
before loading it. Nothing else of the tool is changed; it runs with ``--include_masks`` as the
fork's ``scripts/create_tf_records.sh train`` does.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from model.synthetic.generate import SyntheticConfig, generate_split  # noqa: E402

TOOL = os.path.join("tools", "datasets", "create_coco_tf_record.py")
DEFAULT_OUTPUT = os.path.join(ROOT, "tests", "fixtures", "fork_records")
# The synthetic set: 8 images of 128x128 with 1..3 shapes, polygons and compressed RLE.
SYNTHETIC = SyntheticConfig(image_size=128, min_objects=1, max_objects=3, seed=16,
                            segmentation_forms=("polygon", "rle"))
NUM_IMAGES = 8
NUM_SHARDS = 2

# Runs the tool's main under absl with the paths and the numpy alias it needs.
DRIVER = """
import runpy, sys
import numpy
numpy.bool = bool
sys.path[:0] = {paths!r}
sys.argv = [{tool!r}] + {argv!r}
runpy.run_path({tool!r}, run_name="__main__")
"""


def run_tool(fork_checkout: str, tf_models: str, json_path: str, image_dir: str,
             output_prefix: str, num_shards: int) -> None:
    tool = os.path.join(fork_checkout, TOOL)
    if not os.path.isfile(tool):
        raise SystemExit(f"error: {tool} not found: --fork_checkout must be a checkout of the fork")
    if not os.path.isdir(os.path.join(tf_models, "research", "object_detection")):
        raise SystemExit(f"error: {tf_models} has no research/object_detection: pass --tf_models")
    argv = ["--logtostderr", "--include_masks", f"--image_dir={image_dir}",
            f"--object_annotations_file={json_path}", f"--output_file_prefix={output_prefix}",
            f"--num_shards={num_shards}"]
    driver = DRIVER.format(paths=[tf_models, os.path.join(tf_models, "research")], tool=tool,
                           argv=argv)
    subprocess.run([sys.executable, "-c", driver], check=True, cwd=fork_checkout)


def main(argv=None) -> None:
    flags = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    flags.add_argument("--fork_checkout", required=True)
    flags.add_argument("--tf_models", help="tensorflow/models checkout (default FORK/tf-models)")
    flags.add_argument("--output", default=DEFAULT_OUTPUT)
    args = flags.parse_args(argv)
    fork = os.path.abspath(args.fork_checkout)
    tf_models = os.path.abspath(args.tf_models or os.path.join(fork, "tf-models"))
    with tempfile.TemporaryDirectory() as work:
        json_path = generate_split(work, "train", NUM_IMAGES, SYNTHETIC)
        run_tool(fork, tf_models, json_path, os.path.join(work, "train"),
                 os.path.join(work, "records", "train"), NUM_SHARDS)
        # Replace what an earlier run wrote; the folder's README stays.
        shutil.rmtree(os.path.join(args.output, "images"), ignore_errors=True)
        for old in glob.glob(os.path.join(args.output, "train*")):
            os.remove(old)
        os.makedirs(os.path.join(args.output, "images"))
        shutil.copy(json_path, os.path.join(args.output, "train.json"))
        for image in sorted(glob.glob(os.path.join(work, "train", "*"))):
            shutil.copy(image, os.path.join(args.output, "images"))
        for shard in sorted(glob.glob(os.path.join(work, "records", "train-*.tfrecord"))):
            shutil.copy(shard, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
