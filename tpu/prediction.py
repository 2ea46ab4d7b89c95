"""``--mode predict``: detections for a records glob, as the JSON Lines of ``beam_pipelines.predict``.

The estimator predicts in dataset space (``tpu.model_fn``, ``model.outputs``) on a TPU
or the CPU; on the host each image's predictions go through ``model.detection_lines``
(selection, RLE, output objects), the code predict's DoFns run, so a line here is a
line there. Strings do not cross the TPU: ``image_id`` and ``filename`` are read on the
host from the same records in the same order (``tpu.input_fn.prediction_records``), with
predict's rule (``model.dataset.image_ids.record_image_id``), and checked against the
``source_id`` the model passed through.

Output: ``PREFIX-00000-of-00001.jsonl``, written through tf.io.gfile (local or gs://) as
``PREFIX-00000-of-00001.jsonl.partial`` and renamed when every image is done. A prefix
holding such files already is refused unless ``overwrite``.
"""
import os
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from model import detection_lines, record_schema
from model.dataset.image_ids import (NON_DECIMAL_SOURCE_ID, record_image_id,
                                     source_id_to_image_id)
from tpu.input_fn import PADDING_SOURCE_ID, prediction_records

SHARD = "-00000-of-00001.jsonl"
PARTIAL = ".partial"
_OWNED = "-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].jsonl*"


def shard_path(prefix: str) -> str:
    return prefix + SHARD


def earlier_outputs(prefix: str) -> List[str]:
    """Detection shards (any total, compressed or partial) already under ``prefix``."""
    return sorted(tf.io.gfile.glob(prefix + _OWNED))


def record_keys(file_pattern: str, num_images: int = 0) -> Iterator[Tuple[int, str, int]]:
    """(image_id as predict gives it, filename, the parser's source_id) of every record
    prediction reads, in its order (eager tf.data: read them before estimator.predict
    starts, whose generator holds a finalized graph as default)."""
    features = {record_schema.FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
                record_schema.SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value="")}

    def parse(record):
        item = tf.io.parse_single_example(record, features)
        source_id = item[record_schema.SOURCE_ID]
        return item[record_schema.FILENAME], source_id, source_id_to_image_id(source_id)

    for filename, source_id, parser_id in prediction_records(
            file_pattern, num_images).map(parse).as_numpy_iterator():
        filename = filename.decode("utf-8", "replace")
        yield record_image_id(source_id.decode("utf-8", "replace"), filename), filename, int(parser_id)


def keyed_images(predictions: Iterable[Dict[str, np.ndarray]],
                 keys: Iterable[Tuple[int, str, int]]
                 ) -> Iterator[Tuple[detection_lines.ImageKey, Dict[str, np.ndarray]]]:
    """Per-image estimator predictions (padding dropped) paired with their records' keys;
    RuntimeError when the two disagree on an id or on the number of images."""
    keys = iter(keys)
    for image in predictions:
        source_id = int(image["source_id"])
        if source_id == PADDING_SOURCE_ID:
            continue
        key = next(keys, None)
        if key is None:
            raise RuntimeError("the estimator predicted more images than the records hold")
        image_id, filename, parser_id = key
        if parser_id != source_id or (parser_id != NON_DECIMAL_SOURCE_ID and parser_id != image_id):
            raise RuntimeError(f"prediction of source_id {source_id} met record {filename!r} "
                               f"(source_id {parser_id}): predictions and records out of step")
        yield (image_id, filename), image
    if next(keys, None) is not None:
        raise RuntimeError("the estimator predicted fewer images than the records hold")


def write_predictions(predictions: Iterable[Dict[str, np.ndarray]],
                      keys: Iterable[Tuple[int, str, int]], prefix: str, min_score: float,
                      attribute_threshold: float,
                      attributes: detection_lines.AttributeOutput = detection_lines.FULL
                      ) -> Dict[str, int]:
    """Writes the detection lines of every predicted image; returns the counts."""
    counts = {"images_predicted": 0, "detections_written": 0, "masks_empty": 0}
    final = shard_path(prefix)
    partial = final + PARTIAL
    parent = os.path.dirname(final)
    if parent:
        tf.io.gfile.makedirs(parent)
    with tf.io.gfile.GFile(partial, "w") as stream:
        for key, image in keyed_images(predictions, keys):
            objects, empty = detection_lines.image_objects(
                key, detection_lines.signature_outputs(image), min_score, attribute_threshold,
                attributes)
            lines = [detection_lines.json_line(item) for item in objects]
            if lines:
                stream.write("\n".join(lines) + "\n")
            counts["images_predicted"] += 1
            counts["detections_written"] += len(lines)
            counts["masks_empty"] += empty
    tf.io.gfile.rename(partial, final, overwrite=True)
    return counts


def remove(paths: Sequence[str]) -> None:
    for path in paths:
        tf.io.gfile.remove(path)
