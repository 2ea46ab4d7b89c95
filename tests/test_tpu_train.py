"""python -m tpu.train on CPU: a short training that learns, export and prediction
from its checkpoint, warm start, config refusal, dry run and bad flags."""
import glob
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from pycocotools import mask as coco_mask

from beam_pipelines import predict

from model.data.augment import identity_image_info
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.prediction_helpers import check_detections, read_detections
from tests.record_reading import run_make_records
from tpu import train, warm_start
from tpu.model_dir import ModelDirError, save_or_check_config
from model.config import load_config

# A short schedule for 2 CPU cores: 120 steps of 4 images at 128x128.
STEPS = 120
SHORT = ["train.batch_size=4", f"train.total_steps={STEPS}", "train.warmup_steps=10",
         "train.warmup_learning_rate=0.004", "train.learning_rate=0.02", "train.decay_steps=[100]"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    config = SyntheticConfig(image_size=128, min_objects=1, max_objects=3, seed=11)
    json_path = generate_split(str(root), "train", 24, config)
    prefix = str(root / "records" / "train")
    run_make_records("--image_dir", str(root / "train"), "--object_annotations_file", json_path,
                     "--output_file_prefix", prefix, "--num_shards", "2")
    return {"root": root, "json": json_path, "pattern": prefix + "-*.tfrecord",
            "images": str(root / "train")}


def _run(*argv):
    train.main([str(arg) for arg in argv])


def _override_flags(overrides):
    return [flag for item in overrides for flag in ("--override", item)]


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("model_dir"))
    _run("--mode", "train", "--config", "tiny", "--model_dir", model_dir,
         "--train_file_pattern", dataset["pattern"], *_override_flags(SHORT))
    return model_dir


def _scalar_series(model_dir, tag):
    values = {}
    for path in glob.glob(os.path.join(model_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor)) \
                        if value.HasField("tensor") else value.simple_value
    return [values[step] for step in sorted(values)]


def test_short_training_learns_checkpoints_and_keeps_config_and_labels(trained, dataset):
    losses = _scalar_series(trained, "train/total_loss")
    assert len(losses) >= 5, losses
    first, last = np.mean(losses[:1]), np.mean(losses[-2:])
    assert last <= 0.5 * first, f"total loss went {first:.3f} -> {last:.3f}"
    assert tf.train.latest_checkpoint(trained).endswith(f"model.ckpt-{STEPS}")
    assert _scalar_series(trained, "train/learning_rate")[0] == pytest.approx(0.004, rel=1e-3)
    saved = load_config(os.path.join(trained, "config.yaml"))
    assert saved == load_config("tiny", SHORT)
    with open(os.path.join(trained, "labels.json")) as stream, \
            open(dataset["pattern"].replace("-*.tfrecord", "-labels.json")) as original:
        assert json.load(stream) == json.load(original)


def test_export_from_the_checkpoint_predicts_a_training_image(trained, dataset, tmp_path, capsys):
    export_dir = str(tmp_path / "saved_model")
    _run("--mode", "export", "--config", "tiny", "--model_dir", trained,
         "--export_dir", export_dir,
         *_override_flags(SHORT + ["model.postprocess.score_threshold=0.001"]))
    assert "label map: " + os.path.join(trained, "labels.json") in capsys.readouterr().out
    loaded = tf.saved_model.load(export_dir)
    with open(dataset["json"]) as stream:
        truth = json.load(stream)
    first = truth["images"][0]
    with open(os.path.join(dataset["images"], first["file_name"]), "rb") as stream:
        outputs = loaded.signatures["serving_default"](image_bytes=tf.constant([stream.read()]))
    count = int(outputs["num_detections"][0])
    assert count > 0
    dataset_categories = {category["id"] for category in truth["categories"]}
    assert set(outputs["detection_classes"][0, :count].numpy().tolist()) <= dataset_categories


