"""Beam: model masks -> COCO RLE in a pipeline (``EncodeMasksRle``).

The step itself is ``model.detection_lines.encode_masks`` (no Beam there; the
encoding is ``model.masks.rle``).
"""
import time
from typing import Any, Dict, Iterable, Mapping, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from model.detection_lines import encode_masks

NAMESPACE = "rle"


class EncodeMasksRle(beam.DoFn):
    """(key, detections) -> (key, detections with COCO RLE masks); empty masks dropped.

    ``detections`` as ``model.detection_lines.encode_masks`` takes them (``boxes``,
    ``mask_probabilities``, ``image_size`` and any per-detection arrays); the output is
    what it returns: ``segmentation``, the grid scores ``mask_mean_score`` and
    ``mask_area_fraction``, the pixel ones ``area`` and ``mask_pixel_mean_score``.
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
        output, empty = encode_masks(dict(detections), self._threshold)
        self._encoded.inc(len(output["segmentation"]))
        self._empty.inc(empty)
        self._micros.inc(int((time.perf_counter() - started) * 1e6))
        yield key, output
