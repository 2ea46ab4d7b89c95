"""The tiny Attribute-Mask R-CNN end to end on synthetic records: losses, a train
step in graph mode (fp32 and bf16), learning on one batch, inference shapes."""
import numpy as np
import pytest
import tensorflow as tf

from model.config import load_config
from model.data.parser import TRAIN, Parser, ParserSettings, make_dataset
from model.maskrcnn_losses import total_losses
from model.modeling.factory import build_model
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.record_reading import run_make_records

BATCH = 2


@pytest.fixture(scope="module")
def train_records(tmp_path_factory):
    root = tmp_path_factory.mktemp("maskrcnn")
    config = SyntheticConfig(image_size=128, min_objects=2, max_objects=4, seed=5)
    json_path = generate_split(str(root), "train", 8, config)
    prefix = str(root / "records" / "train")
    run_make_records("--image_dir", str(root / "train"), "--object_annotations_file", json_path,
                     "--output_file_prefix", prefix, "--num_shards", "1")
    return prefix + "-*.tfrecord"


def _config(*overrides):
    return load_config("tiny", list(overrides))


def _batch(pattern, config):
    settings = ParserSettings.from_experiment(config)
    assert settings.output_size == (128, 128) and settings.num_attributes == 82
    return next(iter(make_dataset(pattern, Parser(settings, TRAIN), BATCH, training=True)))


def test_losses_are_finite_and_empty_ground_truth_gives_zero_object_terms(train_records):
    config = _config()
    images, labels = _batch(train_records, config)
    model = build_model(config.model, 128)
    terms = total_losses(model(images, labels["image_info"], labels, training=True), config.model,
                         model.trainable_variables)
    assert all(np.isfinite(float(v)) for v in terms.values())
    assert float(terms["frcnn_box_loss"]) >= 0 and float(terms["mask_loss"]) > 0

    empty = dict(labels)
    empty["gt_boxes"] = -tf.ones_like(labels["gt_boxes"])
    empty["gt_classes"] = -tf.ones_like(labels["gt_classes"])
    terms = total_losses(model(images, labels["image_info"], empty, training=True), config.model,
                         model.trainable_variables)
    assert all(np.isfinite(float(v)) for v in terms.values())
    for name in ("rpn_box_loss", "frcnn_box_loss", "mask_loss", "attribute_loss"):
        assert float(terms[name]) == 0.0, name
    assert float(terms["rpn_score_loss"]) > 0 and float(terms["frcnn_class_loss"]) > 0


def test_a_few_steps_on_one_batch_lower_the_loss(train_records):
    config = _config()
    images, labels = _batch(train_records, config)
    model = build_model(config.model, 128)
    optimizer = tf.keras.optimizers.SGD(0.01, momentum=0.9)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            outputs = model(images, labels["image_info"], labels, training=True)
            terms = total_losses(outputs, config.model, model.trainable_variables)
        gradients = tape.gradient(terms["total_loss"], model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return terms["total_loss"]

    history = [float(step()) for _ in range(8)]
    assert all(np.isfinite(history))
    assert history[-1] < history[0]


@pytest.mark.parametrize("bfloat16, static_ops", [(False, False), (True, True)])
def test_one_train_step_in_compat_v1_graph_mode(train_records, bfloat16, static_ops):
    config = _config(f"model.bfloat16={str(bfloat16).lower()}",
                     f"model.static_ops_for_tpu={str(static_ops).lower()}")
    images_value, labels_value = _batch(train_records, config)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, images_value.shape)
        labels = {key: tf.compat.v1.placeholder(value.dtype, value.shape)
                  for key, value in labels_value.items()}
        model = build_model(config.model, 128)
        outputs = model(images, labels["image_info"], labels, training=True)
        terms = total_losses(outputs, config.model, model.trainable_variables)
        optimizer = tf.compat.v1.train.MomentumOptimizer(0.01, 0.9)
        train_op = optimizer.minimize(terms["total_loss"], var_list=model.trainable_variables)
        if bfloat16:
            assert model.backbone.trainable_variables[0].dtype == tf.float32
            assert any(op.type == "Conv2D" and op.get_attr("T") == tf.bfloat16
                       for op in graph.get_operations())
        feed = {images: images_value.numpy(),
                **{labels[key]: value.numpy() for key, value in labels_value.items()}}
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            before = session.run(model.trainable_variables[0])
            losses, _ = session.run([terms, train_op], feed)
            after = session.run(model.trainable_variables[0])
    assert all(np.isfinite(value) for value in losses.values())
    assert not np.allclose(before, after)


@pytest.mark.parametrize("static_ops", [False, True])
def test_inference_outputs_have_static_shapes(train_records, static_ops):
    config = _config(f"model.static_ops_for_tpu={str(static_ops).lower()}")
    images, labels = _batch(train_records, config)
    model = build_model(config.model, 128)
    detections = model(images, labels["image_info"], training=False)["detections"]
    limit = config.model.postprocess.max_detections
    assert detections["boxes"].shape == (BATCH, limit, 4)
    assert detections["mask_probabilities"].shape == (BATCH, limit, 28, 28)
    assert detections["attribute_probabilities"].shape == (BATCH, limit, 82)
    counts = detections["num_detections"].numpy()
    classes = detections["classes"].numpy()
    for image in range(BATCH):
        assert (classes[image, :counts[image]] >= 1).all()
        assert (classes[image, counts[image]:] == 0).all()
