"""Records of the fork's create_coco_tf_record.py (tests/fixtures/fork_records, made outside this
package by benchmarks/fork_records.py) train and evaluate here through --label_map: their labels
are the JSON's category ids (0..5, with 0 a category), mapped to model classes; without a label
map the trainer refuses them with one line."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from model.data.parser import EVAL, Parser, ParserSettings
from model.label_map import LabelMap
from model.record_schema import CLASS_LABEL
from tests.record_reading import read_label_map, run_make_records
from tpu import record_errors, train

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "fork_records")
PATTERN = os.path.join(FIXTURE, "train-*.tfrecord")
JSON = os.path.join(FIXTURE, "train.json")
SHORT = ["train.batch_size=2", "train.total_steps=3", "train.warmup_steps=0",
         "train.decay_steps=[]"]


def _overrides(items):
    return [flag for item in items for flag in ("--override", item)]


def _run(*argv):
    train.main([str(arg) for arg in argv])


def _one_line_error(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        _run(*argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1, error
    return error[0]


def _label_map() -> LabelMap:
    with open(JSON) as stream:
        return LabelMap.loads(stream.read())


def _write_json(path, document) -> str:
    with open(path, "w") as stream:
        json.dump(document, stream)
    return str(path)


@pytest.fixture(scope="module")
def make_records_prefix(tmp_path_factory):
    """make_records' records of the same JSON and images, with their PREFIX-labels.json."""
    prefix = str(tmp_path_factory.mktemp("make_records") / "train")
    run_make_records("--image_dir", os.path.join(FIXTURE, "images"), "--object_annotations_file",
                     JSON, "--output_file_prefix", prefix, "--num_shards", "1")
    return prefix


def test_the_fixture_holds_category_ids_including_0_and_no_label_map():
    labels = set()
    for serialized in tf.data.TFRecordDataset(sorted(glob.glob(PATTERN))):
        example = tf.train.Example.FromString(serialized.numpy())
        labels |= set(example.features.feature[CLASS_LABEL].int64_list.value)
    assert labels == {c.id for c in _label_map().categories} == {0, 1, 2, 3, 4, 5}
    assert not glob.glob(os.path.join(FIXTURE, "*labels*.json"))


def _parsed_by_source_id(files, settings):
    parser = Parser(settings, EVAL)
    parsed = {}
    for serialized in tf.data.TFRecordDataset(sorted(files)):
        _, labels = parser(serialized)
        count = int(labels["num_instances"])
        parsed[int(labels["source_id"])] = {
            key: labels[key][:count].numpy()
            for key in ("gt_classes", "gt_boxes", "gt_attributes", "gt_masks", "gt_is_crowd")}
    return parsed


def test_parsed_through_the_label_map_they_equal_make_records_records(make_records_prefix):
    label_map = _label_map()
    assert read_label_map(make_records_prefix) == label_map
    settings = ParserSettings(output_size=(128, 128), num_attributes=label_map.num_attributes,
                              max_num_instances=8, mask_crop_size=28)
    ours = _parsed_by_source_id(glob.glob(make_records_prefix + "-*.tfrecord"), settings)
    theirs = _parsed_by_source_id(
        glob.glob(PATTERN),
        ParserSettings(**{**settings.__dict__,
                          "category_ids": tuple(c.id for c in label_map.categories)}))
    assert sorted(theirs) == sorted(ours) and len(ours) == 8
    for source_id, expected in ours.items():
        got = theirs[source_id]
        np.testing.assert_array_equal(got["gt_classes"], expected["gt_classes"])
        assert got["gt_classes"].min() >= 1
        np.testing.assert_array_equal(got["gt_attributes"], expected["gt_attributes"])
        np.testing.assert_array_equal(got["gt_is_crowd"], expected["gt_is_crowd"])
        np.testing.assert_allclose(got["gt_boxes"], expected["gt_boxes"], atol=0.05)
        np.testing.assert_array_equal(got["gt_masks"], expected["gt_masks"])
    # Read as model classes, as the trainer did before --label_map, category 0 is background.
    naive = _parsed_by_source_id(glob.glob(PATTERN), settings)
    assert any((naive[key]["gt_classes"] == 0).any() for key in naive)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("fork_model"))
    _run("--mode", "train", "--config", "tiny", "--model_dir", model_dir,
         "--train_file_pattern", PATTERN, "--label_map", JSON, *_overrides(SHORT))
    return model_dir


