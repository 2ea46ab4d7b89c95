"""Beam: model outputs -> detections -> JSON Lines (``ToDetections``, ``to_json_lines``).

The detection selection, the output objects and ``--attributes`` are
``model.detection_lines`` (no Beam there; ``tpu.train --mode predict`` writes the
same lines through it).

Counters (namespace ``predict``): images_predicted, images_failed(.inference_failed),
detections_written.
"""
from typing import Any, Dict, Iterable, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import dead_letters
from beam_pipelines.inference_handlers import InferenceFailed, outputs_of
from beam_pipelines.predict_inputs import COUNTERS, ImageKey
from model.dataset.rejections import Rejected
from model.detection_lines import (FULL, AttributeOutput, detection_objects, json_line,
                                   select_detections)
from model.label_map import LabelMap

# model.export's label map asset (model.dataset.record_files.LABELS_FILE; that module
# imports TensorFlow, which workers of this module do not otherwise need).
LABEL_MAP_ASSET = ("assets", "labels.json")


def defined_attribute_ids(model: str) -> Optional[Tuple[int, ...]]:
    """The attribute ids of the label map the SavedModel carries (``assets/labels.json``),
    or None when it carries none."""
    path = FileSystems.join(model, *LABEL_MAP_ASSET)
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path, compression_type="uncompressed") as stream:
        label_map = LabelMap.loads(stream.read().decode("utf-8"))
    return tuple(attribute.id for attribute in label_map.attributes)


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


def to_json_lines(element: Tuple[ImageKey, Dict[str, Any]], attribute_threshold: float,
                  attributes: AttributeOutput = FULL) -> Iterable[str]:
    lines = [json_line(item)
             for item in detection_objects(*element, attribute_threshold, attributes)]
    COUNTERS.inc("detections_written", len(lines))
    return lines
