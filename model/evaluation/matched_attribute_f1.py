"""Attribute F1 of detections matched to ground truth, the way COCO matches them.

For every non-crowd ground-truth instance that COCOeval's greedy matching (mask
IoU >= ``iou_threshold``, detections in score order, same category, up to 100
per image) pairs with a detection, the binary F1 between the true attribute set
and the detection's ``attribute_ids``; the mean over those pairs. Two empty
sets count as F1 = 1. Unmatched instances do not enter: AP already counts them.
"""
import contextlib
import io
from typing import Any, Dict, List, Optional, Set

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def set_f1(truth: Set[int], predicted: Set[int]) -> float:
    if not truth and not predicted:
        return 1.0
    return 2.0 * len(truth & predicted) / (len(truth) + len(predicted))


def _quiet(function, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def matched_attribute_f1(dataset: Dict[str, Any], detections: List[Dict[str, Any]],
                         iou_threshold: float = 0.5, iou_type: str = "segm") -> Optional[float]:
    """Mean F1 over matched pairs (module docstring); None without detections' attributes.

    ``dataset``: a COCO dict whose annotations carry ``attribute_ids`` and the
    fields pycocotools needs (``model.evaluation.ground_truth`` completes them).
    """
    if not detections or "attribute_ids" not in detections[0]:
        return None
    ground_truth = COCO()
    ground_truth.dataset = dataset
    _quiet(ground_truth.createIndex)
    evaluator = COCOeval(ground_truth, _quiet(ground_truth.loadRes, detections), iou_type)
    evaluator.params.iouThrs = np.array([iou_threshold])
    evaluator.params.areaRng = [evaluator.params.areaRng[0]]
    evaluator.params.areaRngLbl = ["all"]
    _quiet(evaluator.evaluate)
    scores = []
    for match in evaluator.evalImgs:
        if match is None:
            continue
        for gt_id, dt_id, ignored in zip(match["gtIds"], match["gtMatches"][0], match["gtIgnore"]):
            if ignored or not dt_id:
                continue
            truth = set(ground_truth.anns[gt_id].get("attribute_ids", []))
            predicted = set(evaluator.cocoDt.anns[int(dt_id)].get("attribute_ids", []))
            scores.append(set_f1(truth, predicted))
    return float(np.mean(scores)) if scores else 0.0
