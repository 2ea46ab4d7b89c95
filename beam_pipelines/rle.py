"""Beam: model masks -> COCO RLE in a pipeline (``EncodeMasksRle``).

The encoding itself is ``model.masks.rle`` (no Beam there).
"""
import time
from typing import Any, Dict, Iterable, Mapping, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from model.masks.rle import encode_masks_with_scores

NAMESPACE = "rle"
MASK_KEYS = ("boxes", "mask_probabilities", "image_size")


class EncodeMasksRle(beam.DoFn):
    """(key, detections) -> (key, detections with COCO RLE masks); empty masks dropped.

    ``detections`` maps names to per-detection arrays with a leading K axis,
    plus ``image_size`` (H, W). Required: ``boxes`` float[K, 4] [xmin, ymin,
    xmax, ymax] pixels and ``mask_probabilities`` float[K, M, M]. Every other
    per-detection array is kept for the detections whose mask is not empty.
    Adds ``segmentation`` (list of RLE dicts), ``mask_mean_score`` and
    ``mask_area_fraction`` (float[K']); drops ``mask_probabilities``.
    Counters (namespace ``rle``): masks_encoded, masks_empty, and encode_micros,
    the wall time spent encoding (to weigh it against the rest of a job).
    """

    def __init__(self, threshold: float = 0.5):
        self._threshold = threshold
        self._encoded = Metrics.counter(NAMESPACE, "masks_encoded")
        self._empty = Metrics.counter(NAMESPACE, "masks_empty")
        self._micros = Metrics.counter(NAMESPACE, "encode_micros")

    def process(self, element: Tuple[Any, Mapping[str, Any]]) -> Iterable[Tuple[Any, Dict[str, Any]]]:
        key, detections = element
        started = time.perf_counter()
        height, width = (int(v) for v in detections["image_size"])
        encoded = encode_masks_with_scores(detections["mask_probabilities"], detections["boxes"],
                                           height, width, self._threshold)
        kept = np.array([index for index, item in enumerate(encoded) if item.area > 0], np.int64)
        self._encoded.inc(len(kept))
        self._empty.inc(len(encoded) - len(kept))
        output = {name: np.asarray(values)[kept] for name, values in detections.items()
                  if name not in MASK_KEYS}
        output["boxes"] = np.asarray(detections["boxes"])[kept]
        output["image_size"] = (height, width)
        output["segmentation"] = [encoded[index].rle for index in kept]
        output["mask_mean_score"] = np.array([encoded[i].mean_score for i in kept], np.float32)
        output["mask_area_fraction"] = np.array([encoded[i].area_fraction for i in kept], np.float32)
        self._micros.inc(int((time.perf_counter() - started) * 1e6))
        yield key, output
