"""Fashionpedia AP: this evaluator against the official one, same data, same process.

  python benchmarks/evaluation_speed.py [--images 150] [--max_instances 14] [--seed 101]

Generates a 46-category ground truth with perturbed predictions (the tests'
generator), runs the official ``fp_eval.FPEval`` (needs the test extra:
fashionpedia==1.1 and scikit-learn) and this evaluator's Fashionpedia part on it,
and prints both times, their ratio, pycocotools' COCOeval time for scale, and the
largest difference between the two evaluators' numbers.
"""
import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from model.evaluation.coco_metrics import coco_metrics  # noqa: E402
from model.evaluation.detections import compact_detection  # noqa: E402
from model.evaluation.fashionpedia_eval import fashionpedia_tables  # noqa: E402
from model.evaluation.fashionpedia_summary import summary_tables  # noqa: E402
from model.evaluation.ground_truth import load_ground_truth  # noqa: E402
from tests.generated_predictions import GeneratorConfig, generate  # noqa: E402
from tests.official_fashionpedia import official_modules, official_tables, run_official  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--max_instances", type=int, default=14)
    parser.add_argument("--seed", type=int, default=101)
    args = parser.parse_args()
    official_modules()  # imports scikit-learn outside the timed region
    ground_truth, results = generate(GeneratorConfig(seed=args.seed, num_images=args.images,
                                                     max_instances=args.max_instances, image_size=400))
    print(f"{args.images} images, {len(ground_truth['annotations'])} instances, {len(results)} detections")
    start = time.perf_counter()
    official = official_tables(run_official(ground_truth, results, "segm"))
    official_seconds = time.perf_counter() - start

    gt = load_ground_truth(ground_truth)
    detections = [compact_detection(r) for r in results]
    start = time.perf_counter()
    ours = summary_tables(fashionpedia_tables(gt, detections, "segm"))
    our_seconds = time.perf_counter() - start
    start = time.perf_counter()
    coco_metrics(gt, detections, "segm")
    coco_seconds = time.perf_counter() - start

    difference = max(abs(ours[t][k] - official[t][k]) for t in official for k in official[t])
    print(f"AP_IoU_F1 {ours['iou_f1']['AP']:.6f}; largest difference from the official numbers {difference:.1e}")
    print(f"official FPEval: {official_seconds:.2f} s; ours: {our_seconds:.2f} s "
          f"({official_seconds / our_seconds:.1f}x faster); pycocotools COCOeval: {coco_seconds:.2f} s")


if __name__ == "__main__":
    main()
