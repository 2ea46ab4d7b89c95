import numpy as np
import pytest
import tensorflow as tf

from model import summary
from model.config import load_config
from model.modeling.factory import build_parts
from model.modeling.resnet import ResNet


def test_r50fpn_parameter_count_matches_the_published_mask_rcnn(capsys):
    total = summary.main(["--config", "r50fpn", "--num_classes", "91", "--num_attributes", "0"])
    assert abs(total - 44.4e6) / 44.4e6 < 0.03
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"total_params={total}"
    assert not any(line.startswith("attribute_head") for line in lines)


@pytest.mark.parametrize("depth, expected", [(18, 11_176_512), (50, 23_508_032)])
def test_resnet_sizes_and_feature_strides(depth, expected):
    backbone = ResNet(depth)
    features = backbone(tf.zeros([2, 96, 64, 3]))
    assert {level: f.shape[1:3] for level, f in features.items()} == {
        2: (24, 16), 3: (12, 8), 4: (6, 4), 5: (3, 2)}
    assert sum(int(np.prod(v.shape)) for v in backbone.trainable_variables) == expected


def test_tiny_parts_produce_the_documented_shapes():
    config = load_config("tiny").model
    parts = build_parts(config)
    features = parts["fpn"](parts["backbone"](tf.zeros([2, 128, 128, 3]), training=False))
    assert sorted(features) == [2, 3, 4, 5]
    assert features[5].shape == (2, 4, 4, 64)
    rpn = parts["rpn_head"](features)
    assert rpn["scores"][2].shape == (2, 32, 32, 3) and rpn["boxes"][2].shape == (2, 32, 32, 12)
    rois = tf.zeros([2, 5, 7, 7, 64])
    box = parts["box_head"](rois)
    assert box["class_logits"].shape == (2, 5, 7) and box["box_deltas"].shape == (2, 5, 7, 4)
    mask_rois = tf.zeros([2, 5, 14, 14, 64])
    assert parts["mask_head"](mask_rois)["mask_logits"].shape == (2, 5, 28, 28, 7)
    assert parts["attribute_head"](mask_rois)["attribute_logits"].shape == (2, 5, 82)
