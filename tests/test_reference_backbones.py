"""The backbone and multilevel features against tensorflow/tpu's detection code (Fashionpedia
configs) and the iMaterialist 2020 fork's (sn143-imat-v2): with the reference's variables
mapped by ``map_backbone`` our model gives the reference's features.

The fixtures (tests/fixtures/reference/<arch>/) hold the reference graph's variable list,
the seed of its stand-in weights and, in reference.npz, the reference's model input and
its ``features_L`` per level; the weights are regenerated here from (seed, name, shape),
so the test needs neither the reference code nor a checkpoint.

Tolerance: float32 gives the same numbers up to summation order (oneDNN and Eigen
convolutions, fused and unfused batch norm); over 50-150 layers that leaves at most
5.3e-6 of each level's largest magnitude (measured on all six architectures, 256x256,
two images, float32 features). Fixtures may store features as float16, rounded to half
an ulp (2**-11 of each value); beyond that rounding the six fixtures' features differ
from ours by at most 3.0e-6 of the scale (fp_r101fpn 2.4e-6, imat_sn143 3.0e-6 stored as
float32, the others 0.1-0.9e-6). The test allows 1e-4 of the scale beyond the storage
rounding. Each layout switch moves features by far more
(measured, max difference over the scale): ResNet stem pool "pad1" 0.07-0.1 on every
level; SpineNet-49 "same" strided padding 0.3-0.4, ReLU for swish 0.15-0.24, "chained"
resample pooling 0.004 (level 7, the one block that goes down three levels); batch-norm
epsilon 1e-4 for 1e-3 0.013-0.02.
"""
import json
import pathlib
from typing import Dict, List

import numpy as np
import pytest
import tensorflow as tf

from model.checkpoint_import.backbone_names import expected_pairs, map_backbone
from model.checkpoint_import.seeded_weights import seeded_weights
from model.config import load_config
from model.config.loader import preset_names
from model.modeling.factory import build_parts
from tests import reference_fixtures

FIXTURES = pathlib.Path(reference_fixtures.ROOT)

_TPU_NORM = ["model.norm.momentum=0.99", "model.norm.epsilon=0.001"]
_RESNET_FPN = ["model.backbone.type=resnet", "model.backbone.stem_pool_padding=same",
               "model.fpn.type=fpn", "model.fpn.min_level=3", "model.fpn.max_level=7",
               "model.fpn.num_filters=256", "model.fpn.extra_levels=conv", "model.fpn.use_bn=true"]
_SPINENET = ["model.backbone.type=spinenet", "model.backbone.spinenet.strided_conv_padding=fixed",
             "model.backbone.spinenet.resample_pooling=single", "model.fpn.type=identity",
             "model.fpn.min_level=3", "model.fpn.max_level=7", "model.fpn.num_filters=256"]

# The backbone and multilevel-feature settings of each reference architecture.
BACKBONE_SETTINGS: Dict[str, List[str]] = {
    "fp_r50fpn": _RESNET_FPN + _TPU_NORM + ["model.backbone.depth=50"],
    "fp_r101fpn": _RESNET_FPN + _TPU_NORM + ["model.backbone.depth=101"],
    "fp_sn49": _SPINENET + _TPU_NORM + ['model.backbone.spinenet.model_id="49"',
                                        "model.backbone.spinenet.activation=swish"],
    "fp_sn96": _SPINENET + _TPU_NORM + ['model.backbone.spinenet.model_id="96"',
                                        "model.backbone.spinenet.activation=swish"],
    "fp_sn143": _SPINENET + _TPU_NORM + ['model.backbone.spinenet.model_id="143"',
                                         "model.backbone.spinenet.activation=swish"],
    "imat_sn143": _SPINENET + _TPU_NORM + ['model.backbone.spinenet.model_id="143"',
                                           "model.backbone.spinenet.activation=relu"],
}

# Variables and values of the reference's backbone + FPN (graphs built at 256x256).
REFERENCE_SIZES = {
    "fp_r50fpn": (301, 27_434_944),
    "fp_r101fpn": (556, 46_479_296),
    "fp_sn49": (650, 21_920_192),
    "fp_sn96": (885, 36_385_728),
    "fp_sn143": (1120, 60_413_888),
    "imat_sn143": (1120, 60_413_888),
}

TOLERANCE = 1e-4  # of each level's largest reference magnitude, beyond the storage rounding


def _sections(config):
    return (config.backbone, config.fpn, config.norm)


def backbone_config(arch: str):
    """The preset's model config when there is one (its backbone settings checked against
    BACKBONE_SETTINGS), otherwise the defaults with BACKBONE_SETTINGS; float32 in both, as
    the fixtures ran the reference (a preset may train in bfloat16)."""
    if arch not in preset_names():
        return load_config(None, BACKBONE_SETTINGS[arch] + ["model.bfloat16=false"]).model
    config = load_config(arch, ["model.bfloat16=false"]).model
    wanted = load_config(arch, BACKBONE_SETTINGS[arch] + ["model.bfloat16=false"]).model
    assert _sections(config) == _sections(wanted), f"preset {arch}: backbone settings differ"
    return config


