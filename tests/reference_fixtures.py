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

from model.checkpoint_import import checkpoint_io, seeded_weights

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


def write_reference_checkpoint(architecture: str, prefix: str) -> str:
    """The checkpoint the reference run saved, rebuilt from the fixture's seed and names."""
    meta = metadata(architecture)
    values = seeded_weights.seeded_weights(
        meta["seed"], [(name, tuple(shape)) for name, shape in meta["variables"]],
        meta.get("logit_scales", {}))
    return checkpoint_io.write_checkpoint(prefix, values)


def _iou(box, boxes):
    top = np.maximum(box[0], boxes[:, 0])
    left = np.maximum(box[1], boxes[:, 1])
    bottom = np.minimum(box[2], boxes[:, 2])
    right = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def compare_detections(reference: Dict[str, np.ndarray], ours: Dict[str, np.ndarray],
                       image: int, attribute_columns=None) -> Dict[str, float]:
    """Checks the targets for one image and returns the largest differences seen.

    reference: detection_boxes [n, D, 4], detection_scores, detection_classes, num_detections,
      detection_masks [n, D, 28, 28], detection_attributes [n, D, T] (reference outputs).
    ours: boxes, scores, classes, num_detections, mask_probabilities, attribute_probabilities
      (the model's inference outputs in model-input pixels, classes 1..N).
    attribute_columns: our attribute slot of each reference attribute output (default: same).
    Raises AssertionError naming the first detection that misses a target.
    """
    count = int(reference["num_detections"][image])
    ref_boxes = reference["detection_boxes"][image, :count]
    ref_scores = reference["detection_scores"][image, :count]
    ref_classes = reference["detection_classes"][image, :count]
    mine = int(ours["num_detections"][image])
    boxes, scores = ours["boxes"][image, :mine], ours["scores"][image, :mine]
    classes = ours["classes"][image, :mine]
    worst = {"box_iou": 1.0, "score": 0.0, "mask": 0.0, "attribute": 0.0, "matched": 0}
    used = set()
    for index in np.flatnonzero(ref_scores >= MIN_SCORE):
        same = np.flatnonzero(classes == ref_classes[index])
        assert same.size, (f"image {image}: reference detection {index} (class "
                           f"{ref_classes[index]}, score {ref_scores[index]:.4f}) has no match")
        ious = _iou(ref_boxes[index], boxes[same])
        best = same[int(np.argmax(ious))]
        iou = float(ious.max())
        score = abs(float(scores[best]) - float(ref_scores[index]))
        mask = float(np.abs(ours["mask_probabilities"][image, best]
                            - reference["detection_masks"][image, index]).max())
        ref_attributes = reference["detection_attributes"][image, index]
        our_attributes = ours["attribute_probabilities"][image, best]
        if attribute_columns is not None:
            our_attributes = our_attributes[attribute_columns]
        attribute = float(np.abs(our_attributes - ref_attributes).max())
        label = f"image {image}: reference detection {index} (class {ref_classes[index]})"
        assert iou >= MIN_IOU, f"{label}: box IoU {iou:.4f}"
        assert score <= MAX_SCORE_DIFFERENCE, f"{label}: score differs by {score:.4f}"
        assert mask <= MAX_MASK_DIFFERENCE, f"{label}: mask differs by {mask:.4f}"
        assert attribute <= MAX_ATTRIBUTE_DIFFERENCE, f"{label}: attributes differ by {attribute:.4f}"
        used.add(int(best))
        worst.update(box_iou=min(worst["box_iou"], iou), score=max(worst["score"], score),
                     mask=max(worst["mask"], mask), attribute=max(worst["attribute"], attribute),
                     matched=worst["matched"] + 1)
    extra = [i for i in np.flatnonzero(scores > MAX_UNMATCHED_SCORE) if int(i) not in used]
    assert not extra, (f"image {image}: {len(extra)} detections of ours above "
                       f"{MAX_UNMATCHED_SCORE} have no reference detection (first: class "
                       f"{classes[extra[0]]}, score {scores[extra[0]]:.4f})")
    return worst
