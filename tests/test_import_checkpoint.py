"""python -m model.import_checkpoint on a checkpoint of the reference code (rebuilt from the
fp_r50fpn fixture): SavedModel and model_dir out, predict from both, fine-tuning with
tpu.train --init_checkpoint, and one line with exit status 2 for each kind of bad input."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from beam_pipelines import predict
from model import import_checkpoint
from model.checkpoint_import import checkpoint_io
from model.synthetic.generate import SyntheticConfig, generate_split
from tests import reference_fixtures as fixtures
from tests.prediction_helpers import read_detections
from tests.record_reading import run_make_records
from tests.test_reference_equivalence import spread_label_map
from tpu import train

ARCHITECTURE = "fp_r50fpn"
pytestmark = pytest.mark.skipif(ARCHITECTURE not in fixtures.architectures(),
                                reason="the fp_r50fpn reference fixture is missing")


@pytest.fixture(scope="module")
def reference_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    prefix = fixtures.write_reference_checkpoint(ARCHITECTURE, str(root / "model.ckpt-16875"))
    taxonomy = str(root / "taxonomy.json")
    spread_label_map(taxonomy, 294)
    return {"root": root, "prefix": prefix, "config": fixtures.config_path(ARCHITECTURE),
            "taxonomy": taxonomy}


@pytest.fixture(scope="module")
def imported(reference_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("imported")
    saved_model, model_dir = str(root / "saved_model"), str(root / "model_dir")
    import_checkpoint.main(["--checkpoint", reference_checkpoint["prefix"],
                            "--config", reference_checkpoint["config"], "--output", saved_model,
                            "--image_size", "256", "--label_map", reference_checkpoint["taxonomy"],
                            "--model_dir", model_dir])
    return {"saved_model": saved_model, "model_dir": model_dir}


def _photos(directory, count=2):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(5)
    for index in range(count):
        pixels = rng.integers(0, 256, [200 + 40 * index, 300, 3], dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(directory, f"photo{index}.jpg"))
    return directory


def test_the_saved_model_and_model_dir_serve_the_same_detections(imported, reference_checkpoint,
                                                                  tmp_path, capsys):
    with open(os.path.join(imported["saved_model"], "assets", "labels.json")) as stream:
        labels = json.load(stream)
    with open(reference_checkpoint["taxonomy"]) as stream:
        taxonomy = json.load(stream)
    assert [a["id"] for a in labels["attributes"]] == [a["id"] for a in taxonomy["attributes"]]
    assert labels["num_classes"] == 47
    images = _photos(str(tmp_path / "photos"))
    predict.run(["--model", imported["saved_model"], "--images", images,
                 "--output", str(tmp_path / "a" / "pred"), "--num_shards", "1"])
    # The model_dir checkpoint goes the package's own way: predict exports it on the launcher.
    predict.run(["--checkpoint", os.path.join(imported["model_dir"], "model.ckpt-0"),
                 "--config", os.path.join(imported["model_dir"], "config.yaml"),
                 "--image_size", "256", "--images", images,
                 "--output", str(tmp_path / "b" / "pred"), "--num_shards", "1"])
    first, second = read_detections(str(tmp_path / "a" / "pred")), \
        read_detections(str(tmp_path / "b" / "pred"))
    assert first, "the imported model detects something"
    key = lambda row: (row["filename"], row["category_id"], round(row["score"], 4))  # noqa: E731
    assert sorted(map(key, first)) == sorted(map(key, second))
    used = {i for row in first for i in row.get("attribute_ids", [])}
    assert used <= {a["id"] for a in taxonomy["attributes"]}


def test_predict_imports_the_reference_checkpoint_itself(reference_checkpoint, imported,
                                                          tmp_path):
    images = _photos(str(tmp_path / "photos"))
    predict.run(["--checkpoint", reference_checkpoint["prefix"],
                 "--config", reference_checkpoint["config"], "--image_size", "256",
                 "--label_map", reference_checkpoint["taxonomy"], "--images", images,
                 "--imported_model", str(tmp_path / "imported"),
                 "--output", str(tmp_path / "direct" / "pred"), "--num_shards", "1"])
    predict.run(["--model", imported["saved_model"], "--images", images,
                 "--output", str(tmp_path / "saved" / "pred"), "--num_shards", "1"])
    direct = read_detections(str(tmp_path / "direct" / "pred"))
    saved = read_detections(str(tmp_path / "saved" / "pred"))
    assert direct == saved


@pytest.fixture(scope="module")
def fashionpedia_sized_records(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    return {"pattern": _fashionpedia_sized_records(root), "json": str(root / "train.json")}


def _fashionpedia_sized_records(root):
    """Synthetic records whose label map is Fashionpedia's size: 46 categories, 341 slots."""
    json_path = generate_split(str(root), "train", 8,
                               SyntheticConfig(image_size=256, min_objects=1, max_objects=3, seed=4))
    with open(json_path) as stream:
        document = json.load(stream)
    document["categories"] = [{"id": i, "name": f"category {i}"} for i in range(46)]
    document["attributes"] = [{"id": i, "name": f"attribute {i}"} for i in range(341)]
    with open(json_path, "w") as stream:
        json.dump(document, stream)
    prefix = str(root / "records" / "train")
    run_make_records("--image_dir", str(root / "train"), "--object_annotations_file", json_path,
                     "--output_file_prefix", prefix, "--num_shards", "1")
    return prefix + "-*.tfrecord"