def test_predict_straight_from_the_model_dir_checkpoint(trained, dataset, tmp_path, capsys):
    """beam_pipelines.predict --checkpoint --config: the launcher exports the checkpoint (its
    labels.json beside it) and predicts what the exported SavedModel predicts."""
    export_dir = str(tmp_path / "saved_model")
    _run("--mode", "export", "--config", "tiny", "--model_dir", trained, "--export_dir",
         export_dir, *_override_flags(SHORT))
    from_model, from_checkpoint = str(tmp_path / "a" / "pred"), str(tmp_path / "b" / "pred")
    predict.run(["--model", export_dir, "--images", dataset["images"], "--output", from_model,
                 "--num_shards", "1"])
    imported = str(tmp_path / "imported")
    predict.run(["--checkpoint", tf.train.latest_checkpoint(trained), "--config", "tiny",
                 "--imported_model", imported, "--images", dataset["images"],
                 "--output", from_checkpoint, "--num_shards", "1"])
    assert "SavedModel from --checkpoint" in capsys.readouterr().out
    expected, actual = read_detections(from_model), read_detections(from_checkpoint)
    assert len(expected) >= 24
    key = lambda row: (row["filename"], row["category_id"], round(row["score"], 4))  # noqa: E731
    assert sorted(map(key, actual)) == sorted(map(key, expected))
    with open(os.path.join(imported, "assets", "labels.json")) as stream, \
            open(os.path.join(trained, "labels.json")) as original:
        assert json.load(stream)["categories"] == json.load(original)["categories"]


def test_eval_writes_coco_metrics(trained, dataset):
    _run("--mode", "eval", "--config", "tiny", "--model_dir", trained,
         "--eval_file_pattern", dataset["pattern"], "--eval_annotations_file", dataset["json"],
         *_override_flags(SHORT))
    with open(os.path.join(trained, "eval", f"metrics-{STEPS}.json")) as stream:
        metrics = json.load(stream)
    assert metrics["step"] == STEPS and metrics["num_detections"] > 0
    assert metrics["num_images"] == 24
    for kind in ("bbox", "segm"):
        assert {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm",
                "ARl", "AP_IoU_F1", "AP_IoU_only", "AP_F1_only"} <= set(metrics[kind])
        assert 0.0 <= metrics[kind]["AP"] <= 1.0 and 0.0 <= metrics[kind]["AP_IoU_F1"] <= 1.0
    assert 0.0 <= metrics["attribute_f1"] <= 1.0


def _by_id(rows):
    by_id = {row["id"]: row for row in rows}
    assert len(by_id) == len(rows)
    return by_id


def _mask_iou(first, second):
    rles = [dict(seg, counts=seg["counts"].encode()) for seg in (first, second)]
    return float(coco_mask.iou([rles[0]], [rles[1]], [0])[0, 0])


