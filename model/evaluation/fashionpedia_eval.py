"""Fashionpedia AP with IoU and attribute-F1 thresholds: the precision and recall tables.

A detection matches an instance of its category when IoU >= t_iou and, for
categories judged on attributes, attribute F1 >= t_f1. Both thresholds sweep
.50:.95 and each also takes -1 ("no constraint"), which gives the IoU-only and
F1-only variants. The tables have COCOeval's layout with an F1 axis:

  precision: float[T=11, F=11, R=101, K, A=4, M=3]
  recall:    float[T=11, F=11, K, A=4, M=3]

(IoU thresholds, F1 thresholds, recall thresholds, categories in id order, area
ranges all/small/medium/large, max detections 1/10/100), -1 where undefined. As
in the official evaluator, a category averaged without attributes fills only
the last F1 slot (-1).
"""
import dataclasses
from collections import defaultdict
from typing import Any, Dict, List

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import Params

from model.evaluation.category_roles import OFFICIAL, CategoryRoles, category_roles
from model.evaluation.fashionpedia_matching import ImageOutcome, Thresholds, evaluate_image
from model.evaluation.ground_truth import EvaluationInputError, GroundTruth, segmentation_to_rle
from model.evaluation.precision_recall import RECALL_THRESHOLDS, precision_at_recalls


def default_thresholds() -> Thresholds:
    coco = Params(iouType="segm")
    return Thresholds(iou=np.append(coco.iouThrs, -1.0), f1=np.append(coco.iouThrs, -1.0),
                      area_ranges=np.array(coco.areaRng, dtype=float), max_detections=sorted(coco.maxDets))


@dataclasses.dataclass
class PrecisionTables:
    precision: np.ndarray
    recall: np.ndarray
    roles: CategoryRoles
    thresholds: Thresholds


def _prepared_detections(detections: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Copies with 'area' as pycocotools' loadRes sets it: the box area when the
    first detection has a box, else the mask area."""
    use_boxes = bool(detections) and bool(detections[0].get("bbox"))
    if use_boxes and any(not d.get("bbox") for d in detections):
        raise EvaluationInputError("the first prediction has a 'bbox', so every prediction needs one "
                                   "(detection areas then come from boxes, as in pycocotools)")
    prepared = []
    for detection in detections:
        item = dict(detection)
        if use_boxes:
            item["area"] = item["bbox"][2] * item["bbox"][3]
        else:
            item["area"] = float(mask_utils.area(item["segmentation"]))
            item.setdefault("bbox", [float(v) for v in mask_utils.toBbox(item["segmentation"])])
        prepared.append(item)
    return prepared


def _instances(ground_truth: GroundTruth, iou_type: str):
    """(image id, category id) -> completed annotations in file order (segm: as RLE)."""
    sizes = ground_truth.image_sizes
    grouped = defaultdict(list)
    for annotation in ground_truth.annotations:
        item = dict(annotation)
        if iou_type == "segm":
            item["segmentation"] = segmentation_to_rle(item["segmentation"], *sizes[item["image_id"]])
        grouped[item["image_id"], item["category_id"]].append(item)
    return grouped


def _ranked(detections: List[Dict[str, Any]], limit: int):
    """(image id, category id) -> detections best score first (ties in input order), at most ``limit``."""
    grouped = defaultdict(list)
    for detection in detections:
        grouped[detection["image_id"], detection["category_id"]].append(detection)
    for key, items in grouped.items():
        order = np.argsort([-d["score"] for d in items], kind="mergesort")[:limit]
        grouped[key] = [items[i] for i in order]
    return grouped


def _accumulate_category(outcomes: List[ImageOutcome], thresholds: Thresholds, num_slots: int):
    """precision float[T, F', R, A, M] and recall float[T, F', A, M] of one category (-1 where undefined)."""
    num_iou, num_areas, num_limits = len(thresholds.iou), len(thresholds.area_ranges), len(thresholds.max_detections)
    precision = -np.ones((num_iou, num_slots, len(RECALL_THRESHOLDS), num_areas, num_limits))
    recall = -np.ones((num_iou, num_slots, num_areas, num_limits))
    if not outcomes:
        return precision, recall
    scores = np.concatenate([o.scores for o in outcomes])
    ranks = np.concatenate([np.arange(len(o.scores)) for o in outcomes])
    true_positive = np.concatenate([o.true_positive for o in outcomes], axis=-1)      # [A, T, F', N]
    false_positive = np.concatenate([o.false_positive for o in outcomes], axis=-1)
    num_gt = np.sum([o.num_regular_gt for o in outcomes], axis=0)                    # [A]
    for m, limit in enumerate(thresholds.max_detections):
        kept = np.flatnonzero(ranks < limit)
        order = kept[np.argsort(-scores[kept], kind="mergesort")]
        for a in range(num_areas):
            if num_gt[a] == 0:
                continue
            tp = true_positive[a][..., order].reshape(num_iou * num_slots, -1)
            fp = false_positive[a][..., order].reshape(num_iou * num_slots, -1)
            at_recalls, final_recall = precision_at_recalls(tp, fp, int(num_gt[a]))
            precision[:, :, :, a, m] = at_recalls.reshape(num_iou, num_slots, -1)
            recall[:, :, a, m] = final_recall.reshape(num_iou, num_slots)
    return precision, recall


def fashionpedia_tables(ground_truth: GroundTruth, detections: List[Dict[str, Any]], iou_type: str,
                        mode: str = OFFICIAL) -> PrecisionTables:
    """Matches and accumulates; ``detections`` are compacted and checked (see detections.py)."""
    thresholds = default_thresholds()
    roles = category_roles(ground_truth, mode)
    slots = {a: i for i, a in enumerate(ground_truth.attribute_ids)}
    instances = _instances(ground_truth, iou_type)
    ranked = _ranked(_prepared_detections(detections), thresholds.max_detections[-1])
    num_iou, num_f1 = len(thresholds.iou), len(thresholds.f1)
    num_categories = len(ground_truth.category_ids)
    precision = -np.ones((num_iou, num_f1, len(RECALL_THRESHOLDS), num_categories,
                          len(thresholds.area_ranges), len(thresholds.max_detections)))
    recall = -np.ones((num_iou, num_f1, num_categories, len(thresholds.area_ranges),
                       len(thresholds.max_detections)))
    for k, category_id in enumerate(ground_truth.category_ids.tolist()):
        with_attributes = bool(roles.match_with_attributes[k])
        outcomes = []
        for image_id in ground_truth.image_ids.tolist():
            found, given = ranked.get((image_id, category_id), []), instances.get((image_id, category_id), [])
            if found or given:
                outcomes.append(evaluate_image(found, given, iou_type, thresholds,
                                               slots if with_attributes else None, mode == OFFICIAL))
        slots_filled = num_f1 if with_attributes else 1
        category_precision, category_recall = _accumulate_category(outcomes, thresholds, slots_filled)
        if roles.average_with_attributes[k]:
            if not with_attributes and (category_recall > -1).any():
                raise EvaluationInputError(
                    f"category {category_id} sits at position {k} of the sorted category ids, which the official "
                    "evaluator's hard-coded list treats as a category with attributes although its id is not one; "
                    "the official evaluator fails here. Use the corrected mode for this taxonomy.")
            precision[:, :, :, k] = category_precision
            recall[:, :, k] = category_recall
        else:
            precision[:, -1, :, k] = category_precision[:, -1]
            recall[:, -1, k] = category_recall[:, -1]
    return PrecisionTables(precision, recall, roles, thresholds)
