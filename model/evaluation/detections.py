"""Predictions for evaluation: parsing, compacting and checking against the ground truth.

Accepts the predict pipeline's JSON Lines (one detection object per line) and
plain COCO results files (one JSON array). Each detection is compacted as it is
read to the fields evaluation uses, so per-attribute probability lists do not
stay in memory:

  {"image_id", "category_id", "score", "bbox" [x, y, w, h] (when given),
   "segmentation" {"size", "counts"} (when given), "attribute_ids" [int]}

Attributes come from ``attribute_ids``; a detection without them, or every
detection with ``attribute_probabilities`` when ``attribute_threshold`` is given,
takes the ids whose ``attribute_probabilities`` entry (indexed by attribute id) is
>= the threshold. Files of ``predict --attributes ids`` or ``top_k=K`` carry no
probabilities: their ``attribute_ids`` (thresholded by predict) are used as they
are, and ``attribute_top_k_*`` is not read.
"""
import json
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, TextIO

import numpy as np

from model.evaluation.ground_truth import EvaluationInputError, GroundTruth

DEFAULT_ATTRIBUTE_THRESHOLD = 0.5
_SHOWN = 5  # offending ids named in an error message


def iter_prediction_objects(stream: TextIO, source: str = "<predictions>") -> Iterator[Dict[str, Any]]:
    """Yields the detection objects of a JSON array file or a JSON Lines file."""
    head = stream.read(1)
    while head and head.isspace():
        head = stream.read(1)
    if not head:
        return
    if head == "[":
        try:
            entries = json.loads(head + stream.read())
        except json.JSONDecodeError as exc:
            raise EvaluationInputError(f"{source}: not valid JSON: {exc}") from None
        for position, entry in enumerate(entries):
            yield _require_object(entry, f"{source}[{position}]")
        return
    for number, line in enumerate(_prepend(head, stream), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvaluationInputError(f"{source}:{number}: not valid JSON: {exc}") from None
        yield _require_object(entry, f"{source}:{number}")


def _prepend(head: str, stream: TextIO) -> Iterator[str]:
    first = stream.readline()
    yield head + first
    yield from stream


def _require_object(entry: Any, where: str) -> Dict[str, Any]:
    if not isinstance(entry, dict):
        raise EvaluationInputError(f"{where}: a detection must be a JSON object, got {type(entry).__name__}")
    for key in ("image_id", "category_id", "score"):
        if key not in entry:
            raise EvaluationInputError(f"{where}: detection has no '{key}'")
    return entry


def compact_detection(entry: Dict[str, Any], attribute_threshold: Optional[float] = None) -> Dict[str, Any]:
    """The evaluation fields of one detection (see the module docstring)."""
    detection = {"image_id": entry["image_id"], "category_id": entry["category_id"],
                 "score": float(entry["score"])}
    if entry.get("bbox") is not None:
        detection["bbox"] = [float(v) for v in entry["bbox"]]
    if entry.get("segmentation") is not None:
        detection["segmentation"] = entry["segmentation"]
    probabilities = entry.get("attribute_probabilities")
    if probabilities is not None and (attribute_threshold is not None or entry.get("attribute_ids") is None):
        threshold = DEFAULT_ATTRIBUTE_THRESHOLD if attribute_threshold is None else attribute_threshold
        detection["attribute_ids"] = np.flatnonzero(np.asarray(probabilities) >= threshold).tolist()
        detection["from_probabilities"] = True
    else:
        detection["attribute_ids"] = [int(a) for a in entry.get("attribute_ids") or []]
    return detection


def read_detections(streams: Iterable[TextIO], sources: Sequence[str],
                    attribute_threshold: Optional[float] = None) -> List[Dict[str, Any]]:
    """Compacted detections of several files, in file order then line order."""
    detections = []
    for stream, source in zip(streams, sources):
        for entry in iter_prediction_objects(stream, source):
            detections.append(compact_detection(entry, attribute_threshold))
    return detections


def _describe(ids: Iterable[Any]) -> str:
    ordered = sorted(ids, key=repr)
    shown = ", ".join(repr(i) for i in ordered[:_SHOWN])
    return shown + (f" and {len(ordered) - _SHOWN} more" if len(ordered) > _SHOWN else "")


def check_detections(ground_truth: GroundTruth, detections: List[Dict[str, Any]]) -> None:
    """Rejects detections the ground truth cannot judge; restricts thresholded
    attribute ids to the ground truth's attributes (probability vectors have
    slots for unused ids).

    Raises:
      EvaluationInputError: naming image ids, category ids or explicit attribute
        ids that the ground truth does not define.
    """
    images = set(ground_truth.image_ids.tolist())
    categories = set(ground_truth.category_ids.tolist())
    attributes = set(ground_truth.attribute_ids)
    unknown_images = {d["image_id"] for d in detections} - images
    if unknown_images:
        raise EvaluationInputError(
            f"predictions name {len(unknown_images)} image id(s) that are not in the ground truth: "
            f"{_describe(unknown_images)}")
    unknown_categories = {d["category_id"] for d in detections} - categories
    if unknown_categories:
        raise EvaluationInputError(
            f"predictions name {len(unknown_categories)} category id(s) that are not in the ground truth: "
            f"{_describe(unknown_categories)}")
    unknown_attributes = set()
    for detection in detections:
        if detection.pop("from_probabilities", False):
            detection["attribute_ids"] = [a for a in detection["attribute_ids"] if a in attributes]
        else:
            unknown_attributes.update(a for a in detection["attribute_ids"] if a not in attributes)
    if unknown_attributes and attributes:
        raise EvaluationInputError(
            f"predictions name {len(unknown_attributes)} attribute id(s) that are not in the ground truth: "
            f"{_describe(unknown_attributes)}")
