"""Precision at the 101 recall thresholds and final recall, per threshold pair,
from one category's matched detections (COCOeval's accumulate step, vectorised).

Numbers are computed with the same floating-point operations as COCOeval:
cumulative true/false positives in score order (ties in input order), recall
``tp / num_gt``, precision ``tp / (tp + fp + eps)`` made non-increasing from the
right, read at the first detection whose recall reaches each threshold.
"""
import numpy as np

RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


def precision_at_recalls(true_positive: np.ndarray, false_positive: np.ndarray, num_gt: int,
                         recall_thresholds: np.ndarray = RECALL_THRESHOLDS):
    """Interpolated precision and final recall for a batch of rankings.

    Args:
      true_positive, false_positive: bool[B, N], detections in rank order for B
        threshold settings (ignored detections are False in both).
      num_gt: number of regular ground-truth instances (> 0).

    Returns:
      (precision float[B, R], recall float[B]).
    """
    batch, num_detections = true_positive.shape
    if num_detections == 0:
        return np.zeros((batch, len(recall_thresholds))), np.zeros(batch)
    tp_count = np.cumsum(true_positive, axis=1)
    tp_sum = tp_count.astype(float)
    fp_sum = np.cumsum(false_positive, axis=1).astype(float)
    recall = tp_sum / num_gt
    precision = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    # recall < threshold  <=>  tp count < the smallest count whose recall reaches
    # it, since count / num_gt is monotone; integer counts can then be searched
    # in one flat, row-offset array without rounding.
    reach = np.searchsorted(np.arange(num_gt + 1) / num_gt, recall_thresholds, side="left")
    stride = int(tp_count[:, -1].max()) + num_gt + 2  # above every count and every reach
    offsets = stride * np.arange(batch)[:, np.newaxis]
    flat = (tp_count + offsets).ravel()
    first = np.searchsorted(flat, (reach[np.newaxis, :] + offsets).ravel(), side="left")
    first = first.reshape(batch, -1) - num_detections * np.arange(batch)[:, np.newaxis]
    inside = first < num_detections
    values = np.take_along_axis(envelope, np.minimum(first, num_detections - 1), axis=1)
    return np.where(inside, values, 0.0), recall[:, -1]
