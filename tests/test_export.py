"""model.export: SavedModel signatures, label map asset, checkpoints written in graph mode."""
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from model.config import load_config
from model.data.augment import identity_image_info
from model.export import main as export_main
from model.modeling.factory import build_model
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.conftest import FIXTURES
from tests.record_reading import run_make_records


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    generate_split(str(root), "val", 3, SyntheticConfig(image_size=128, seed=9))
    prefix = str(root / "records" / "val")
    run_make_records("--image_dir", str(root / "val"), "--object_annotations_file",
                     str(root / "val.json"), "--output_file_prefix", prefix, "--num_shards", "1")
    image_only = str(root / "records" / "photos")
    run_make_records("--image_dir", str(root / "val"), "--output_file_prefix", image_only,
                     "--num_shards", "1")
    return root, prefix


@pytest.fixture(scope="module")
def exported(records, tmp_path_factory):
    _, prefix = records
    output = str(tmp_path_factory.mktemp("saved") / "tiny")
    export_main(["--config", "tiny", "--labels", prefix + "-labels.json", "--output", output,
                 "--override", "model.postprocess.score_threshold=0.0"])
    return output, prefix


def _png(height, width):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (height, width, 3), np.uint8)).save(
        buffer, format="PNG")
    return buffer.getvalue()


def _check(outputs, sizes, category_ids, num_attributes=82):
    count = len(sizes)
    assert outputs["detection_boxes"].shape == (count, 20, 4)
    assert outputs["detection_masks"].shape == (count, 20, 28, 28)
    assert outputs["detection_attributes"].shape == (count, 20, num_attributes)
    assert outputs["detection_classes"].dtype == tf.int32
    assert outputs["num_detections"].dtype == tf.int32
    for index, (height, width) in enumerate(sizes):
        np.testing.assert_allclose(outputs["image_info"][index, 0].numpy(), [height, width])
        boxes = outputs["detection_boxes"][index].numpy()
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= height).all()
        assert (boxes[:, [1, 3]] <= width).all()
        valid = int(outputs["num_detections"][index])
        classes = outputs["detection_classes"][index].numpy()
        assert set(classes[:valid]) <= set(category_ids) and (classes[valid:] == -1).all()


def test_image_bytes_signature_on_any_size(exported):
    output, prefix = exported
    loaded = tf.saved_model.load(output)
    images = [_png(90, 200), _png(300, 40)]
    sizes = [(90, 200), (300, 40)]
    photo = os.path.join(FIXTURES, "imat2020-photo", "00a8764cff12b2e849c850f4be5608bc.jpg")
    if os.path.exists(photo):
        with open(photo, "rb") as stream:
            images.append(stream.read())
        sizes.append(Image.open(photo).size[::-1])
    outputs = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
    with open(prefix + "-labels.json") as stream:
        labels = json.load(stream)
    _check(outputs, sizes, [c["id"] for c in labels["categories"]])
    with open(os.path.join(output, "assets", "labels.json")) as stream:
        assert json.load(stream) == labels


def test_examples_signature_agrees_with_image_bytes(exported, records):
    output, _ = exported
    root, _ = records
    loaded = tf.saved_model.load(output)
    serialized = [s.numpy() for s in tf.data.TFRecordDataset(
        [str(root / "records" / "photos-00000-of-00001.tfrecord")])]
    encoded = [tf.train.Example.FromString(s).features.feature["image/encoded"].bytes_list.value[0]
               for s in serialized]
    from_examples = loaded.signatures["serve_examples"](examples=tf.constant(serialized))
    from_bytes = loaded.signatures["serving_default"](image_bytes=tf.constant(encoded))
    for key in from_bytes:
        np.testing.assert_allclose(from_examples[key].numpy(), from_bytes[key].numpy(), atol=1e-5)


def test_graph_mode_checkpoint_restores_by_name_and_identity_labels(tmp_path):
    config = load_config("tiny")
    graph = tf.Graph()
    with graph.as_default():
        model = build_model(config.model, 128)
        model(tf.zeros([1, 128, 128, 3]), identity_image_info(128, batch=1), training=False)
        saver = tf.compat.v1.train.Saver(model.variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            checkpoint = saver.save(session, str(tmp_path / "model.ckpt"))
    output = str(tmp_path / "saved")
    export_main(["--config", "tiny", "--checkpoint", checkpoint, "--output", output])
    loaded = tf.saved_model.load(output)
    reader = tf.train.load_checkpoint(checkpoint)
    saved = {name.split("/", 1)[1]: name for name in reader.get_variable_to_shape_map()}
    restored = {v.name.split(":")[0].split("/", 1)[1]: v.numpy() for v in loaded.model_variables}
    assert len(restored) == len(saved)
    assert all(np.array_equal(value, reader.get_tensor(saved[name]))
               for name, value in restored.items())
    with open(os.path.join(output, "assets", "labels.json")) as stream:
        labels = json.load(stream)
    assert [c["id"] for c in labels["categories"]] == list(range(6))
    assert labels["num_attributes"] == 82
