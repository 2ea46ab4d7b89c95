"""Attribute agreement between detections and ground-truth instances: binary macro F1.

Each instance's attributes are a multi-hot vector over the ground truth's
attribute list (length ``num_attributes``). The F1 of a (detection, instance)
pair treats the two vectors as true and predicted labels of a binary problem
and averages the F1 of label 1 (attribute present) and label 0 (absent) over
the labels that occur in either vector, i.e. scikit-learn's
``f1_score(true, predicted, average="macro")``:

  F1(label) = 2 * agreeing / (count in true + count in predicted)

so two empty vectors score 1.0 and an empty instance against a detection with
any attribute scores below 0.5. Computed here from counts, for all pairs at once.
"""
from typing import Dict, Sequence

import numpy as np


def multi_hot(attribute_lists: Sequence[Sequence[int]], slot_of: Dict[int, int], num_attributes: int) -> np.ndarray:
    """Attribute id lists -> bool[len(attribute_lists), num_attributes]."""
    vectors = np.zeros((len(attribute_lists), num_attributes), dtype=bool)
    for row, attribute_ids in enumerate(attribute_lists):
        vectors[row, [slot_of[a] for a in attribute_ids]] = True
    return vectors


def binary_macro_f1(detected: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pairwise binary macro F1.

    Args:
      detected: bool[D, N] multi-hot attributes of D detections.
      true: bool[G, N] multi-hot attributes of G ground-truth instances.

    Returns:
      float64[D, G].
    """
    num_attributes = detected.shape[1]
    both = detected.astype(np.int64) @ true.astype(np.int64).T            # [D, G]
    predicted = detected.sum(axis=1, dtype=np.int64)[:, np.newaxis]      # [D, 1]
    actual = true.sum(axis=1, dtype=np.int64)[np.newaxis, :]             # [1, G]
    neither = num_attributes - predicted - actual + both
    present_denominator = actual + predicted
    absent_denominator = (num_attributes - actual) + (num_attributes - predicted)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1_present = 2.0 * both / present_denominator
        f1_absent = 2.0 * neither / absent_denominator
    has_present = present_denominator > 0
    has_absent = absent_denominator > 0
    total = np.where(has_present, f1_present, 0.0) + np.where(has_absent, f1_absent, 0.0)
    return total / (has_present.astype(np.int64) + has_absent)
