"""Model outputs -> detections -> JSON Lines objects.

Output object per detection (one line each):
  image_id, filename, id, category_id, bbox [x, y, w, h] (original pixels),
  score, segmentation {size: [h, w], counts: COCO compressed RLE},
  mask_mean_score, mask_area_fraction, then the attributes as ``AttributeOutput``
  says (``--attributes``):
  full (default)  attribute_probabilities (indexed by attribute id, 4 decimals),
                  attribute_ids (ids with probability >= the attribute threshold);
  ids             attribute_ids only;
  top_k=K         attribute_ids, attribute_top_k_ids (the K most probable attributes
                  of the label map, most probable first; ties: smaller id first) and
                  attribute_top_k_probabilities (theirs, 4 decimals).

``id`` = image_id * 1024 + the detection's slot in the model output (0..K-1,
K = max_detections <= 1024). Image ids are unique per image, so ids are unique
across the whole output without any coordination between workers, and the
same detection gets the same id on every run. Image ids are below 2^53, so ids
are below 2^63 (a signed 64-bit integer).

Counters (namespace ``predict``): images_predicted, images_failed(.inference_failed),
detections_written.
"""
import argparse
import dataclasses
import json
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import dead_letters
from beam_pipelines.inference_handlers import InferenceFailed, outputs_of
from beam_pipelines.predict_inputs import COUNTERS, ImageKey
from model.dataset.rejections import Rejected
from model.label_map import LabelMap

MAX_SLOTS = 1024
# model.export's label map asset (model.dataset.record_files.LABELS_FILE; that module
# imports TensorFlow, which workers of this module do not otherwise need).
LABEL_MAP_ASSET = ("assets", "labels.json")


@dataclasses.dataclass(frozen=True)
class AttributeOutput:
    """Which attribute fields a detection carries (see the module docstring).

    ``defined_ids``: the label map's attribute ids, the candidates of top_k (None: every
    slot of the vector; slots that are no attribute hold 0 in the model's output).
    """
    mode: str = "full"
    top_k: int = 0
    defined_ids: Optional[Tuple[int, ...]] = None


FULL = AttributeOutput()


def parse_attribute_output(text: str) -> AttributeOutput:
    """``full``, ``ids`` or ``top_k=K`` (K >= 1) -> AttributeOutput; an argparse type."""
    if text in ("full", "ids"):
        return AttributeOutput(text)
    name, _, value = text.partition("=")
    if name == "top_k" and value.isdecimal() and int(value) >= 1:
        return AttributeOutput("top_k", int(value))
    raise argparse.ArgumentTypeError(
        f"{text!r} is not one of full, ids, top_k=K (K an integer >= 1)")


def defined_attribute_ids(model: str) -> Optional[Tuple[int, ...]]:
    """The attribute ids of the label map the SavedModel carries (``assets/labels.json``),
    or None when it carries none."""
    path = FileSystems.join(model, *LABEL_MAP_ASSET)
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path, compression_type="uncompressed") as stream:
        label_map = LabelMap.loads(stream.read().decode("utf-8"))
    return tuple(attribute.id for attribute in label_map.attributes)


def detection_id(image_id: int, slot: int) -> int:
    if not 0 <= slot < MAX_SLOTS:
        raise ValueError(f"detection slot {slot} outside [0, {MAX_SLOTS}): the model returns "
                         f"more than {MAX_SLOTS} detections per image")
    return image_id * MAX_SLOTS + slot


def select_detections(outputs: Dict[str, np.ndarray], min_score: float) -> Dict[str, Any]:
    """One image's signature outputs -> per-detection arrays for the detections kept.

    Keeps valid slots (< num_detections, class >= 0) with score >= ``min_score``.
    Returns ``boxes`` float32[K', 4] [xmin, ymin, xmax, ymax] pixels, ``scores``,
    ``category_ids``, ``slots``, ``mask_probabilities`` float32[K', M, M],
    ``attribute_probabilities`` float32[K', T] and ``image_size`` (H, W).
    """
    scores = np.asarray(outputs["detection_scores"], np.float32)
    classes = np.asarray(outputs["detection_classes"])
    slots = np.arange(len(scores))
    keep = (slots < int(outputs["num_detections"])) & (classes >= 0) & (scores >= min_score)
    y_min, x_min, y_max, x_max = np.asarray(outputs["detection_boxes"], np.float32)[keep].T
    height, width = (int(round(float(v))) for v in np.asarray(outputs["image_info"])[0])
    return {
        "boxes": np.stack([x_min, y_min, x_max, y_max], axis=-1).reshape(-1, 4),
        "scores": scores[keep],
        "category_ids": classes[keep].astype(np.int64),
        "slots": slots[keep],
        "mask_probabilities": np.asarray(outputs["detection_masks"], np.float32)[keep],
        "attribute_probabilities": np.asarray(outputs["detection_attributes"], np.float32)[keep],
        "image_size": (height, width),
    }