def test_predict_mode_writes_the_lines_beam_predict_writes_from_the_export(trained, dataset,
                                                                           tmp_path, capsys):
    """The same checkpoint, predicted by tpu.train --mode predict (the estimator, records
    parsed by the input parser) and by beam_pipelines.predict --tfrecords (its SavedModel
    export, the serve_examples signature): the same detections, line for line."""
    export_dir = str(tmp_path / "saved_model")
    _run("--mode", "export", "--config", "tiny", "--model_dir", trained, "--export_dir",
         export_dir, *_override_flags(SHORT))
    beam_prefix, tpu_prefix = str(tmp_path / "beam" / "pred"), str(tmp_path / "tpu" / "pred")
    predict.run(["--model", export_dir, "--tfrecords", dataset["pattern"], "--output",
                 beam_prefix, "--num_shards", "1"])
    capsys.readouterr()
    predict_flags = ["--mode", "predict", "--config", "tiny", "--model_dir", trained,
                     "--predict_file_pattern", dataset["pattern"], *_override_flags(SHORT)]
    _run(*predict_flags, "--output", tpu_prefix)
    out = capsys.readouterr().out
    assert f"detections: {tpu_prefix}-00000-of-00001.jsonl" in out
    beam_rows, tpu_rows = read_detections(beam_prefix), read_detections(tpu_prefix)
    assert f"images_predicted=24 detections_written={len(tpu_rows)}" in out
    assert not glob.glob(tpu_prefix + "*.partial")
    with open(dataset["json"]) as stream:
        truth = json.load(stream)
    sizes = {image["file_name"]: (image["height"], image["width"]) for image in truth["images"]}
    check_detections(tpu_rows, sizes)
    ids = {image["file_name"]: image["id"] for image in truth["images"]}
    assert all(ids[row["filename"]] == row["image_id"] for row in tpu_rows)
    beam_by_id, tpu_by_id = _by_id(beam_rows), _by_id(tpu_rows)
    assert len(tpu_rows) >= 24, "the trained model finds objects in its training images"
    # A detection whose score lies at the threshold may fall either side in one of the two.
    for only in (beam_by_id.keys() - tpu_by_id.keys(), tpu_by_id.keys() - beam_by_id.keys()):
        assert all(abs((beam_by_id.get(i) or tpu_by_id[i])["score"] - 0.05) < 1e-3
                   for i in only), only
    common = beam_by_id.keys() & tpu_by_id.keys()
    assert len(common) >= 0.95 * max(len(beam_rows), len(tpu_rows))
    same_masks = 0
    for detection_id in common:
        beam_row, tpu_row = beam_by_id[detection_id], tpu_by_id[detection_id]
        assert list(tpu_row) == list(beam_row)
        for key in ("image_id", "filename", "category_id"):
            assert tpu_row[key] == beam_row[key], key
        np.testing.assert_allclose(tpu_row["bbox"], beam_row["bbox"], atol=1e-3)
        assert tpu_row["score"] == pytest.approx(beam_row["score"], abs=1e-4)
        same_masks += tpu_row["segmentation"] == beam_row["segmentation"]
        assert _mask_iou(tpu_row["segmentation"], beam_row["segmentation"]) > 0.99
        np.testing.assert_allclose(tpu_row["attribute_probabilities"],
                                   beam_row["attribute_probabilities"], atol=1e-3)
        for key in ("mask_mean_score", "mask_area_fraction", "mask_pixel_mean_score"):
            assert tpu_row[key] == pytest.approx(beam_row[key], abs=2e-3), key
    assert same_masks >= 0.9 * len(common)
    close_calls = sum(abs(p - 0.5) < 1e-3 for row in tpu_rows
                      for p in row["attribute_probabilities"])
    differing = sum(tpu_by_id[i]["attribute_ids"] != beam_by_id[i]["attribute_ids"]
                    for i in common)
    assert differing <= close_calls

    # An earlier run's output is refused with one line, replaced with --overwrite; the
    # compact attribute modes come from the same code.
    with pytest.raises(SystemExit) as exit_info:
        _run(*predict_flags, "--output", tpu_prefix, "--attributes", "top_k=3")
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "pass --overwrite" in error[0], error
    _run(*predict_flags, "--output", tpu_prefix, "--attributes", "top_k=3", "--overwrite")
    top_k_rows = read_detections(tpu_prefix)
    assert [row["id"] for row in top_k_rows] == [row["id"] for row in tpu_rows]
    for full, compact in zip(tpu_rows, top_k_rows):
        assert "attribute_probabilities" not in compact
        assert compact["attribute_ids"] == full["attribute_ids"]
        assert len(compact["attribute_top_k_ids"]) == 3
        assert compact["segmentation"] == full["segmentation"]


def test_predict_mode_needs_its_records_and_an_output_prefix(tmp_path, capsys, dataset):
    for argv in (["--predict_file_pattern", dataset["pattern"]], ["--output", tmp_path / "p"]):
        with pytest.raises(SystemExit) as exit_info:
            _run("--mode", "predict", "--config", "tiny", "--model_dir", tmp_path / "m", *argv)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and "needs --predict_file_pattern and --output" in error[0]
    with pytest.raises(SystemExit):
        _run("--mode", "predict", "--config", "tiny", "--model_dir", tmp_path / "m",
             "--predict_file_pattern", tmp_path / "none-*", "--output", tmp_path / "p")
    assert "--predict_file_pattern " + str(tmp_path / "none-*") + " matches no files" in \
        capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_predictions_out_of_step_with_the_records_are_refused():
    from tpu import prediction
    images = [{"source_id": np.int64(7)}, {"source_id": np.int64(-2)}, {"source_id": np.int64(-1)}]
    keys = [(7, "a.jpg", 7), (123456, "b.jpg", -2)]
    assert [key for key, _ in prediction.keyed_images(images, keys)] == [(7, "a.jpg"),
                                                                         (123456, "b.jpg")]
    with pytest.raises(RuntimeError, match="out of step"):
        list(prediction.keyed_images(images, [(8, "a.jpg", 8), (1, "b.jpg", -2)]))
    with pytest.raises(RuntimeError, match="fewer images"):
        list(prediction.keyed_images(images[:1], keys))
    with pytest.raises(RuntimeError, match="more images"):
        list(prediction.keyed_images(images, keys[:1]))