def _backbone_and_features(config, images):
    parts = build_parts(config)
    backbone, fpn = parts["backbone"], parts["fpn"]
    fpn(backbone(images, training=False), training=False)
    return backbone, fpn


def _our_variables(backbone, fpn):
    variables = backbone.variables + fpn.variables
    names = [variable.name.split(":")[0] for variable in variables]
    assert all(name.split("/")[0] in ("backbone", "fpn") for name in names), names[:3]
    return variables, names


@pytest.mark.parametrize("arch", sorted(BACKBONE_SETTINGS))
def test_our_backbone_has_the_reference_variables(arch):
    """Every variable of ours pairs with one the reference makes, of the same shape, and
    together they are as many, with as many values, as the reference's."""
    config = backbone_config(arch)
    images = tf.zeros([1, 128, 128, 3])
    backbone, fpn = _backbone_and_features(config, images)
    variables, names = _our_variables(backbone, fpn)
    pairs = expected_pairs(config)
    reference = dict((ref, None) for _, ref in pairs)
    assert len(reference) == len(pairs) == len(variables) == REFERENCE_SIZES[arch][0]
    shapes = {name: tuple(variable.shape) for name, variable in zip(names, variables)}
    assert sorted(ours for ours, _ in pairs) == sorted(shapes)
    reference_shapes = {ref: shapes[ours] for ours, ref in pairs}
    mapping, unmatched_ours, unmatched_reference = map_backbone(
        reference_shapes, list(shapes.items()), config)
    assert not unmatched_ours and not unmatched_reference and len(mapping) == len(pairs)
    assert sum(int(np.prod(shape)) for shape in shapes.values()) == REFERENCE_SIZES[arch][1]


def test_map_backbone_reports_instead_of_guessing():
    """A shape that differs, or a name the layout does not make, stays unmatched."""
    config = backbone_config("fp_r50fpn")
    ours = [("backbone/stem_conv/kernel", (7, 7, 3, 64)), ("fpn/bn_p3/gamma", (256,)),
            ("rpn_head/conv/kernel", (3, 3, 256, 256))]
    reference = {"resnet50/conv2d/kernel": (7, 7, 3, 32), "fpn/p3-bn/gamma": (256,),
                 "resnet50/conv2d_999/kernel": (1, 1, 8, 8), "rpn/conv/kernel": (1,)}
    mapping, unmatched_ours, unmatched_reference = map_backbone(reference, ours, config)
    assert mapping == {"fpn/bn_p3/gamma": "fpn/p3-bn/gamma"}
    assert unmatched_ours == ["backbone/stem_conv/kernel"]
    assert unmatched_reference == ["resnet50/conv2d/kernel", "resnet50/conv2d_999/kernel"]


@pytest.mark.parametrize("arch", sorted(BACKBONE_SETTINGS))
def test_features_equal_the_reference(arch):
    directory = FIXTURES / arch
    if not (directory / "reference.npz").exists():
        pytest.skip(f"no reference fixture {directory}")
    with open(directory / "variables.json") as stream:
        spec = json.load(stream)
    reference = {name: tuple(shape) for name, shape in spec["variables"]}
    data = np.load(directory / "reference.npz")
    config = backbone_config(arch)
    images = tf.constant(data["images"], tf.float32)
    backbone, fpn = _backbone_and_features(config, images)
    variables, names = _our_variables(backbone, fpn)
    mapping, unmatched_ours, unmatched_reference = map_backbone(
        reference, [(name, tuple(v.shape)) for name, v in zip(names, variables)], config)
    assert not unmatched_ours and not unmatched_reference
    values = seeded_weights(spec["seed"], [(mapping[name], reference[mapping[name]])
                                           for name in names], spec.get("logit_scales", {}))
    for name, variable in zip(names, variables):
        variable.assign(values[mapping[name]])
    features = fpn(backbone(images, training=False), training=False)
    levels = range(config.fpn.min_level, config.fpn.max_level + 1)
    assert sorted(features) == list(levels)
    for level in levels:
        expected = data[f"features_{level}"]
        ours = features[level].numpy()
        assert ours.shape == expected.shape, level
        scale = float(np.abs(expected).max())
        # Stored float16 features are the reference's rounded to half an ulp of each value.
        stored = np.finfo(expected.dtype).eps / 2 if expected.dtype != np.float32 else 0.0
        expected = expected.astype(np.float32)
        excess = np.abs(ours - expected) - stored * np.abs(expected)
        worst = float(excess.max())
        assert worst <= TOLERANCE * scale, (
            f"{arch} level {level}: max abs difference beyond storage rounding {worst:.4g}, "
            f"scale {scale:.4g}")