class ToDetections(beam.DoFn):
    """(key, inference result) -> (key, selected detections); failed inferences to ``errors``."""

    def __init__(self, min_score: float):
        self._min_score = min_score

    def process(self, element: Tuple[ImageKey, Any]) -> Iterable[Any]:
        (image_id, filename), result = element
        if isinstance(result, InferenceFailed):
            yield dead_letters.failed_image(COUNTERS, image_id, filename,
                                            Rejected("inference_failed", result.reason))
            return
        COUNTERS.inc("images_predicted")
        yield (image_id, filename), select_detections(outputs_of(result), self._min_score)


def _rounded(values: np.ndarray, digits: int) -> list:
    return [round(float(value), digits) for value in values]


def top_attributes(probabilities: np.ndarray, k: int,
                   candidates: Optional[Sequence[int]] = None) -> Tuple[list, list]:
    """(ids, probabilities rounded to 4 decimals) of the ``k`` most probable attributes
    among ``candidates`` (default: every slot), most probable first, ties by smaller id."""
    ids = np.arange(len(probabilities)) if candidates is None else np.asarray(
        [i for i in sorted(candidates) if i < len(probabilities)], np.int64)
    order = np.argsort(-probabilities[ids], kind="stable")[:k]
    chosen = ids[order]
    return [int(i) for i in chosen], _rounded(probabilities[chosen], 4)


def _attribute_fields(attributes: np.ndarray, attribute_threshold: float,
                      output: AttributeOutput) -> Dict[str, Any]:
    ids = [int(i) for i in np.flatnonzero(attributes >= attribute_threshold)]
    if output.mode == "full":
        return {"attribute_probabilities": _rounded(attributes, 4), "attribute_ids": ids}
    if output.mode == "ids":
        return {"attribute_ids": ids}
    top_ids, top_probabilities = top_attributes(attributes, output.top_k, output.defined_ids)
    return {"attribute_ids": ids, "attribute_top_k_ids": top_ids,
            "attribute_top_k_probabilities": top_probabilities}


def detection_objects(key: ImageKey, detections: Dict[str, Any], attribute_threshold: float,
                      attributes: AttributeOutput = FULL) -> Iterable[Dict[str, Any]]:
    """(key, detections with RLE masks) -> one output object per detection.

    Box coordinates are exact float32 values (so x + w never passes the image
    edge); scores carry 6 decimals and attribute probabilities 4.
    """
    image_id, filename = key
    for index, slot in enumerate(detections["slots"]):
        x_min, y_min, x_max, y_max = (float(v) for v in detections["boxes"][index])
        yield {
            "image_id": image_id,
            "filename": filename,
            "id": detection_id(image_id, int(slot)),
            "category_id": int(detections["category_ids"][index]),
            "bbox": [x_min, y_min, x_max - x_min, y_max - y_min],
            "score": round(float(detections["scores"][index]), 6),
            "segmentation": detections["segmentation"][index],
            "mask_mean_score": round(float(detections["mask_mean_score"][index]), 6),
            "mask_area_fraction": round(float(detections["mask_area_fraction"][index]), 6),
            **_attribute_fields(detections["attribute_probabilities"][index],
                                attribute_threshold, attributes),
        }


def to_json_lines(element: Tuple[ImageKey, Dict[str, Any]], attribute_threshold: float,
                  attributes: AttributeOutput = FULL) -> Iterable[str]:
    lines = [json.dumps(item, separators=(",", ":"))
             for item in detection_objects(*element, attribute_threshold, attributes)]
    COUNTERS.inc("detections_written", len(lines))
    return lines
