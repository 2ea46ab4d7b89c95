"""Evaluation of instance predictions: COCO box/mask AP and Fashionpedia AP_IoU+F1.

``evaluate`` returns, per IoU type ('segm' for masks, 'bbox' for boxes):

  {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl":
       COCOeval's twelve numbers,
   "AP_IoU_F1": Fashionpedia AP over IoU .50:.95 and attribute F1 .50:.95,
   "AP_IoU_only", "AP_F1_only": the same with the F1 or the IoU constraint lifted,
   "fashionpedia": {"mode", "iou_f1": {...}, "iou": {...}, "f1": {...}}  (fashionpedia_summary),
   "per_category": {"<id>": {"name", "AP" (COCO), "AP_IoU_only"[, "AP_IoU_F1", "AP_F1_only"]}}}

The Fashionpedia entries are left out when the ground truth lists no attributes.
"""
from typing import Any, Dict, List, Sequence

from model.evaluation.category_roles import CORRECTED, OFFICIAL
from model.evaluation.coco_metrics import COCO_STAT_NAMES, coco_metrics
from model.evaluation.detections import check_detections
from model.evaluation.fashionpedia_eval import fashionpedia_tables
from model.evaluation.fashionpedia_summary import per_category_ap, summary_tables
from model.evaluation.ground_truth import GroundTruth

IOU_TYPES = ("segm", "bbox")


def evaluate_iou_type(ground_truth: GroundTruth, detections: List[Dict[str, Any]], iou_type: str,
                      mode: str = OFFICIAL) -> Dict[str, Any]:
    """Metrics of one IoU type for checked detections (see the module docstring)."""
    coco = coco_metrics(ground_truth, detections, iou_type)
    metrics: Dict[str, Any] = dict(coco["stats"])
    per_category = {
        str(category_id): {"name": ground_truth.category_names[category_id], "AP": ap}
        for category_id, ap in coco["per_category"].items()}
    if ground_truth.attribute_ids:
        tables = fashionpedia_tables(ground_truth, detections, iou_type, mode)
        summaries = summary_tables(tables, equal_category_weight=mode == CORRECTED)
        metrics["AP_IoU_F1"] = summaries["iou_f1"]["AP"]
        metrics["AP_IoU_only"] = summaries["iou"]["AP"]
        metrics["AP_F1_only"] = summaries["f1"]["AP"]
        metrics["fashionpedia"] = {"mode": mode, **summaries}
        for category_id, entry in per_category_ap(tables, ground_truth.category_ids.tolist()).items():
            per_category[str(category_id)].update(entry)
    metrics["per_category"] = per_category
    return metrics


def evaluate(ground_truth: GroundTruth, detections: List[Dict[str, Any]],
             iou_types: Sequence[str] = ("segm",), mode: str = OFFICIAL) -> Dict[str, Dict[str, Any]]:
    """{iou type: metrics}; raises EvaluationInputError for predictions the ground truth cannot judge."""
    for iou_type in iou_types:
        if iou_type not in IOU_TYPES:
            raise ValueError(f"iou type must be one of {IOU_TYPES}, got {iou_type!r}")
    check_detections(ground_truth, detections)
    return {iou_type: evaluate_iou_type(ground_truth, detections, iou_type, mode) for iou_type in iou_types}


def format_metrics(results: Dict[str, Dict[str, Any]]) -> str:
    """A short plain-text table: the COCO numbers and the Fashionpedia main numbers per IoU type."""
    names = list(COCO_STAT_NAMES) + ["AP_IoU_F1", "AP_IoU_only", "AP_F1_only"]
    lines = ["{:<12}".format("metric") + "".join("{:>10}".format(t) for t in results)]
    for name in names:
        if not any(name in metrics for metrics in results.values()):
            continue
        cells = "".join("{:>10.4f}".format(metrics[name]) if name in metrics else "{:>10}".format("-")
                        for metrics in results.values())
        lines.append("{:<12}".format(name) + cells)
    return "\n".join(lines)
