"""COCO box and mask AP/AR with pycocotools' COCOeval, overall and per category."""
import contextlib
import copy
import io
from typing import Any, Dict, List

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from model.evaluation.ground_truth import EvaluationInputError, GroundTruth

# The twelve numbers of COCOeval.stats, in its order.
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                   "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_ALL_AREAS, _MAX_DETECTIONS = 0, -1  # indexes into COCOeval's area-range and maxDets axes


def detections_api(coco_gt: COCO, detections: List[Dict[str, Any]]) -> COCO:
    """pycocotools' results index of ``detections`` (copied: loadRes edits them)."""
    if not detections:
        api = COCO()
        api.dataset = {"images": list(coco_gt.dataset["images"]),
                       "categories": copy.deepcopy(coco_gt.dataset["categories"]), "annotations": []}
        with contextlib.redirect_stdout(io.StringIO()):
            api.createIndex()
        return api
    results = [{key: value for key, value in d.items() if key != "attribute_ids"} for d in detections]
    with contextlib.redirect_stdout(io.StringIO()):
        return coco_gt.loadRes(results)


def require_geometry(detections: List[Dict[str, Any]], iou_type: str) -> None:
    """Mask evaluation needs masks; box evaluation takes a box or, failing that, the mask's box."""
    needed = ("segmentation",) if iou_type == "segm" else ("bbox", "segmentation")
    missing = sum(1 for d in detections if not any(key in d for key in needed))
    if missing:
        raise EvaluationInputError(
            f"{missing} prediction(s) have no {' or '.join(needed)}, needed for {iou_type} evaluation")


def coco_metrics(ground_truth: GroundTruth, detections: List[Dict[str, Any]], iou_type: str) -> Dict[str, Any]:
    """Runs COCOeval for ``iou_type`` ('segm' or 'bbox').

    Returns:
      {"stats": {name: value for COCO_STAT_NAMES}, "per_category": {category id: AP}}
      with AP over IoU .50:.95, all areas, 100 detections; -1 where a category has
      no ground truth.
    """
    require_geometry(detections, iou_type)
    coco_gt = ground_truth.coco()
    evaluator = COCOeval(coco_gt, detections_api(coco_gt, detections), iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"]  # [T, R, K, A, M]
    per_category = {}
    for index, category_id in enumerate(evaluator.params.catIds):
        values = precision[:, :, index, _ALL_AREAS, _MAX_DETECTIONS]
        values = values[values > -1]
        per_category[int(category_id)] = float(np.mean(values)) if values.size else -1.0
    stats = {name: float(value) for name, value in zip(COCO_STAT_NAMES, evaluator.stats)}
    return {"stats": stats, "per_category": per_category}
