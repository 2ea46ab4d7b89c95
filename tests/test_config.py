import pytest

from model.config import ConfigError, load_config, to_yaml
from model.config.loader import preset_names


def test_presets_load_with_their_values():
    assert {"tiny", "r50fpn", "sn49", "sn96", "sn143"} <= set(preset_names())
    tiny = load_config("tiny")
    assert tiny.model.backbone.depth == 18 and tiny.model.fpn.num_filters == 64
    assert tiny.input.image_size == 128 and tiny.train.decay_steps == (800, 950)
    r50 = load_config("r50fpn")
    assert r50.model.backbone.depth == 50 and r50.input.image_size == 1024
    assert r50.model.num_attributes == 341 and r50.model.fpn.max_level == 6
    assert r50.model.backbone.type == "resnet" and r50.model.fpn.type == "fpn"
    assert not r50.model.norm.use_sync_bn and r50.input.autoaugment_policy == "none"


@pytest.mark.parametrize("preset, model_id, size", [("sn49", "49", 1024), ("sn96", "96", 1024),
                                                    ("sn143", "143", 1280)])
def test_spinenet_presets_carry_the_first_place_recipe(preset, model_id, size):
    config = load_config(preset)
    model = config.model
    assert model.backbone.type == "spinenet" and model.backbone.spinenet.model_id == model_id
    assert (model.fpn.type, model.fpn.min_level, model.fpn.max_level) == ("identity", 3, 7)
    assert model.num_classes == 47 and model.num_attributes == 341
    assert model.norm.use_sync_bn and model.rpn.use_bn and model.mask_head.use_bn
    assert (model.box_head.num_convs, model.box_head.num_fcs, model.box_head.use_bn) == (4, 1, True)
    attribute = model.attribute_head
    assert (attribute.loss, attribute.focal_alpha, attribute.focal_gamma,
            attribute.loss_weight) == ("focal", 0.25, 2.0, 50.0)
    assert model.l2_weight_decay == 4e-5
    data = config.input
    assert (data.image_size, data.aug_scale_min, data.aug_scale_max) == (size, 0.5, 2.0)
    assert data.autoaugment_policy == "v3" and data.apply_autoaugment_after_resizing
    train = config.train
    assert (train.batch_size, train.warmup_steps, train.total_steps) == (56, 2000, 200000)
    assert (train.learning_rate, train.decay_steps, train.decay_factor) == (0.07, (60000, 75000), 0.1)


def test_overrides_are_typed_and_applied_in_order():
    config = load_config("tiny", ["model.attribute_head.loss=focal", "train.learning_rate=1",
                                  "model.anchor.aspect_ratios=[1.0, 2]", "model.bfloat16=true",
                                  "train.learning_rate=0.5"])
    assert config.model.attribute_head.loss == "focal"
    assert config.train.learning_rate == 0.5 and isinstance(config.train.learning_rate, float)
    assert config.model.anchor.aspect_ratios == (1.0, 2.0) and config.model.bfloat16 is True


@pytest.mark.parametrize("override, message", [
    ("model.backbone.dept=50", "unknown config key.*model.backbone.dept"),
    ("model.nothing.x=1", "unknown config key.*model.nothing"),
    ("train.batch_size=8.5", "train.batch_size: expected an integer"),
    ("model.bfloat16=1", "model.bfloat16: expected true or false"),
    ("model.anchor.aspect_ratios=2", r"model.anchor.aspect_ratios: expected a list"),
    ("model.anchor.aspect_ratios=[1, x]", r"model.anchor.aspect_ratios\[1\]: expected a number"),
    ("model.backbone=3", "model.backbone: expected a mapping"),
    ("novalue", "must look like key.sub=value"),
])
def test_bad_keys_and_types_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny", [override])


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = load_config("tiny", ["model.rpn.nms_iou=0.6"])
    path = tmp_path / "resolved.yaml"
    path.write_text(to_yaml(config))
    assert load_config(str(path)) == config


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match="neither a preset.*tiny"):
        load_config("tinyy")