def _losses(model_dir):
    values = {}
    for path in glob.glob(os.path.join(model_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "train/total_loss":
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return [values[step] for step in sorted(values)]


def test_tpu_eval_reads_the_imported_model_dir(imported, fashionpedia_sized_records):
    train.main(["--mode", "eval", "--config", os.path.join(imported["model_dir"], "config.yaml"),
                "--model_dir", imported["model_dir"],
                "--eval_file_pattern", fashionpedia_sized_records["pattern"],
                "--eval_annotations_file", fashionpedia_sized_records["json"],
                "--override", "input.image_size=256", "--override", "eval.batch_size=2"])
    with open(os.path.join(imported["model_dir"], "eval", "metrics-0.json")) as stream:
        metrics = json.load(stream)
    assert metrics["step"] == 0 and metrics["num_images"] == 8
    assert 0.0 <= metrics["bbox"]["AP"] <= 1.0


def test_fine_tuning_from_the_imported_checkpoint_lowers_the_loss(reference_checkpoint, tmp_path,
                                                                   caplog,
                                                                   fashionpedia_sized_records):
    # The stand-in weights without the class-logit scales that make the equivalence fixture's
    # detections confident (they put logits in the thousands): a plausible starting point.
    prefix = fixtures.write_reference_checkpoint(
        ARCHITECTURE, str(tmp_path / "start" / "model.ckpt-1"),
        keep_scales=lambda pattern: "class-predict" not in pattern)
    imported_dir = str(tmp_path / "imported")
    import_checkpoint.main(["--checkpoint", prefix, "--config", reference_checkpoint["config"],
                            "--output", str(tmp_path / "saved_model"), "--image_size", "256",
                            "--label_map", reference_checkpoint["taxonomy"],
                            "--model_dir", imported_dir])
    imported = {"model_dir": imported_dir}
    pattern = fashionpedia_sized_records["pattern"]
    model_dir = str(tmp_path / "fine_tuned")
    steps = 21  # summaries at steps 0, 10 and 20
    train.main(["--mode", "train", "--config", os.path.join(imported["model_dir"], "config.yaml"),
                "--model_dir", model_dir, "--train_file_pattern", pattern,
                "--init_checkpoint", os.path.join(imported["model_dir"], "model.ckpt-0"),
                "--iterations_per_loop", "1",
                *[flag for item in ("train.batch_size=2", f"train.total_steps={steps}",
                                    "train.warmup_steps=2", "train.warmup_learning_rate=0.001",
                                    "train.learning_rate=0.004", "train.decay_steps=[100]",
                                    "input.image_size=256", "model.rpn.samples_per_image=64",
                                    "model.roi_sampler.samples_per_image=64",
                                    "model.mask_head.samples_per_image=16")
                  for flag in ("--override", item)]])
    assert ("variables restored, 0 skipped by --skip_variables_regex, 0 not in the checkpoint, "
            "0 with another shape") in caplog.text
    losses = _losses(model_dir)
    assert len(losses) == 3, losses
    print("fine-tuning total loss at steps 0, 10, 20:", losses)
    assert losses[2] < 0.8 * losses[0], f"total loss went {losses}"
    restored = tf.train.load_checkpoint(os.path.join(imported["model_dir"], "model.ckpt-0"))
    assert restored.get_tensor("global_step") == 0


def _refused(capsys, *argv):
    with pytest.raises(SystemExit) as raised:
        import_checkpoint.main([str(arg) for arg in argv])
    assert raised.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_a_checkpoint_of_another_model_is_refused(capsys, tmp_path, reference_checkpoint):
    other = checkpoint_io.write_checkpoint(str(tmp_path / "model.ckpt-1"), {
        "resnet50/conv2d/kernel": np.zeros([7, 7, 3, 64], np.float32),
        "retinanet/class_net/class-predict/kernel": np.zeros([3, 3, 256, 9], np.float32)})
    line = _refused(capsys, "--checkpoint", other, "--config", reference_checkpoint["config"],
                    "--output", tmp_path / "out")
    assert "is not an Attribute-Mask R-CNN checkpoint" in line
    line = _refused(capsys, "--checkpoint", tmp_path / "nothing", "--config",
                    reference_checkpoint["config"], "--output", tmp_path / "out")
    assert "not a readable TensorFlow checkpoint" in line


def test_a_yaml_that_does_not_match_the_shapes_is_refused(capsys, tmp_path, reference_checkpoint):
    with open(reference_checkpoint["config"]) as stream:
        text = stream.read()
    deeper = tmp_path / "r101.yaml"
    deeper.write_text(text.replace("resnet_depth: 50", "resnet_depth: 101"))
    line = _refused(capsys, "--checkpoint", reference_checkpoint["prefix"], "--config", deeper,
                    "--output", tmp_path / "out", "--label_map", reference_checkpoint["taxonomy"])
    assert "does not fit the model of --config" in line and "model variables without" in line
    wider = tmp_path / "classes.yaml"
    wider.write_text(text + "\narchitecture:\n  num_classes: 48\n"
                     if "architecture:" not in text else
                     text.replace("architecture:", "architecture:\n  num_classes: 48", 1))
    line = _refused(capsys, "--checkpoint", reference_checkpoint["prefix"], "--config", wider,
                    "--output", tmp_path / "out", "--label_map", reference_checkpoint["taxonomy"])
    assert "with other shapes" in line or "categories" in line


def test_a_missing_variable_is_named(capsys, tmp_path, reference_checkpoint):
    meta = fixtures.metadata(ARCHITECTURE)
    names = [name for name, _ in meta["variables"]]
    dropped = [name for name in names if name.endswith("mask_fcn_logits/bias")][0]
    values = checkpoint_io.read_tensors(reference_checkpoint["prefix"],
                                        [n for n in names if n != dropped])
    prefix = checkpoint_io.write_checkpoint(str(tmp_path / "model.ckpt-2"), values)
    line = _refused(capsys, "--checkpoint", prefix, "--config", reference_checkpoint["config"],
                    "--output", tmp_path / "out", "--label_map", reference_checkpoint["taxonomy"])
    assert "1 model variables without a checkpoint variable (mask_head/" in line


def test_a_label_map_of_another_size_is_refused(capsys, tmp_path, reference_checkpoint):
    small = tmp_path / "small.json"
    small.write_text(json.dumps({"categories": [{"id": i, "name": str(i)} for i in range(45)],
                                 "attributes": [{"id": i, "name": str(i)} for i in range(294)]}))
    line = _refused(capsys, "--checkpoint", reference_checkpoint["prefix"], "--config",
                    reference_checkpoint["config"], "--output", tmp_path / "out",
                    "--label_map", small)
    assert "has 45 categories; the checkpoint predicts 46" in line
    few = tmp_path / "few.json"
    few.write_text(json.dumps({"categories": [{"id": i, "name": str(i)} for i in range(46)],
                               "attributes": [{"id": i, "name": str(i)} for i in range(200)]}))
    line = _refused(capsys, "--checkpoint", reference_checkpoint["prefix"], "--config",
                    reference_checkpoint["config"], "--output", tmp_path / "out",
                    "--label_map", few)
    assert "has 200 attributes; the checkpoint has 294 attribute outputs" in line
    line = _refused(capsys, "--checkpoint", reference_checkpoint["prefix"], "--config",
                    reference_checkpoint["config"], "--output", tmp_path / "out")
    assert "give --label_map" in line
