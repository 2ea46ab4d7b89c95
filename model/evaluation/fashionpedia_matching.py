"""Fashionpedia evaluation, per-image step: IoU and attribute F1 of every
(detection, instance) pair of one image and category, the matching, and the
resulting true/false positives for every area range and threshold pair.
"""
import dataclasses
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from model.evaluation.attribute_f1 import binary_macro_f1, multi_hot
from model.evaluation.instance_matching import BEST_IOU, OFFICIAL_ATTRIBUTE_RULE, match_detections


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """iou: float[T], f1: float[F] (each ends with -1, "no constraint");
    area_ranges: float[A, 2] in pixels; max_detections: per image, ascending."""
    iou: np.ndarray
    f1: np.ndarray
    area_ranges: np.ndarray
    max_detections: Sequence[int]


@dataclasses.dataclass
class ImageOutcome:
    """One image and category. scores: float[D] best first; true_positive,
    false_positive: bool[A, T, F', D] with F' = F when matched on attributes, else 1;
    num_regular_gt: int[A]."""
    scores: np.ndarray
    true_positive: np.ndarray
    false_positive: np.ndarray
    num_regular_gt: np.ndarray


def _pairwise_iou(detections, instances, iou_type: str) -> np.ndarray:
    key = "segmentation" if iou_type == "segm" else "bbox"
    ious = mask_utils.iou([d[key] for d in detections], [g[key] for g in instances],
                          [int(g["iscrowd"]) for g in instances])
    ious = np.asarray(ious, dtype=float)
    return ious.reshape(len(detections), len(instances))


def _outside(areas: np.ndarray, area_ranges: np.ndarray) -> np.ndarray:
    """bool[A, N]: area outside each range."""
    return (areas[np.newaxis, :] < area_ranges[:, :1]) | (areas[np.newaxis, :] > area_ranges[:, 1:])


def evaluate_image(detections: List[Dict[str, Any]], instances: List[Dict[str, Any]], iou_type: str,
                   thresholds: Thresholds, attribute_slots: Optional[Dict[int, int]],
                   official: bool) -> ImageOutcome:
    """Matches one image's detections of one category to its instances.

    Args:
      detections: sorted best score first, at most max_detections[-1]; each with
        'score', 'area', the geometry and 'attribute_ids'.
      instances: ground-truth annotations (completed), in file order.
      attribute_slots: attribute id -> multi-hot slot when this category is
        matched on attributes, else None.
      official: the official evaluator's rules (its attribute matching rule, and
        an instance with id 0 never counting as matched).
    """
    gt_areas = np.array([g["area"] for g in instances], dtype=float)
    gt_crowd = np.array([bool(g["iscrowd"]) for g in instances], dtype=bool)
    gt_ignore = gt_crowd[np.newaxis, :] | _outside(gt_areas, thresholds.area_ranges)      # [A, G]
    dt_outside = _outside(np.array([d["area"] for d in detections], dtype=float), thresholds.area_ranges)
    ious = _pairwise_iou(detections, instances, iou_type) if detections and instances \
        else np.zeros((len(detections), len(instances)))
    f1s, rule = None, BEST_IOU
    if attribute_slots is not None:
        size = len(attribute_slots)
        f1s = binary_macro_f1(multi_hot([d["attribute_ids"] for d in detections], attribute_slots, size),
                              multi_hot([g["attribute_ids"] for g in instances], attribute_slots, size))
        rule = OFFICIAL_ATTRIBUTE_RULE if official else BEST_IOU
    matched = match_detections(ious, f1s, gt_ignore, gt_crowd, thresholds.iou,
                               thresholds.f1, rule)                                          # [A, T, F', D]
    took = matched >= 0
    safe = np.maximum(matched, 0)
    counts = took
    if official:
        gt_ids = np.array([g["id"] for g in instances] or [0])
        counts = took & (gt_ids[safe] != 0)
    area_index = np.arange(gt_ignore.shape[0])[:, np.newaxis, np.newaxis, np.newaxis]
    took_ignored = took & gt_ignore[area_index, safe] if instances else np.zeros_like(took)
    ignored = took_ignored | (~counts & dt_outside[:, np.newaxis, np.newaxis, :])
    return ImageOutcome(
        scores=np.array([d["score"] for d in detections], dtype=float),
        true_positive=counts & ~ignored,
        false_positive=~counts & ~ignored,
        num_regular_gt=(~gt_ignore).sum(axis=1))
