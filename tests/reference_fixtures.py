"""Reads the reference-equivalence fixtures (tests/fixtures/reference/<architecture>/) and
compares this package's detections with the reference implementation's.

A fixture holds what tensorflow/tpu's code (or the iMaterialist 2020 fork) produced, as
data: the variable names and shapes of its graph, the seed and logit scales of the
stand-in weights (``model.checkpoint_import.seeded_weights``), the YAML it was built
from, and its outputs per stage (``reference.npz``). ``tools/reference_fixtures.py``
regenerates them from a reference checkout.
"""
import json
import os
from typing import Dict, List

import numpy as np
import tensorflow as tf

from model.checkpoint_import import checkpoint_io, seeded_weights
from model.ops import box_ops

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "reference")

# The targets of the equivalence (per reference detection scoring at least MIN_SCORE).
MIN_SCORE = 0.05
MIN_IOU = 0.99
MAX_SCORE_DIFFERENCE = 0.005
MAX_MASK_DIFFERENCE = 0.01
MAX_ATTRIBUTE_DIFFERENCE = 0.005
MAX_UNMATCHED_SCORE = 0.1


def architectures() -> List[str]:
    if not os.path.isdir(ROOT):
        return []
    return sorted(name for name in os.listdir(ROOT)
                  if os.path.exists(os.path.join(ROOT, name, "variables.json")))


def metadata(architecture: str) -> Dict:
    with open(os.path.join(ROOT, architecture, "variables.json")) as stream:
        return json.load(stream)


def outputs(architecture: str) -> Dict[str, np.ndarray]:
    with np.load(os.path.join(ROOT, architecture, "reference.npz")) as data:
        return {key: data[key] for key in data.files}


def config_path(architecture: str) -> str:
    return os.path.join(ROOT, architecture, "config.yaml")


def write_reference_checkpoint(architecture: str, prefix: str, keep_scales=None) -> str:
    """The checkpoint the reference run saved, rebuilt from the fixture's seed and names;
    with ``keep_scales`` (a predicate on the scale's pattern) only those layer scales apply."""
    meta = metadata(architecture)
    scales = {pattern: factor for pattern, factor in meta.get("logit_scales", {}).items()
              if keep_scales is None or keep_scales(pattern)}
    values = seeded_weights.seeded_weights(
        meta["seed"], [(name, tuple(shape)) for name, shape in meta["variables"]], scales)
    return checkpoint_io.write_checkpoint(prefix, values)


def box_iou(a, b):
    """IoU [N, M] of pixel boxes, 1 for boxes within 0.01 pixel of each other (boxes clipped
    flat onto the image border have no area)."""
    iou = box_ops.iou(tf.constant(a[None], tf.float32), tf.constant(b[None], tf.float32)).numpy()[0]
    close = np.abs(a[:, None, :] - b[None, :, :]).max(axis=-1) <= 0.01
    return np.where(close, np.maximum(iou, 1.0), iou)


def _flat(boxes):
    return np.minimum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]) < 1.0


def match_detections(reference, detections):
    """Each reference detection scoring >= 0.05 against ours of the same class, score
    within 0.005 and box IoU >= 0.99; ours above 0.1 left over are extra.

    Boxes clipped flat onto the image border (under a pixel wide) have IoUs that a 1e-5
    pixel change flips, so NMS may keep or drop them either way; they are not required
    to match, and one of ours kept where the reference dropped one can push the
    reference's last detection out of a full list (excused at the list's end only)."""
    missing, extra, excused, counts = 0, 0, 0, []
    worst = {"iou": 1.0, "score": 0.0, "mask": 0.0, "attribute": 0.0}
    max_detections = detections["scores"].shape[1]
    for image in range(detections["scores"].shape[0]):
        ref = {key: reference[f"detection_{key}"][image]
               for key in ("boxes", "scores", "classes", "masks", "attributes")
               if f"detection_{key}" in reference}
        ours = {key: value[image] for key, value in detections.items()}
        wanted = np.nonzero(ref["scores"] >= MIN_SCORE)[0]
        mine = np.nonzero(ours["scores"] > 0)[0]
        counts.append(len(wanted))
        iou = box_iou(ref["boxes"][wanted], ours["boxes"][mine])
        used = set()
        for row, index in enumerate(wanted):
            candidates = [(iou[row, column], j) for column, j in enumerate(mine)
                          if ours["classes"][j] == ref["classes"][index] and j not in used
                          and abs(ours["scores"][j] - ref["scores"][index]) <= MAX_SCORE_DIFFERENCE]
            if not candidates or max(candidates)[0] < MIN_IOU:
                last = ours["scores"][mine].min() if len(mine) else 0.0
                cut = (len(mine) == max_detections
                       and ref["scores"][index] <= last + MAX_SCORE_DIFFERENCE)
                if _flat(ref["boxes"][index]) or cut:
                    excused += 1
                else:
                    missing += 1
                continue
            best_iou, j = max(candidates)
            used.add(j)
            worst["iou"] = min(worst["iou"], best_iou)
            worst["score"] = max(worst["score"], abs(ours["scores"][j] - ref["scores"][index]))
            worst["mask"] = max(worst["mask"], np.abs(ours["mask_probabilities"][j]
                                                      - ref["masks"][index]).max())
            if "attributes" in ref:
                worst["attribute"] = max(worst["attribute"], np.abs(
                    ours["attribute_probabilities"][j] - ref["attributes"][index]).max())
        extra += sum(1 for j in mine if j not in used and ours["scores"][j] > MAX_UNMATCHED_SCORE
                     and not _flat(ours["boxes"][j]))
    return {"detections": counts, "missing": missing, "extra": extra, "excused": excused,
            **{f"detection_{key}": value for key, value in worst.items()}}


def assert_targets(result) -> None:
    """The equivalence targets on a ``match_detections`` result."""
    assert result["missing"] == 0 and result["extra"] == 0, result
    assert result["excused"] <= max(2, 0.02 * sum(result["detections"])), result
    assert result["detection_iou"] >= MIN_IOU, result
    assert result["detection_score"] <= MAX_SCORE_DIFFERENCE, result
    assert result["detection_mask"] <= MAX_MASK_DIFFERENCE, result
    assert result["detection_attribute"] <= MAX_ATTRIBUTE_DIFFERENCE, result
