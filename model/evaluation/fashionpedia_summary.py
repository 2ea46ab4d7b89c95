"""Fashionpedia summary numbers from the precision/recall tables.

Three tables, as the official evaluator prints them:
  iou_f1: IoU .50:.95 and attribute F1 .50:.95 (its "AP" is the main number, AP_IoU_F1)
  iou:    IoU .50:.95, F1 ignored (threshold -1)
  f1:     F1 .50:.95, IoU ignored (threshold -1)
Keys follow the official names (AP, AP_IOU50, AP_F175, AP_IOU75_F150, APs, AR@10,
ARl@100, ...), with the group lines as ``AP_<group>``.

A number is the mean of the table entries selected (all > -1). Where F1 is swept,
a category with attributes contributes one slice per F1 threshold (.50:.95) and
a category without attributes its single IoU-only slice, so in the official
mode each category without attributes weighs a tenth of one with attributes.
``equal_category_weight`` repeats that slice once per F1 threshold instead.
"""
from typing import Dict, Optional, Sequence

import numpy as np

from model.evaluation.fashionpedia_eval import PrecisionTables

AREA_NAMES = ("all", "small", "medium", "large")
_SWEPT_F1 = 10  # F1 thresholds .50:.95; slot 10 is -1


def _threshold_index(values: np.ndarray, wanted: float) -> np.ndarray:
    return np.flatnonzero(values == wanted)


def summarize(tables: PrecisionTables, kind: str, iou: bool = True, f1: bool = True,
              iou_threshold: Optional[float] = None, f1_threshold: Optional[float] = None,
              area: str = "all", max_detections: int = 100, categories: Optional[Sequence[int]] = None,
              equal_category_weight: bool = False) -> float:
    """One summary number.

    Args:
      kind: 'ap' (mean interpolated precision) or 'ar' (mean final recall).
      iou, f1: whether each constraint applies; when it does, ``*_threshold``
        picks one threshold, None sweeps .50:.95.
      categories: positions of the categories to average (all when None).

    Returns:
      The mean over the selected entries that are > -1, or -1 when there are none.
    """
    thresholds = tables.thresholds
    values = tables.precision if kind == "ap" else tables.recall
    if iou:
        values = values[_threshold_index(thresholds.iou, iou_threshold)] if iou_threshold is not None \
            else values[:-1]
    else:
        values = values[-1:]
    area_index = AREA_NAMES.index(area)
    limit_index = list(thresholds.max_detections).index(max_detections)
    values = values[..., area_index, limit_index]           # ap: [T, F, R, K]; ar: [T, F, K]
    positions = range(values.shape[-1]) if categories is None else categories
    pieces = []
    for k in positions:
        per_category = values[..., k]                       # ap: [T, F, R]; ar: [T, F]
        if not f1 or not tables.roles.average_with_attributes[k]:
            slices = per_category[:, -1:]
            if f1 and f1_threshold is None and equal_category_weight:
                slices = np.repeat(slices, _SWEPT_F1, axis=1)
        elif f1_threshold is not None:
            slices = per_category[:, _threshold_index(thresholds.f1, f1_threshold)]
        else:
            slices = per_category[:, :_SWEPT_F1]
        pieces.append(slices.ravel())
    selected = np.concatenate(pieces) if pieces else np.zeros(0)
    selected = selected[selected > -1]
    return float(np.mean(selected)) if selected.size else -1.0


def summary_table(tables: PrecisionTables, iou: bool, f1: bool, categories: Optional[Sequence[int]] = None,
                  with_groups: bool = True, equal_category_weight: bool = False) -> Dict[str, float]:
    """The official table of one constraint setting (see the module docstring)."""
    common = dict(iou=iou, f1=f1, categories=categories, equal_category_weight=equal_category_weight)
    table = {}
    if with_groups:
        for group in tables.roles.groups:
            if f1 and not group.in_attribute_tables:
                continue
            table["AP_" + group.name] = summarize(
                tables, "ap", iou=iou, f1=f1, categories=group.members, equal_category_weight=equal_category_weight)
    table["AP"] = summarize(tables, "ap", **common)
    if iou:
        table["AP_IOU50"] = summarize(tables, "ap", iou_threshold=0.5, **common)
        table["AP_IOU75"] = summarize(tables, "ap", iou_threshold=0.75, **common)
    if f1:
        table["AP_F150"] = summarize(tables, "ap", f1_threshold=0.5, **common)
        table["AP_F175"] = summarize(tables, "ap", f1_threshold=0.75, **common)
    if iou and f1:
        for iou_threshold in (0.5, 0.75):
            for f1_threshold in (0.5, 0.75):
                key = f"AP_IOU{int(iou_threshold * 100)}_F1{int(f1_threshold * 100)}"
                table[key] = summarize(tables, "ap", iou_threshold=iou_threshold, f1_threshold=f1_threshold,
                                       **common)
    for area in ("small", "medium", "large"):
        table["AP" + area[0]] = summarize(tables, "ap", area=area, **common)
    for limit in tables.thresholds.max_detections:
        table[f"AR@{limit}"] = summarize(tables, "ar", max_detections=limit, **common)
    for area in ("small", "medium", "large"):
        table[f"AR{area[0]}@100"] = summarize(tables, "ar", area=area, **common)
    return table


def summary_tables(tables: PrecisionTables, equal_category_weight: bool = False) -> Dict[str, Dict[str, float]]:
    """{"iou_f1": ..., "iou": ..., "f1": ...} over all categories, with group lines."""
    return {
        "iou_f1": summary_table(tables, iou=True, f1=True, equal_category_weight=equal_category_weight),
        "iou": summary_table(tables, iou=True, f1=False, equal_category_weight=equal_category_weight),
        "f1": summary_table(tables, iou=False, f1=True, equal_category_weight=equal_category_weight),
    }


def per_category_ap(tables: PrecisionTables, category_ids: Sequence[int]) -> Dict[int, Dict[str, float]]:
    """category id -> {"AP_IoU_only"} plus {"AP_IoU_F1", "AP_F1_only"} for categories
    averaged with attributes (as the official per-class report)."""
    result = {}
    for k, category_id in enumerate(category_ids):
        entry = {"AP_IoU_only": summarize(tables, "ap", f1=False, categories=[k])}
        if tables.roles.average_with_attributes[k]:
            entry["AP_IoU_F1"] = summarize(tables, "ap", categories=[k])
            entry["AP_F1_only"] = summarize(tables, "ap", iou=False, categories=[k])
        result[int(category_id)] = entry
    return result
