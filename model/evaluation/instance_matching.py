"""Greedy matching of one image's detections of one category to its ground truth,
for every area range, IoU threshold and F1 threshold at once.

Detections are taken best score first; each takes one still-free ground-truth
instance that passes the thresholds (``value >= min(threshold, 1 - 1e-10)``; a
threshold of -1 passes everything). Instances outside the area range or crowd
are "ignored": a detection takes one only when no regular instance qualifies,
and is then left out of the counts.

Which qualifying instance a detection takes:
  best IoU (COCOeval's rule): the highest IoU, the later instance on ties.
  official attribute rule (the official evaluator for categories with
    attributes): walk the instances in order and take each one whose IoU *and*
    F1 are both no lower than those of the one taken so far.
Crowd instances can absorb any number of detections under COCOeval's rule only.
"""
import numpy as np

BEST_IOU, OFFICIAL_ATTRIBUTE_RULE = "best_iou", "official_attribute_rule"


def _last_best(eligible: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the largest ``values[g]`` among ``eligible[..., g]`` (the last on ties), -1 when none."""
    masked = np.where(eligible, values, -np.inf)
    best = masked.max(axis=-1, keepdims=True)
    hits = eligible & (masked == best)
    last = hits.shape[-1] - 1 - np.argmax(hits[..., ::-1], axis=-1)
    return np.where(hits.any(axis=-1), last, -1)


def _sequential_pick(passes, free, ignore, ious_row, f1_row, iou_floor, f1_floor):
    """The official attribute rule for one detection.

    passes, free: bool[A, T, F, G]; ignore: bool[A, G]; ious_row, f1_row: float[G];
    iou_floor, f1_floor: thresholds broadcastable to [A, T, F]. Returns int[A, T, F].
    """
    picked = np.full(free.shape[:-1], -1)
    running_iou = np.broadcast_to(iou_floor, picked.shape).copy()
    running_f1 = np.broadcast_to(f1_floor, picked.shape).copy()
    for ignored_pass in (False, True):
        # Ignored instances are only reached when no regular one was taken.
        active = picked == -1 if ignored_pass else np.ones(picked.shape, dtype=bool)
        for g in range(free.shape[-1]):
            in_pass = (ignore[:, g] == ignored_pass)[:, np.newaxis, np.newaxis]
            take = (in_pass & active & passes[..., g] & free[..., g]
                    & (ious_row[g] >= running_iou) & (f1_row[g] >= running_f1))
            running_iou = np.where(take, ious_row[g], running_iou)
            running_f1 = np.where(take, f1_row[g], running_f1)
            picked = np.where(take, g, picked)
    return picked


def match_detections(ious: np.ndarray, f1s, gt_ignore: np.ndarray, gt_crowd: np.ndarray,
                     iou_thresholds: np.ndarray, f1_thresholds: np.ndarray, rule: str) -> np.ndarray:
    """Matches detections (sorted best score first) to ground-truth instances.

    Args:
      ious: float[D, G] IoU of each detection with each instance.
      f1s: float[D, G] attribute F1, or None to match on IoU alone (then F = 1).
      gt_ignore: bool[A, G], instance ignored in area range a.
      gt_crowd: bool[G].
      iou_thresholds: float[T]; f1_thresholds: float[F].
      rule: BEST_IOU or OFFICIAL_ATTRIBUTE_RULE.

    Returns:
      int[A, T, F, D]: index of the instance each detection took, -1 for none.
    """
    num_detections, num_gt = ious.shape
    num_f1 = len(f1_thresholds) if f1s is not None else 1
    num_areas = gt_ignore.shape[0]
    shape = (num_areas, len(iou_thresholds), num_f1)
    matched = np.full(shape + (num_detections,), -1)
    if num_detections == 0 or num_gt == 0:
        return matched
    iou_floor = np.minimum(iou_thresholds, 1 - 1e-10)[np.newaxis, :, np.newaxis]   # [1, T, 1]
    f1_floor = np.minimum(f1_thresholds, 1 - 1e-10)[np.newaxis, np.newaxis, :]     # [1, 1, F]
    taken = np.zeros(shape + (num_gt,), dtype=bool)
    reusable = gt_crowd if rule == BEST_IOU else np.zeros(num_gt, dtype=bool)
    ignore_4d = gt_ignore[:, np.newaxis, np.newaxis, :]
    for d in range(num_detections):
        passes = ious[d] >= iou_floor[..., np.newaxis]                              # [1, T, 1, G]
        if f1s is not None:
            passes = passes & (f1s[d] >= f1_floor[..., np.newaxis])                 # [1, T, F, G]
        free = ~taken | reusable
        if rule == BEST_IOU:
            eligible = passes & free
            picked = _last_best(eligible & ~ignore_4d, ious[d])
            picked = np.where(picked >= 0, picked, _last_best(eligible & ignore_4d, ious[d]))
        else:
            picked = _sequential_pick(np.broadcast_to(passes, free.shape), free, gt_ignore,
                                      ious[d], f1s[d], iou_floor, f1_floor)
        matched[..., d] = picked
        hit = picked >= 0
        taken[(*np.nonzero(hit), picked[hit])] = True
    return matched
