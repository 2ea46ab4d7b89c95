"""Test helpers for beam_pipelines.predict: one tiny SavedModel per session, runs, checks."""
import glob
import gzip
import json
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from pycocotools import mask as coco_mask

from beam_pipelines import predict
from model.export import main as export_main

NUM_ATTRIBUTES = 82  # the tiny preset's attribute slots
_EXPORTED: Dict[str, str] = {}


TINY_MODEL_SEED = 1


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A random-weight ``tiny`` export keeping every detection (score threshold 0);
    exported once per test session and shared by the modules that use it. The weights are
    drawn from a fixed seed, so every session predicts the same detections (unseeded, a
    draw now and then gives masks that are all empty)."""
    if "tiny" not in _EXPORTED:
        output = str(tmp_path_factory.getbasetemp() / "predict_tiny_model")
        tf.keras.utils.set_random_seed(TINY_MODEL_SEED)
        export_main(["--config", "tiny", "--output", output,
                     "--override", "model.postprocess.score_threshold=0.0"])
        _EXPORTED["tiny"] = output
    return _EXPORTED["tiny"]


def run_predict(*args: str) -> Dict[str, int]:
    return predict.run(list(args))


def read_lines(pattern: str) -> List[Dict]:
    rows = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as stream:
            rows += [json.loads(line) for line in stream if line.strip()]
    return rows


def read_detections(prefix: str, suffix: str = ".jsonl") -> List[Dict]:
    """The detection shards ``PREFIX-SSSSS-of-NNNNN<suffix>``; ``.gz`` ones through gzip."""
    shards = [p for p in glob.glob(prefix + "-?????-of-?????" + suffix) if "-errors-" not in p]
    assert shards, f"no detection shards at {prefix}"
    rows = []
    for path in sorted(shards):
        with (gzip.open(path, "rt") if suffix.endswith(".gz") else open(path)) as stream:
            rows += [json.loads(line) for line in stream if line.strip()]
    return rows


def read_errors(prefix: str) -> List[Dict]:
    return read_lines(prefix + "-errors.jsonl")


def image_sizes(image_dir: str) -> Dict[str, Tuple[int, int]]:
    """{file name: (height, width)} of the images directly in ``image_dir``."""
    sizes = {}
    for name in sorted(os.listdir(image_dir)):
        if os.path.isdir(os.path.join(image_dir, name)):
            continue
        with Image.open(os.path.join(image_dir, name)) as image:
            sizes[name] = image.size[::-1]
    return sizes


def check_detections(rows: Sequence[Dict], sizes: Dict[str, Tuple[int, int]],
                     num_attributes: int = NUM_ATTRIBUTES, attribute_threshold: float = 0.5) -> None:
    """Every row has the output schema, a decodable RLE of the image's size, a box inside it."""
    keys = {"image_id", "filename", "id", "category_id", "bbox", "score", "segmentation",
            "mask_mean_score", "mask_area_fraction", "area", "mask_pixel_mean_score",
            "attribute_probabilities", "attribute_ids"}
    assert len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        assert set(row) == keys
        height, width = sizes[row["filename"]]
        segmentation = row["segmentation"]
        assert segmentation["size"] == [height, width] and isinstance(segmentation["counts"], str)
        mask = coco_mask.decode({"size": segmentation["size"],
                                 "counts": segmentation["counts"].encode()})
        assert mask.shape == (height, width) and mask.any()
        x, y, w, h = row["bbox"]
        assert 0 <= x and 0 <= y and w >= 0 and h >= 0
        assert x + w <= width and y + h <= height
        rows_on, cols_on = np.nonzero(mask)  # the mask lies within its box
        assert cols_on.min() + 0.5 >= x and cols_on.max() + 0.5 < x + w
        assert rows_on.min() + 0.5 >= y and rows_on.max() + 0.5 < y + h
        # Grid scores (cells > 0.5 of the 28 x 28 grid) and pixel scores of the pasted mask.
        assert 0.5 < row["mask_mean_score"] <= 1 and 0 < row["mask_area_fraction"] <= 1
        cells = row["mask_area_fraction"] * 784
        assert cells == pytest.approx(round(cells), abs=1e-3)
        assert row["area"] == int(mask.sum()) and 0.5 < row["mask_pixel_mean_score"] <= 1
        probabilities = row["attribute_probabilities"]
        assert len(probabilities) == num_attributes
        chosen = set(row["attribute_ids"])
        assert row["attribute_ids"] == sorted(chosen)
        for index, probability in enumerate(probabilities):  # probabilities carry 4 decimals
            if index in chosen:
                assert probability >= attribute_threshold - 5e-5
            else:
                assert probability <= attribute_threshold + 5e-5
        assert row["id"] // 1024 == row["image_id"]


def coco_ground_truth(sizes: Dict[str, Tuple[int, int]], image_ids: Dict[str, int],
                      category_ids: Sequence[int]):
    """A pycocotools COCO holding just the images and categories (no annotations)."""
    from pycocotools.coco import COCO
    coco = COCO()
    coco.dataset = {
        "images": [{"id": image_ids[name], "file_name": name, "height": h, "width": w}
                   for name, (h, w) in sizes.items()],
        "categories": [{"id": c, "name": str(c)} for c in category_ids],
        "annotations": [],
    }
    coco.createIndex()
    return coco