def test_train_with_label_map_then_eval(trained):
    assert tf.train.latest_checkpoint(trained).endswith("model.ckpt-3")
    with open(os.path.join(trained, "labels.json")) as stream:
        saved = json.load(stream)
    assert LabelMap.loads(json.dumps(saved)) == _label_map()
    assert [(c["id"], c["class"]) for c in saved["categories"]] == [(i, i + 1) for i in range(6)]
    _run("--mode", "eval", "--config", "tiny", "--model_dir", trained,
         "--eval_file_pattern", PATTERN, "--eval_annotations_file", JSON, *_overrides(SHORT))
    with open(os.path.join(trained, "eval", "metrics-3.json")) as stream:
        metrics = json.load(stream)
    assert metrics["step"] == 3 and metrics["num_images"] == 8
    assert set(metrics["segm"]["per_category"]) == {str(i) for i in range(6)}


def test_without_a_label_map_the_run_is_refused_with_one_line(tmp_path, capsys):
    model_dir = tmp_path / "model"
    line = _one_line_error(capsys, "--mode", "train", "--config", "tiny", "--model_dir",
                           model_dir, "--train_file_pattern", PATTERN, *_overrides(SHORT))
    assert line == (
        f"python -m tpu.train: error: --train_file_pattern {PATTERN}: no PREFIX-labels.json "
        "beside these records, so their image/object/class/label may be dataset category ids "
        "(as create_coco_tf_record.py writes them): pass --label_map JSON with the dataset's "
        "categories, or --label_format model_class if they hold model classes 1..6")
    assert not model_dir.exists()


def test_a_category_id_outside_the_label_map_ends_training_with_one_line(tmp_path, capsys):
    document = json.load(open(JSON))
    document["categories"] = [c for c in document["categories"] if c["id"] != 5] + [
        {"id": 9, "name": "other"}]
    label_map = _write_json(tmp_path / "other.json", document)
    line = _one_line_error(capsys, "--mode", "train", "--config", "tiny", "--model_dir",
                           tmp_path / "model", "--train_file_pattern", PATTERN,
                           "--label_map", label_map, *_overrides(SHORT))
    assert line.startswith(f"python -m tpu.train: error: --train_file_pattern {PATTERN}: "
                           "record with image/source_id ")
    assert line.endswith(" has category ids 5: category ids not in the label map")


def test_attribute_rows_of_another_width_fail_decoding_with_one_line():
    settings = ParserSettings(output_size=(128, 128), num_attributes=101,
                              category_ids=tuple(range(6)))
    parser = Parser(settings, EVAL)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        for serialized in tf.data.TFRecordDataset(sorted(glob.glob(PATTERN))).map(parser):
            pass
    line = record_errors.one_line(error.value, "--train_file_pattern", PATTERN)
    assert line.startswith(f"--train_file_pattern {PATTERN}: record with image/source_id ")
    assert "attribute bytes for" in line and "not objects x 101" in line
    assert line.endswith(": attribute rows do not match the objects")


def test_dry_run_plan_names_the_mapping(tmp_path, capsys):
    _run("--mode", "train", "--config", "tiny", "--model_dir", tmp_path / "model", "--dry_run",
         "--train_file_pattern", PATTERN, "--label_map", JSON)
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"labels: dataset category ids -> model classes 1..6 through --label_map {JSON}")
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("case", ["category_id without label map", "category_id on make_records",
                                  "label map differs from the records'", "class count",
                                  "not a label map", "missing"])
def test_bad_label_flags_fail_fast_with_one_line(tmp_path, capsys, make_records_prefix, case):
    ours = make_records_prefix + "-*.tfrecord"
    other = json.load(open(JSON))
    other["categories"][0]["name"] = "renamed"
    fewer = {"categories": json.load(open(JSON))["categories"][:4]}
    argv, message = {
        "category_id without label map": (
            ["--train_file_pattern", PATTERN, "--label_format", "category_id"],
            "--label_format category_id needs --label_map JSON"),
        "category_id on make_records": (
            ["--train_file_pattern", ours, "--label_format", "category_id", "--label_map", JSON],
            f"--label_format category_id, but {make_records_prefix}-labels.json is beside"),
        "label map differs from the records'": (
            ["--train_file_pattern", ours, "--label_map",
             _write_json(tmp_path / "renamed.json", other)],
            f"differs from {make_records_prefix}-labels.json, the label map of these records"),
        "class count": (
            ["--train_file_pattern", PATTERN, "--label_map",
             _write_json(tmp_path / "fewer.json", fewer)],
            "has 5 classes with background; the model config has model.num_classes=7"),
        "not a label map": (
            ["--train_file_pattern", PATTERN, "--label_map",
             _write_json(tmp_path / "list.json", {"images": []})],
            "has no 'categories' list"),
        "missing": (
            ["--train_file_pattern", PATTERN, "--label_map", tmp_path / "nothing.json"],
            "nothing.json does not exist"),
    }[case]
    line = _one_line_error(capsys, "--mode", "train", "--config", "tiny", "--model_dir",
                           tmp_path / "model", *argv)
    assert message in line
    assert not (tmp_path / "model").exists()
