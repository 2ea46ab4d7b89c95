"""``--mode eval``: predictions on the eval records -> COCO results -> metrics.

Box and mask AP/AR (pycocotools' COCOeval) and, when the annotations list
attributes, Fashionpedia AP_IoU+F1 come from ``model.evaluation`` against the
eval annotations, restricted to the images predicted. ``attribute_f1`` is
``model.evaluation.matched_attribute_f1``: the mean binary F1 of true and
predicted (probability >= ``attribute_threshold``) attribute sets over
ground-truth instances matched at mask IoU 0.5.
"""
import json
import os
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from model.evaluation import evaluator
from model.evaluation.category_roles import OFFICIAL
from model.evaluation.ground_truth import load_ground_truth
from model.evaluation.matched_attribute_f1 import matched_attribute_f1
from model.masks import rle
from tpu.input_fn import PADDING_SOURCE_ID


def to_coco_results(predictions: Iterable[Dict[str, np.ndarray]],
                    attribute_threshold: float = 0.5) -> Tuple[List[dict], List[int]]:
    """Per-image estimator predictions, already in dataset space (``tpu.model_fn``:
    boxes in original pixels, dataset category ids, attribute probabilities 0 outside the
    label map's attributes) -> (COCO result dicts, the ids of every image predicted, with or
    without detections). Masks are pasted and encoded by the same code as predict's
    (``model.masks.rle``)."""
    results, image_ids = [], []
    for image in predictions:
        image_id = int(image["source_id"])
        if image_id == PADDING_SOURCE_ID:
            continue
        image_ids.append(image_id)
        info = image["image_info"]
        height, width = int(round(info[0][0])), int(round(info[0][1]))
        count = int(image["num_detections"])
        xyxy = image["boxes"][:count][:, [1, 0, 3, 2]]
        masks = rle.encode_masks_with_scores(image["mask_probabilities"][:count], xyxy, height,
                                             width)
        for index, encoded in enumerate(masks):
            if not encoded.area:  # as in predict's output: detections with empty masks are dropped
                continue
            xmin, ymin, xmax, ymax = (float(v) for v in xyxy[index])
            result = {
                "image_id": image_id,
                "category_id": int(image["category_ids"][index]),
                "bbox": [xmin, ymin, xmax - xmin, ymax - ymin],
                "score": float(image["scores"][index]),
                "segmentation": encoded.rle,
            }
            if "attribute_probabilities" in image:
                result["attribute_ids"] = present_attributes(
                    image["attribute_probabilities"][index], attribute_threshold)
            results.append(result)
    return results, image_ids


def present_attributes(probabilities: np.ndarray, threshold: float) -> List[int]:
    """Attribute ids whose probability (float [T]) is at least ``threshold``; a probability of
    0 (the slots that are no attribute of the label map among them) is never present."""
    present = (probabilities >= threshold) & (probabilities > 0)
    return [int(i) for i in np.flatnonzero(present)]


def _subset(dataset: dict, image_ids: Sequence[int]) -> dict:
    """The annotation file restricted to the images that were predicted."""
    keep = set(image_ids)
    return {**dataset, "images": [image for image in dataset["images"] if image["id"] in keep],
            "annotations": [a for a in dataset["annotations"] if a.get("image_id") in keep]}


def evaluate(results: List[dict], image_ids: Sequence[int], annotations_file: str,
             mode: str = OFFICIAL) -> Dict[str, object]:
    """{"bbox": metrics, "segm": metrics, "attribute_f1": float or None, "num_images": int,
    "num_detections": int} over the images predicted; metrics as ``model.evaluation``
    (COCO stats and, with attributes in the annotations, Fashionpedia AP_IoU+F1 in ``mode``)."""
    with tf.io.gfile.GFile(annotations_file) as stream:
        dataset = json.load(stream)
    known = {image["id"] for image in dataset.get("images", [])}
    unknown = sorted(set(image_ids) - known)
    if unknown:
        raise ValueError(f"{len(unknown)} predicted image ids are not in {annotations_file}, "
                         f"e.g. {unknown[:5]}: are the eval records made from this file?")
    ground_truth = load_ground_truth(_subset(dataset, image_ids))
    metrics = evaluator.evaluate(ground_truth, results, ("bbox", "segm"), mode)
    return {**metrics, "attribute_f1": matched_attribute_f1(ground_truth.dataset, results),
            "num_images": len(set(image_ids)), "num_detections": len(results)}


def write_metrics(model_dir: str, step: int, metrics: Dict[str, object]) -> str:
    """model_dir/eval/metrics-STEP.json plus TensorBoard scalars in model_dir/eval."""
    eval_dir = os.path.join(model_dir, "eval")
    tf.io.gfile.makedirs(eval_dir)
    path = os.path.join(eval_dir, f"metrics-{step}.json")
    with tf.io.gfile.GFile(path, "w") as stream:
        json.dump({"step": step, **metrics}, stream, indent=1)
    scalars = {f"{kind}/{name}": value for kind in ("bbox", "segm")
               for name, value in metrics[kind].items() if isinstance(value, float)}
    if metrics.get("attribute_f1") is not None:
        scalars["attribute/f1"] = metrics["attribute_f1"]
    with tf.Graph().as_default():
        writer = tf.compat.v1.summary.FileWriter(eval_dir)
        summary = tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(tag=tag, simple_value=v)
                                              for tag, v in scalars.items()])
        writer.add_summary(summary, step)
        writer.close()
    tf.get_logger().info("eval at step %d: %s", step, json.dumps(metrics))
    return path