def test_warm_start_restores_matching_variables_and_lists_the_rest(trained, dataset, tmp_path,
                                                                    caplog):
    model_dir = str(tmp_path / "warm")
    frozen = ["train.learning_rate=0.0", "train.warmup_learning_rate=0.0", "train.total_steps=1",
              "model.l2_weight_decay=0.0"]
    _run("--mode", "train", "--config", "tiny", "--model_dir", model_dir,
         "--train_file_pattern", dataset["pattern"], "--init_checkpoint", trained,
         "--skip_variables_regex", "^box_head/", *_override_flags(SHORT + frozen))
    source = tf.train.load_checkpoint(tf.train.latest_checkpoint(trained))
    target = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
    kernels = [name for name in target.get_variable_to_shape_map()
               if name.endswith("kernel") and "Momentum" not in name]
    restored = [name for name in kernels if "/box_head/" not in name]
    skipped = [name for name in kernels if "/box_head/" in name]
    assert restored and skipped
    for name in restored:
        np.testing.assert_array_equal(target.get_tensor(name), source.get_tensor(name), name)
    for name in skipped:
        assert not np.array_equal(target.get_tensor(name), source.get_tensor(name)), name
    assert "skipped by --skip_variables_regex" in caplog.text
    assert "skipped by regex: box_head/" in caplog.text


def test_warm_start_plan_lists_shape_mismatches(trained):
    from model.modeling.factory import build_model
    config = load_config("tiny", ["model.num_classes=5"])
    model = build_model(config.model, 128)
    model(tf.zeros([1, 128, 128, 3]), identity_image_info(128, batch=1))
    plan = warm_start.plan(model.variables, trained, "")
    mismatched = {name for name, _, _ in plan.shape_mismatch}
    assert any(name.startswith("box_head/") for name in mismatched)
    assert any(name.startswith("mask_head/") for name in mismatched)
    assert not plan.not_in_checkpoint and not plan.skipped_by_regex
    assert len(plan.assignments) + len(mismatched) == len(model.variables)


def test_restart_with_another_config_is_refused_naming_the_keys(tmp_path, capsys, dataset):
    model_dir = str(tmp_path)
    save_or_check_config(model_dir, load_config("tiny"))
    with pytest.raises(ModelDirError, match=r"model\.rpn\.num_filters: 64 -> 32"):
        save_or_check_config(model_dir, load_config("tiny", ["model.rpn.num_filters=32"]))
    note = save_or_check_config(model_dir, load_config("tiny", ["train.total_steps=5000",
                                                                "eval.batch_size=2"]))
    assert "train.total_steps" in note and "eval.batch_size" in note
    with pytest.raises(SystemExit) as exit_info:
        _run("--mode", "train", "--config", "tiny", "--model_dir", model_dir,
             "--train_file_pattern", dataset["pattern"], "--override", "input.image_size=256")
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "input.image_size: 128 -> 256" in error[0]


def test_dry_run_with_a_tpu_prints_the_plan_and_touches_nothing(tmp_path, capsys, dataset):
    model_dir = "gs://bucket/run"
    _run("--mode", "train", "--config", "tiny", "--model_dir", model_dir, "--dry_run",
         "--train_file_pattern", dataset["pattern"], "--tpu", "my-tpu",
         "--tpu_zone", "us-central1-b", "--gcp_project", "p", "--num_cores", "8",
         "--override", "train.batch_size=64")
    out = capsys.readouterr().out
    assert "tpu: my-tpu (zone us-central1-b, project p), 8 cores" in out
    assert "batch: global 64, per core 8 on 8 cores" in out
    assert "model:" in out and "num_classes: 7" in out


