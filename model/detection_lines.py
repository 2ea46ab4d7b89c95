"""One image's detections in dataset space -> the JSON objects of the prediction files.

Plain Python and numpy (no Beam, no TensorFlow): ``beam_pipelines.predict`` runs
these steps in its DoFns, ``python -m tpu.train --mode predict`` on the host after
the estimator, so both write the same lines.

Steps, per image:
  select_detections  the model's outputs (the SavedModel signature's names) ->
                     the detections kept, as per-detection arrays;
  encode_masks       their masks pasted at image resolution as COCO RLE, with the
                     mask scores; detections whose pasted mask is empty dropped;
  detection_objects  one output object per detection.
``image_objects`` chains the three.

Output object per detection (one line each):
  image_id, filename, id, category_id, bbox [x, y, w, h] (original pixels),
  score, segmentation {size: [h, w], counts: COCO compressed RLE},
  mask_mean_score, mask_area_fraction, area, mask_pixel_mean_score, then the
  attributes as ``AttributeOutput`` says (``--attributes``):
  full (default)  attribute_probabilities (indexed by attribute id, 4 decimals),
                  attribute_ids (ids with probability >= the attribute threshold);
  ids             attribute_ids only;
  top_k=K         attribute_ids, attribute_top_k_ids (the K most probable attributes
                  of the label map, most probable first; ties: smaller id first) and
                  attribute_top_k_probabilities (theirs, 4 decimals).

Mask scores: ``mask_mean_score`` and ``mask_area_fraction`` are measured on the
model's M x M mask grid (M = 28), as the system this package replaces defined them:
the mean probability of the cells > the mask threshold (0.5), and the number of
those cells / (M * M); both 0 when no cell is over. ``area`` (pixels of the pasted
mask) and ``mask_pixel_mean_score`` (the mean probability of those pixels) are
measured at image resolution (``model.masks.rle.EncodedMask``). Which detections
are written depends on the pasted mask alone: one whose pasted mask is empty is
dropped even when grid cells are over the threshold (a box outside the image, or
so small that its few pixels sample none of the cells that are over), and one
whose pasted mask has pixels is written with grid scores 0 should no cell be over
(a pixel is a weighted mean of four cells, so only float32 rounding at the
threshold itself could make that happen).

``id`` = image_id * 1024 + the detection's slot in the model output (0..K-1,
K = max_detections <= 1024). Image ids are unique per image, so ids are unique
across the whole output without any coordination between workers, and the
same detection gets the same id on every run. Image ids are below 2^53, so ids
are below 2^63 (a signed 64-bit integer).
"""
import argparse
import dataclasses
import json
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from model.masks.rle import encode_masks_with_scores

MAX_SLOTS = 1024
MASK_THRESHOLD = 0.5
ImageKey = Tuple[int, str]  # (image_id, filename)
# The mask arrays encode_masks replaces by the RLE and the scores.
MASK_KEYS = ("boxes", "mask_probabilities", "image_size")
# model.outputs.to_dataset_space's names -> the SavedModel signature's (model.serving).
SIGNATURE_NAMES = {"num_detections": "num_detections", "boxes": "detection_boxes",
                   "category_ids": "detection_classes", "scores": "detection_scores",
                   "mask_probabilities": "detection_masks",
                   "attribute_probabilities": "detection_attributes",
                   "image_info": "image_info"}


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


def detection_id(image_id: int, slot: int) -> int:
    if not 0 <= slot < MAX_SLOTS:
        raise ValueError(f"detection slot {slot} outside [0, {MAX_SLOTS}): the model returns "
                         f"more than {MAX_SLOTS} detections per image")
    return image_id * MAX_SLOTS + slot


def signature_outputs(prediction: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """One image's ``model.outputs.to_dataset_space`` arrays (with ``image_info``), as the
    TPU estimator predicts them, under the SavedModel signature's names; a model without
    an attribute head gets attribute probabilities of width 0, as the signature does."""
    outputs = {SIGNATURE_NAMES[name]: value for name, value in prediction.items()
               if name in SIGNATURE_NAMES}
    if "detection_attributes" not in outputs:
        outputs["detection_attributes"] = np.zeros([len(outputs["detection_scores"]), 0],
                                                   np.float32)
    return outputs


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


def encode_masks(detections: Dict[str, Any], threshold: float = MASK_THRESHOLD
                 ) -> Tuple[Dict[str, Any], int]:
    """Selected detections -> (the detections whose pasted mask is not empty, with their
    masks as COCO RLE and the mask scores; the number dropped for an empty mask).

    Needs ``boxes`` float[K, 4] [xmin, ymin, xmax, ymax] pixels, ``mask_probabilities``
    float[K, M, M] and ``image_size`` (H, W); every other per-detection array is kept for
    the detections kept. Adds ``segmentation`` (list of RLE dicts) and float32[K'] arrays
    ``mask_mean_score``, ``mask_area_fraction`` (grid), ``mask_pixel_mean_score`` and
    int64[K'] ``area`` (pixels); drops ``mask_probabilities``.
    """
    height, width = (int(v) for v in detections["image_size"])
    encoded = encode_masks_with_scores(detections["mask_probabilities"], detections["boxes"],
                                       height, width, threshold)
    kept = np.array([index for index, item in enumerate(encoded) if item.area > 0], np.int64)
    output = {name: np.asarray(values)[kept] for name, values in detections.items()
              if name not in MASK_KEYS}
    output["boxes"] = np.asarray(detections["boxes"])[kept]
    output["image_size"] = (height, width)
    output["segmentation"] = [encoded[index].rle for index in kept]
    for name, field in (("mask_mean_score", "mean_score"), ("mask_area_fraction", "area_fraction"),
                        ("mask_pixel_mean_score", "pixel_mean_score")):
        output[name] = np.array([getattr(encoded[i], field) for i in kept], np.float32)
    output["area"] = np.array([encoded[i].area for i in kept], np.int64)
    return output, len(encoded) - len(kept)


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
    """(key, detections with RLE masks, as ``encode_masks`` returns them) -> one output
    object per detection.

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
            "area": int(detections["area"][index]),
            "mask_pixel_mean_score": round(float(detections["mask_pixel_mean_score"][index]), 6),
            **_attribute_fields(detections["attribute_probabilities"][index],
                                attribute_threshold, attributes),
        }


def json_line(item: Dict[str, Any]) -> str:
    """An output object as its line (no newline): compact separators, keys in order."""
    return json.dumps(item, separators=(",", ":"))


def image_objects(key: ImageKey, outputs: Dict[str, np.ndarray], min_score: float,
                  attribute_threshold: float, attributes: AttributeOutput = FULL,
                  mask_threshold: float = MASK_THRESHOLD) -> Tuple[List[Dict[str, Any]], int]:
    """The whole per-image step: one image's signature outputs -> (its output objects, the
    number of detections dropped for an empty mask). ``beam_pipelines.predict`` runs the
    same three steps as three DoFns (for their counters)."""
    encoded, empty = encode_masks(select_detections(outputs, min_score), mask_threshold)
    return list(detection_objects(key, encoded, attribute_threshold, attributes)), empty
