"""Makes the regression-check fixture of tests/test_check_dropin.py from the demo's model.

  python -m tests.make_check_fixture [--demo_output /tmp/check_demo] [--out tests/resources/check]

Runs ``beam_pipelines.demo`` (unless --demo_output already holds its export) on a
shorter schedule than its default: 200 train and 20 val synthetic images, 600
steps of ``tiny`` (a few minutes on 2 CPU cores). Then writes to --out:

  saved_model/      the demo's SavedModel (with its label map)
  images/NAME       the val image with the most correct detections of score >= 0.5
                    (each the best of its category on a ground-truth object, mask IoU >= 0.5)
  masks/I_CATEGORYNAME.npy   those detections' masks (at most 4), named as the older
                    scripts named theirs: I the detection's position in score order,
                    CATEGORYNAME its label map name; uint8 [H, W], 1 on the mask

so that ``python -m beam_pipelines.check --model OUT/saved_model --images OUT/images
--expected_masks OUT/masks`` passes with that model and fails when it changes.
"""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
from pycocotools.coco import COCO

DEMO_FLAGS = ["--train_images", "200", "--val_images", "20",
              "--override", "train.total_steps=600", "--override", "train.decay_steps=[480,570]"]
MIN_SCORE = 0.5
MAX_MASKS = 4
MIN_GROUND_TRUTH_IOU = 0.5


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def correct_detections(detections, objects):
    """(position, detection) of the detections, in score order, that are the best-scoring
    match (same category, mask IoU >= MIN_GROUND_TRUTH_IOU) of a ground-truth object."""
    from beam_pipelines import check
    taken, right = set(), []
    for index, detection in enumerate(detections):
        mask = check.decode(detection)
        for number, (category, truth) in enumerate(objects):
            if (number not in taken and category == detection["category_id"]
                    and _iou(mask, truth) >= MIN_GROUND_TRUTH_IOU):
                taken.add(number)
                right.append((index, detection))
                break
    return right


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo_output", default="/tmp/check_demo")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "resources", "check"))
    args = parser.parse_args(argv)
    export = os.path.join(args.demo_output, "model", "export", "demo")
    if not os.path.isdir(export):
        subprocess.run([sys.executable, "-m", "beam_pipelines.demo", "--output_dir",
                        args.demo_output, *DEMO_FLAGS], check=True)

    from beam_pipelines import check
    predictor = check.Predictor(export, min_score=MIN_SCORE)
    val_dir = os.path.join(args.demo_output, "data", "val")
    ground_truth = COCO(os.path.join(args.demo_output, "data", "val.json"))
    candidates = []
    for image_id, info in sorted(ground_truth.imgs.items()):
        with open(os.path.join(val_dir, info["file_name"]), "rb") as stream:
            detections = predictor.detections(stream.read())
        objects = [(a["category_id"], ground_truth.annToMask(a))
                   for a in ground_truth.loadAnns(ground_truth.getAnnIds(imgIds=[image_id]))]
        right = correct_detections(detections, objects)
        candidates.append((-len(right), info["file_name"], right))
    _, image, right = min(candidates, key=lambda item: item[:2])
    if not right:
        raise SystemExit(f"no correct detection of score >= {MIN_SCORE} on any image of {val_dir}")

    for part in ("saved_model", "images", "masks"):
        shutil.rmtree(os.path.join(args.out, part), ignore_errors=True)
    shutil.copytree(export, os.path.join(args.out, "saved_model"))
    os.makedirs(os.path.join(args.out, "images"))
    os.makedirs(os.path.join(args.out, "masks"))
    shutil.copyfile(os.path.join(val_dir, image), os.path.join(args.out, "images", image))
    names = check.category_names(check.read_label_map(export))
    for index, detection in right[:MAX_MASKS]:
        path = os.path.join(args.out, "masks", f"{index}_{names[detection['category_id']]}.npy")
        np.save(path, check.decode(detection).astype(np.uint8))
        print(f"{path}: score {detection['score']:.3f}")
    print(f"image {image}: {len(right)} correct detections of score >= {MIN_SCORE}")


if __name__ == "__main__":
    main()