@pytest.mark.parametrize("argv, message", [
    (["--config", "tiny", "--train_file_pattern", "/nonexistent/x-*"],
     "--train_file_pattern /nonexistent/x-* matches no files"),
    (["--config", "no_such_preset", "--train_file_pattern", "x"], "neither a preset"),
    (["--config", "tiny", "--override", "model.no_such_key=1", "--train_file_pattern", "x"],
     "model.no_such_key"),
    (["--config", "tiny", "--mode", "eval"], "needs --eval_file_pattern"),
])
def test_bad_flags_fail_fast_with_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        _run("--model_dir", tmp_path, *argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    assert not os.listdir(tmp_path)


def test_dry_run_of_the_first_place_recipe_plans_a_v3_8(capsys, dataset):
    _run("--mode", "train", "--config", "sn143", "--model_dir", "gs://bucket/sn143", "--dry_run",
         "--train_file_pattern", dataset["pattern"], "--tpu", "my-tpu")
    out = capsys.readouterr().out
    assert "8 cores, per-host input v2" in out
    assert "batch: global 56, per core 7 on 8 cores" in out
    assert "steps: 200000" in out and "x0.1 at 60000, x0.1 at 75000" in out
    assert ("precision: bfloat16 compute, float32 losses; batch norm: synchronised over cores; "
            "RoIAlign/NMS: gathers + padded NMS (TPU); input 1280x1280") in out


def test_shards_of_an_earlier_run_under_the_same_prefix_are_refused(tmp_path, capsys):
    for name in ("train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
                 "train-00000-of-00004.tfrecord"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        _run("--config", "tiny", "--model_dir", tmp_path / "model",
             "--train_file_pattern", tmp_path / "train-*.tfrecord")
    assert exit_info.value.code == 2
    assert "shards of different make_records runs under " + str(tmp_path / "train") in \
        capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--train_file_pattern", "/nonexistent/x-*"],
     "--train_file_pattern /nonexistent/x-* matches no files"),
    (["--mode", "eval", "--eval_file_pattern", "/nonexistent/e-*", "--eval_annotations_file",
      "x.json"], "--eval_file_pattern /nonexistent/e-* matches no files"),
])
def test_dry_run_with_a_pattern_matching_nothing_fails_with_one_line(tmp_path, capsys, argv,
                                                                     message):
    with pytest.raises(SystemExit) as exit_info:
        _run("--config", "tiny", "--model_dir", tmp_path / "model", "--dry_run", *argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    assert not os.listdir(tmp_path)


def test_dry_run_without_the_eval_annotations_file_fails_with_one_line(tmp_path, capsys, dataset):
    with pytest.raises(SystemExit) as exit_info:
        _run("--mode", "eval", "--config", "tiny", "--model_dir", tmp_path / "model", "--dry_run",
             "--eval_file_pattern", dataset["pattern"],
             "--eval_annotations_file", tmp_path / "none.json")
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "none.json does not exist" in error[0], error


def _record_starts(path):
    """The byte offset of every record of a TFRecord file, from the record sizes TensorFlow
    reads (16 bytes of framing each), and the file's size last."""
    starts = [0]
    for record in tf.data.TFRecordDataset(path):
        starts.append(starts[-1] + len(record.numpy()) + 16)
    assert starts[-1] == os.path.getsize(path)
    return starts


def _copy_with_damaged_shard(dataset, directory, damage):
    """The dataset's shards and label map copied to ``directory``, the second shard damaged by
    ``damage`` (truncated / appended / partial_header / data_byte / empty); returns the
    copies' pattern, the damaged shard and the byte offset of its fault."""
    os.makedirs(directory)
    shards = sorted(glob.glob(dataset["pattern"]))
    for shard in shards:
        shutil.copy(shard, directory)
    shutil.copy(dataset["pattern"].replace("-*.tfrecord", "-labels.json"), directory)
    damaged = os.path.join(directory, os.path.basename(shards[1]))
    starts = _record_starts(damaged)
    with open(damaged, "rb") as stream:
        data = stream.read()
    middle = starts[len(starts) // 2]
    if damage == "truncated":  # cut inside the middle record's data
        data, offset = data[:middle + 12 + 100], middle
    elif damage == "appended":
        data, offset = data + b"not a record, appended by hand" * 4, len(data)
    elif damage == "partial_header":  # TensorFlow reads this file without a word
        data, offset = data + data[middle:middle + 5], len(data)
    elif damage == "data_byte":  # framing whole, the middle record's data checksum fails
        data = data[:middle + 40] + bytes([data[middle + 40] ^ 1]) + data[middle + 41:]
        offset = middle
    else:
        data, offset = b"", None
    with open(damaged, "wb") as stream:
        stream.write(data)
    return os.path.join(directory, "train-*.tfrecord"), damaged, offset


def _input_flags(mode_flag, pattern, dataset):
    if mode_flag == "--train_file_pattern":
        return ["--mode", "train", "--train_file_pattern", pattern]
    return ["--mode", "eval", "--eval_file_pattern", pattern,
            "--eval_annotations_file", dataset["json"]]


@pytest.mark.parametrize("damage, problem", [
    ("truncated", "truncated record: its header claims"),
    ("appended", "no record header (its length checksum does not match"),
    ("partial_header", "5 bytes after the last whole record"),
])
@pytest.mark.parametrize("flag", ["--train_file_pattern", "--eval_file_pattern"])
def test_a_damaged_shard_is_refused_before_model_dir_is_touched(tmp_path, capsys, dataset, damage,
                                                                problem, flag):
    pattern, damaged, offset = _copy_with_damaged_shard(dataset, str(tmp_path / "records"),
                                                        damage)
    model_dir = tmp_path / "model"
    with pytest.raises(SystemExit) as exit_info:
        _run("--config", "tiny", "--model_dir", model_dir, *_input_flags(flag, pattern, dataset))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1, error
    assert f"{flag}: {damaged} at byte offset {offset}: {problem}" in error[0], error
    assert not model_dir.exists()


def test_tensorflow_agrees_on_the_damaged_and_the_empty_shards(tmp_path, dataset):
    for damage in ("truncated", "appended"):
        _, damaged, _ = _copy_with_damaged_shard(dataset, str(tmp_path / damage), damage)
        with pytest.raises(tf.errors.DataLossError):
            list(tf.data.TFRecordDataset(damaged))
    _, empty, _ = _copy_with_damaged_shard(dataset, str(tmp_path / "empty"), "empty")
    assert list(tf.data.TFRecordDataset(empty)) == []


@pytest.mark.parametrize("flag", ["--train_file_pattern", "--eval_file_pattern"])
def test_an_empty_shard_passes_the_launcher_checks(tmp_path, dataset, flag):
    pattern, _, _ = _copy_with_damaged_shard(dataset, str(tmp_path / "records"), "empty")
    flags = train.build_flags()
    args = flags.parse_args(["--config", "tiny", "--model_dir", str(tmp_path / "model"),
                             *_input_flags(flag, pattern, dataset)])
    train._check_flags(flags, args)
    assert not (tmp_path / "model").exists()


def test_a_corrupt_record_met_while_training_ends_with_one_line_naming_the_file(tmp_path, capsys,
                                                                                dataset):
    pattern, damaged, offset = _copy_with_damaged_shard(dataset, str(tmp_path / "records"),
                                                        "data_byte")
    with pytest.raises(SystemExit) as exit_info:
        _run("--mode", "train", "--config", "tiny", "--model_dir", tmp_path / "model",
             "--train_file_pattern", pattern, *_override_flags(SHORT + ["train.total_steps=2"]))
    assert exit_info.value.code == 2
    error = [line for line in capsys.readouterr().err.strip().splitlines() if line]
    assert error[-1] == (f"python -m tpu.train: error: --train_file_pattern: {damaged} at byte "
                         f"offset {offset}: corrupted record (its data checksum does not match)")


def test_only_data_errors_are_reported_as_bad_records():
    from tpu import record_errors
    corrupt = tf.errors.DataLossError(None, None, "corrupted record at 12")
    assert record_errors.is_data_error(corrupt)
    assert record_errors.is_data_error(tf.errors.InvalidArgumentError(
        None, None, "Could not parse example input, value: 'x'"))
    assert not record_errors.is_data_error(tf.errors.ResourceExhaustedError(
        None, None, "OOM when allocating tensor with shape[4,256,320,320]"))
    assert not record_errors.is_data_error(tf.errors.InvalidArgumentError(
        None, None, "Incompatible shapes: [4,7] vs. [4,8]"))
    assert record_errors.one_line(MemoryError(), "--train_file_pattern", "x") is None
