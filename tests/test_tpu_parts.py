"""tpu.train's parts without training: schedule, evaluation on ground truth, model_dir files."""
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from model.dataset.record_files import labels_file_for
from model.synthetic.generate import SyntheticConfig, generate_split
from model.evaluation.matched_attribute_f1 import set_f1
from tpu import evaluation
from tpu.schedule import learning_rate_at


@pytest.mark.parametrize("step, expected", [
    (0, 0.01), (50, 0.055), (100, 0.1), (599, 0.1), (600, 0.01), (799, 0.01), (800, 0.001),
    (10_000, 0.001)])
def test_warmup_then_step_decay(step, expected):
    value = float(learning_rate_at(step, 0.1, 100, 0.01, (600, 800), 0.1))
    assert value == pytest.approx(expected, rel=1e-5)


def test_no_warmup_is_the_decayed_rate():
    assert float(learning_rate_at(0, 0.1, 0, 0.0, (5,), 0.5)) == pytest.approx(0.1)
    assert float(learning_rate_at(5, 0.1, 0, 0.0, (5,), 0.5)) == pytest.approx(0.05)


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_gt")
    path = generate_split(str(root), "val", 6, SyntheticConfig(image_size=96, seed=3,
                                                               max_objects=3))
    with open(path) as stream:
        return path, json.load(stream)


def _as_results(dataset, attribute_ids=True):
    images = {image["id"]: image for image in dataset["images"]}
    results = []
    for annotation in dataset["annotations"]:
        image = images[annotation["image_id"]]
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, image["height"],
                                                          image["width"]))
        elif isinstance(segmentation["counts"], list):
            rle = mask_utils.frPyObjects(segmentation, image["height"], image["width"])
        else:
            rle = dict(segmentation)
        if isinstance(rle["counts"], bytes):
            rle["counts"] = rle["counts"].decode("ascii")
        result = {"image_id": annotation["image_id"], "category_id": annotation["category_id"],
                  "bbox": list(mask_utils.toBbox(rle)), "score": 0.9, "segmentation": rle}
        if attribute_ids:
            result["attribute_ids"] = list(annotation.get("attribute_ids", []))
        results.append(result)
    return results


def test_ground_truth_as_predictions_scores_one(ground_truth):
    path, dataset = ground_truth
    image_ids = [image["id"] for image in dataset["images"]]
    metrics = evaluation.evaluate(_as_results(dataset), image_ids, path)
    assert metrics["segm"]["AP"] == pytest.approx(1.0)
    assert metrics["bbox"]["AP"] == pytest.approx(1.0)
    assert metrics["attribute_f1"] == pytest.approx(1.0)
    assert metrics["segm"]["AP_IoU_F1"] == pytest.approx(1.0)
    assert metrics["num_images"] == 6


def test_wrong_attributes_and_missing_detections_lower_the_numbers(ground_truth):
    path, dataset = ground_truth
    results = _as_results(dataset)
    for result in results:
        result["attribute_ids"] = result["attribute_ids"][:1]  # keep one of each set
    half = results[::2]
    metrics = evaluation.evaluate(half, [image["id"] for image in dataset["images"]], path)
    assert metrics["segm"]["AR100"] < 1.0
    expected = np.mean([set_f1(set(a.get("attribute_ids", [])),
                                       set(a.get("attribute_ids", [])[:1]))
                        for a in dataset["annotations"][::2] if not a.get("iscrowd", 0)])
    assert metrics["attribute_f1"] == pytest.approx(expected)


def test_unknown_image_ids_are_an_error(ground_truth):
    path, _ = ground_truth
    with pytest.raises(ValueError, match="not in"):
        evaluation.evaluate([], [123456789], path)


def test_labels_file_is_found_next_to_the_shards(tmp_path):
    for name in ("train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
                 "train-labels.json"):
        (tmp_path / name).write_text("x")
    assert labels_file_for(str(tmp_path / "train-*.tfrecord")) == str(tmp_path / "train-labels.json")
    assert labels_file_for(str(tmp_path / "other-*.tfrecord")) is None


def test_model_dir_keeps_one_label_map(tmp_path):
    from model.config import load_config
    from model.label_map import Attribute, Category, LabelMap
    from tpu.model_dir import ModelDirError, copy_label_map, write_label_map
    config = load_config("tiny")  # 7 classes with background, 82 attribute slots
    categories = tuple(Category(i, f"c{i}") for i in range(6))
    label_map = LabelMap(categories, (Attribute(81, "a81"),))
    other = LabelMap(categories[:5] + (Category(9, "c9"),), (Attribute(81, "a81"),))
    source = tmp_path / "train-labels.json"
    source.write_text(label_map.dumps())
    model_dir = str(tmp_path / "model")
    assert copy_label_map(str(source), model_dir, config) == label_map
    assert (tmp_path / "model" / "labels.json").read_text() == label_map.dumps()
    assert copy_label_map(str(source), model_dir, config) == label_map  # the same: accepted
    write_label_map(label_map, model_dir, "--label_map")
    source.write_text(other.dumps())
    with pytest.raises(ModelDirError, match="these records have another label map"):
        copy_label_map(str(source), model_dir, config)
    with pytest.raises(ModelDirError, match="trained with another label map"):
        write_label_map(other, model_dir, "--label_map")
    fresh = str(tmp_path / "fresh")
    write_label_map(other, fresh, "--label_map")
    assert LabelMap.loads((tmp_path / "fresh" / "labels.json").read_text()) == other
