"""SpineNet backbones, identity multilevel features and cross-replica batch norm."""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.tpu import tpu_function

from model.config import load_config
from model.maskrcnn_losses import total_losses
from model.data.augment import identity_image_info
from model.modeling.factory import build_model, build_parts, build_variables
from model.modeling.norm import CrossReplicaBatchNormalization
from model.modeling.spinenet import SpineNet
from model.summary import count_parameters

# Published Mask R-CNN sizes (SpineNet paper, COCO: 91 classes) and RetinaNet sizes.
MASK_RCNN_PARAMS = {"sn49": 40.8e6, "sn96": 55.2e6, "sn143": 79.2e6}
RETINANET_PARAMS = {"49": 28.5e6, "96": 43.0e6, "143": 67.0e6}


def retinanet_head_parameters(channels=256, classes=91, anchors=9, convs=4, levels=5):
    """The RetinaNet head the paper's totals include: per branch ``convs`` 3x3 convs with
    per-level batch norm, then 3x3 class and box predictors with biases."""
    tower = convs * 9 * channels * channels + convs * levels * 2 * channels
    class_predictor = 9 * channels * anchors * classes + anchors * classes
    box_predictor = 9 * channels * anchors * 4 + anchors * 4
    return 2 * tower + class_predictor + box_predictor


@pytest.mark.parametrize("preset, model_id", [("sn49", "49"), ("sn96", "96"), ("sn143", "143")])
def test_mask_rcnn_sizes_match_the_paper_and_levels_3_to_7_feed_the_heads(preset, model_id):
    config = load_config(preset, ["model.num_classes=91", "model.num_attributes=0"]).model
    parts = build_parts(config)
    features = parts["fpn"](parts["backbone"](tf.zeros([1, 128, 128, 3]), training=False))
    assert {level: tuple(f.shape) for level, f in features.items()} == {
        level: (1, 128 // 2 ** level, 128 // 2 ** level, 256) for level in range(3, 8)}
    build_variables(parts, config)
    total = sum(count_parameters(part) for part in parts.values())
    assert abs(total - MASK_RCNN_PARAMS[preset]) / MASK_RCNN_PARAMS[preset] < 0.03
    assert count_parameters(parts["fpn"]) == 0
    backbone_and_retinanet = count_parameters(parts["backbone"]) + retinanet_head_parameters()
    assert abs(backbone_and_retinanet - RETINANET_PARAMS[model_id]) / RETINANET_PARAMS[model_id] < 0.03


def test_unknown_spinenet_is_an_error():
    with pytest.raises(ValueError, match="model_id"):
        SpineNet("50")


def test_identity_features_need_a_spinenet_of_the_heads_width():
    with pytest.raises(ValueError, match="identity"):
        build_parts(load_config("r50fpn", ["model.fpn.type=identity"]).model)
    with pytest.raises(ValueError, match="num_filters = 256"):
        build_parts(load_config("sn49", ["model.backbone.spinenet.model_id=49S"]).model)


def test_cross_replica_batch_norm_is_plain_batch_norm_off_tpu():
    values = tf.random.stateless_normal([4, 6, 6, 8], [1, 2]) * 3.0 + 1.0
    plain = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    synced = CrossReplicaBatchNormalization(momentum=0.9, epsilon=1e-3)
    np.testing.assert_allclose(synced(values, training=True), plain(values, training=True),
                               atol=1e-4)
    np.testing.assert_allclose(synced.moving_variance, plain.moving_variance, rtol=1e-5)


def test_cross_replica_batch_norm_sums_statistics_over_tpu_shards():
    graph = tf.Graph()
    with graph.as_default(), tpu_function.tpu_shard_context(8):
        CrossReplicaBatchNormalization()(tf.zeros([2, 4, 4, 3]), training=True)
    assert sum(op.type == "CrossReplicaSum" for op in graph.get_operations()) == 2


def test_spinenet_49s_mask_rcnn_losses_in_compat_v1_graph_mode_with_bfloat16_and_sync_bn():
    config = load_config("sn49", [
        "model.backbone.spinenet.model_id=49S", "model.backbone.spinenet.activation=swish",
        "model.backbone.spinenet.stochastic_depth_rate=0.2", "model.fpn.num_filters=128",
        "model.num_classes=5", "model.num_attributes=12", "model.bfloat16=true",
        "model.box_head={num_convs: 1, conv_filters: 64, num_fcs: 1, fc_dims: 128, use_bn: true}",
        "model.mask_head.num_filters=32", "model.attribute_head.num_filters=32",
        "model.attribute_head.fc_dims=64", "model.rpn.samples_per_image=64",
        "model.rpn.train_pre_nms_top_k=200", "model.rpn.train_post_nms_top_k=100",
        "model.roi_sampler.samples_per_image=32", "model.mask_head.samples_per_image=8"]).model
    assert config.norm.use_sync_bn
    size, crop = 128, 28
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(1)
        images = tf.random.normal([1, size, size, 3])
        info = identity_image_info(size, batch=1)
        labels = {
            "gt_boxes": tf.constant([[[10, 12, 60, 70], [64, 64, 120, 100], [-1] * 4]], tf.float32),
            "gt_classes": tf.constant([[1, 3, -1]], tf.int32),
            "gt_is_crowd": tf.zeros([1, 3], tf.bool),
            "gt_masks": tf.ones([1, 3, crop, crop]),
            "gt_attributes": tf.one_hot([[2, 5, 0]], 12),
        }
        model = build_model(config, size)
        outputs = model(images, info, labels, training=True)
        terms = total_losses(outputs, config, model.trainable_variables)
        assert any(op.type == "Conv2D" and op.get_attr("T") == tf.bfloat16
                   for op in graph.get_operations())
        assert model.backbone.trainable_variables[0].dtype == tf.float32
        assert 8e6 < count_parameters(model.backbone) < 10e6  # 49S: 0.65x widths
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            losses = session.run(terms)
    assert all(np.isfinite(value) for value in losses.values())
    assert losses["total_loss"] > 0
