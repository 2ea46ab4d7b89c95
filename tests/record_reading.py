"""Test helpers: run make_records and read back what it wrote."""
import glob
import json
from typing import Dict, List

import numpy as np
import tensorflow as tf

from beam_pipelines import make_records
from model.label_map import LabelMap
from model.record_schema import RecordDecoder


def run_make_records(*args: str) -> Dict[str, int]:
    return make_records.run(list(args))


def read_label_map(prefix: str) -> LabelMap:
    with open(prefix + "-labels.json") as stream:
        return LabelMap.loads(stream.read())


def read_records(prefix: str, num_attributes: int, include_masks: bool = True) -> List[Dict]:
    """Every record under ``prefix`` decoded to numpy by the schema module's decoder."""
    files = sorted(glob.glob(prefix + "-?????-of-?????.tfrecord"))
    assert files, f"no records at {prefix}"
    decoder = RecordDecoder(num_attributes, include_masks=include_masks)
    records = []
    for serialized in tf.data.TFRecordDataset(files):
        decoded = decoder.decode(serialized)
        records.append({key: value.numpy() for key, value in decoded.items()})
    return records


def read_errors(prefix: str) -> List[Dict]:
    rows = []
    for path in sorted(glob.glob(prefix + "-errors.jsonl")):
        with open(path) as stream:
            rows += [json.loads(line) for line in stream if line.strip()]
    return rows


def as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def sorted_by_id(annotations):
    return sorted(annotations, key=lambda a: a["id"])


def boxes_xywh(record: Dict) -> np.ndarray:
    """The record's normalised [ymin, xmin, ymax, xmax] boxes as COCO [x, y, w, h] pixels."""
    boxes = record["groundtruth_boxes"].astype(np.float64)
    height, width = float(record["height"]), float(record["width"])
    return np.stack([boxes[:, 1] * width, boxes[:, 0] * height,
                     (boxes[:, 3] - boxes[:, 1]) * width, (boxes[:, 2] - boxes[:, 0]) * height], axis=-1)
