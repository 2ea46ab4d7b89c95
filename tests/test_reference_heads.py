"""Our heads (RPN, proposals, RoIAlign, box head, post-processing, mask and attribute
heads) against the reference implementations' outputs on the same features.

Each fixture (tests/fixtures/reference/<arch>/, written from a reference run) holds
the reference's multilevel features, its per-stage outputs and the recipe of its
stand-in weights (seed, variable names and shapes, logit scales). The weights are
regenerated here, mapped onto our variables by ``map_heads``, and our heads are fed
the reference's features. Needs neither the reference code nor a GPU.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from model.checkpoint_import.head_names import REFERENCE_SCOPES, is_head_variable, map_heads
from model.checkpoint_import.seeded_weights import seeded_weights
from model.config.loader import load_config
from model.modeling.factory import build_model
from tests import reference_fixtures as fixtures
from tests.reference_fixtures import assert_targets, match_detections

# Heads-only fixtures (seeded noise features, small; tools/reference_heads_fixtures.py).
HEADS_FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "reference_heads")
# The preset of each family's heads, for tests without a fixture.
FAMILY_PRESETS = {"tpu_fashionpedia": "fp_r50fpn", "fork_imat": "imat_sn143"}


def fixture_dirs():
    found = [os.path.join(fixtures.ROOT, arch) for arch in fixtures.architectures()]
    if os.path.isdir(HEADS_FIXTURES):
        found += [os.path.join(HEADS_FIXTURES, name) for name in sorted(os.listdir(HEADS_FIXTURES))]
    return [path for path in found if os.path.exists(os.path.join(path, "reference.npz"))]


def head_config(architecture, heads_overrides=()):
    """The architecture's preset (so the presets are what is tested) with the fixture's own
    overrides, in float32 as the reference runs were."""
    return load_config(architecture, ["model.bfloat16=false", *heads_overrides]).model


def our_heads(fixture_dir):
    """(model with the fixture's weights in its heads, reference arrays, metadata)."""
    with open(os.path.join(fixture_dir, "variables.json")) as stream:
        meta = json.load(stream)
    reference = dict(np.load(os.path.join(fixture_dir, "reference.npz")))
    config = head_config(meta["architecture"], meta.get("heads_overrides", []))
    size = int(meta["image_size"])
    model = build_model(config, size)
    levels = range(config.fpn.min_level, config.fpn.max_level + 1)
    features = {level: tf.constant(reference[f"features_{level}"], tf.float32) for level in levels}
    image_info = tf.constant(reference["image_info"], tf.float32)
    model.infer_from_features(features, image_info)  # makes the head variables
    shapes = {name: tuple(shape) for name, shape in meta["variables"]}
    ours = [(variable.name.split(":")[0], tuple(variable.shape)) for variable in model.variables]
    mapping, unmatched_ours, unmatched_reference = map_heads(shapes, ours, config)
    unmatched_reference = [name for name in unmatched_reference
                           if is_head_variable(name, REFERENCE_SCOPES)]
    assert not unmatched_ours and not unmatched_reference, (unmatched_ours, unmatched_reference)
    values = seeded_weights(int(meta["seed"]), [(name, shapes[name]) for name in mapping.values()],
                            meta.get("logit_scales", {}))
    for variable in model.variables:
        name = variable.name.split(":")[0]
        if name in mapping:
            variable.assign(values[mapping[name]])
    return model, features, image_info, reference, meta


def compare(fixture_dir):
    """Measured differences per stage (asserted against the targets by the test)."""
    model, features, image_info, reference, meta = our_heads(fixture_dir)
    outputs = model.infer_from_features(features, image_info, intermediates=True)
    result = {}
    rpn = outputs["rpn"]
    result["rpn"] = max(max(np.abs(rpn["scores"][level].numpy()
                                   - reference[f"rpn_scores_{level}"]).max(),
                            np.abs(rpn["boxes"][level].numpy()
                                   - reference[f"rpn_boxes_{level}"]).max())
                        for level in rpn["scores"])

    # Proposals: the valid reference ones, in order (unused slots score -1 or 0).
    rois = outputs["proposals"]["rois"].numpy()
    roi_scores = outputs["proposals"]["roi_scores"].numpy()
    worst_box, worst_score, unmatched = 0.0, 0.0, 0
    for image in range(rois.shape[0]):
        count = int((reference["roi_scores"][image] > 0).sum())
        ours_count = int((roi_scores[image] > 0).sum())
        result.setdefault("proposal_counts", []).append((count, ours_count))
        # Nearest of ours by coordinates (boxes clipped flat at the border have no IoU).
        distance = np.abs(reference["rois"][image][:count, None, :]
                          - rois[image][None, :ours_count, :]).max(axis=-1)
        # Among our boxes within 0.01 pixel (several proposals can be the same clipped box),
        # the one with the closest score.
        score_gap = np.abs(reference["roi_scores"][image][:count, None]
                           - roi_scores[image][None, :ours_count])
        best = np.where(distance <= 0.01, score_gap, 1e9 + distance).argmin(axis=1)
        unmatched += int((distance.min(axis=1) > 0.01).sum())
        worst_box = max(worst_box, distance.min(axis=1).max())
        worst_score = max(worst_score, np.abs(reference["roi_scores"][image][:count]
                                              - roi_scores[image][best]).max())
        result.setdefault("proposals_same_order", []).append(
            bool(np.all(best == np.arange(count))))
    result.update(proposal_box=worst_box, proposal_score=worst_score,
                  proposals_unmatched=unmatched)

    # The box head on the reference's RoIs.
    # The box head on the reference's first 128 RoIs (all would take long on CPUs).
    batch, count = reference["rois"].shape[0], min(128, reference["rois"].shape[1])
    box = model.box_outputs(features, tf.constant(reference["rois"][:, :count]))
    # Class logits relative to their scale (a seeded class layer may scale them to ~1e3).
    scale = max(1.0, float(np.abs(reference["box_class_outputs"][:, :count]).max()))
    result["box_class"] = np.abs(box["class_logits"].numpy()
                                 - reference["box_class_outputs"][:, :count]).max() / scale
    result["box_deltas"] = np.abs(box["box_deltas"].numpy().reshape(batch, count, -1)
                                  - reference["box_box_outputs"][:, :count]).max()
    if "box_attribute_outputs" in reference:
        result["box_attributes"] = np.abs(box["attribute_logits"].numpy()
                                          - reference["box_attribute_outputs"][:, :count]).max()

    # Detections: every reference one with score >= 0.05 has a counterpart of ours.
    detections = {key: value.numpy() for key, value in outputs["detections"].items()}
    result.update(match_detections(reference, detections))
    return result


@pytest.mark.parametrize("fixture_dir", fixture_dirs(),
                         ids=lambda path: "/".join(path.split(os.sep)[-2:]))
def test_heads_reproduce_reference(fixture_dir):
    with open(os.path.join(fixture_dir, "variables.json")) as stream:
        exact = json.load(stream).get("features_exact_float16", False)
    with np.load(os.path.join(fixture_dir, "reference.npz")) as stored:
        exact = exact or stored["features_3"].dtype == np.float32
    result = compare(fixture_dir)
    assert_targets(result)  # the detections' targets hold for every fixture
    if not exact:
        # Features stored rounded (float16) move the RPN logits by ~1e-3 and with them the
        # proposals' order; the stages before the detections are only equal on the exact
        # features the reference heads read.
        return
    assert result["rpn"] < 1e-3, result
    assert result["proposals_unmatched"] == 0, result
    assert result["proposal_box"] < 0.01 and result["proposal_score"] < 1e-4, result
    assert result["box_class"] < 1e-3 and result["box_deltas"] < 1e-3, result
    assert result.get("box_attributes", 0.0) < 1e-3, result


def test_map_heads_covers_every_head_variable():
    """Shapes and names alone (no fixture): every reference head variable of both families
    maps to one of ours, none of ours left."""
    for family, attribute_scope in (("tpu_fashionpedia", None), ("fork_imat", "attributes_head")):
        config = head_config(FAMILY_PRESETS[family])
        reference = _reference_head_shapes(config, attribute_scope)
        model = build_model(config, 128)
        features = {level: tf.zeros([1, 128 // 2 ** level, 128 // 2 ** level, 256])
                    for level in range(3, 8)}
        model.infer_from_features(features, tf.constant([[[128, 128], [128, 128], [1, 1], [0, 0]]],
                                                        tf.float32))
        ours = [(v.name.split(":")[0], tuple(v.shape)) for v in model.variables]
        mapping, unmatched_ours, unmatched_reference = map_heads(reference, ours, config)
        assert not unmatched_ours and not unmatched_reference, (unmatched_ours, unmatched_reference)
        assert len(mapping) == len(reference) == len(set(mapping.values()))


def _reference_head_shapes(config, attribute_scope):
    """The reference graphs' head variables (names as tf.layers makes them)."""
    shapes, bn = {}, lambda scope, c: {f"{scope}/{p}": (c,) for p in
                                       ("gamma", "beta", "moving_mean", "moving_variance")}
    shapes.update({"rpn_head/rpn/kernel": (3, 3, 256, 256), "rpn_head/rpn/bias": (256,),
                   "rpn_head/rpn-class/kernel": (1, 1, 256, 3), "rpn_head/rpn-class/bias": (3,),
                   "rpn_head/rpn-box/kernel": (1, 1, 256, 12), "rpn_head/rpn-box/bias": (12,)})
    for level in range(3, 8):
        shapes.update(bn(f"rpn_head/rpn-l{level}-bn", 256))
    for scope, prefix in (("fast_rcnn_head", "conv_"), ("mask_head", "mask-conv-l"),
                          ("attributes_head", "conv_")):
        if scope == "attributes_head" and attribute_scope is None:
            continue
        for i in range(4):
            shapes[f"{scope}/{prefix}{i}/kernel"] = (3, 3, 256, 256)
            shapes[f"{scope}/{prefix}{i}/bias"] = (256,)
            shapes.update(bn(f"{scope}/batch_normalization" + (f"_{i}" if i else ""), 256))
    shapes.update({"fast_rcnn_head/fc6/kernel": (12544, 1024), "fast_rcnn_head/fc6/bias": (1024,),
                   "fast_rcnn_head/class-predict/kernel": (1024, 47),
                   "fast_rcnn_head/class-predict/bias": (47,),
                   "fast_rcnn_head/box-predict/kernel": (1024, 188),
                   "fast_rcnn_head/box-predict/bias": (188,),
                   "mask_head/conv5-mask/kernel": (2, 2, 256, 256),
                   "mask_head/conv5-mask/bias": (256,),
                   "mask_head/mask_fcn_logits/kernel": (1, 1, 256, 47),
                   "mask_head/mask_fcn_logits/bias": (47,)})
    shapes.update(bn("fast_rcnn_head/batch_normalization_4", 1024))
    shapes.update(bn("mask_head/batch_normalization_4", 256))
    if attribute_scope is None:
        shapes.update({"fast_rcnn_head/attribute-predict/kernel": (1024, 294),
                       "fast_rcnn_head/attribute-predict/bias": (294,)})
    else:
        shapes.update({"attributes_head/fc6/kernel": (50176, 1024),
                       "attributes_head/fc6/bias": (1024,),
                       "attributes_head/attributes-predict/kernel": (1024, 341),
                       "attributes_head/attributes-predict/bias": (341,)})
        shapes.update(bn("attributes_head/batch_normalization_4", 1024))
    return shapes


def test_reference_switches_train_and_infer_on_tiny():
    """The tiny preset with every reference switch on trains (finite losses, attributes from
    the box features) and predicts; the attribute head is the box head's dense layer."""
    from model.maskrcnn_losses import total_losses
    config = load_config("tiny", [
        "model.rpn.use_bn=true", "model.rpn.conv_bias_with_bn=true", "model.rpn.activation=swish",
        "model.rpn.proposal_style=tpu", "model.box_head.use_bn=true",
        "model.box_head.conv_bias_with_bn=true", "model.box_head.activation=swish",
        "model.mask_head.use_bn=true", "model.mask_head.conv_bias_with_bn=true",
        "model.mask_head.deconv_bn=true", "model.mask_head.activation=swish",
        "model.attribute_head.placement=box_features", "model.roi_align.type=tpu",
        "model.postprocess.box_coding=pixel_plus_one"]).model
    model = build_model(config, 128)
    images = tf.random.stateless_normal([2, 128, 128, 3], [1, 2])
    image_info = tf.constant([[[128, 128], [128, 128], [1, 1], [0, 0]]] * 2, tf.float32)
    labels = {
        "gt_boxes": tf.constant([[[10, 12, 70, 90], [40, 30, 120, 100], [-1, -1, -1, -1]]] * 2,
                                tf.float32),
        "gt_classes": tf.constant([[1, 3, -1]] * 2, tf.int32),
        "gt_is_crowd": tf.zeros([2, 3], tf.bool),
        "gt_masks": tf.ones([2, 3, 56, 56], tf.float32),
        "gt_attributes": tf.one_hot([[2, 5, 0]] * 2, config.num_attributes),
    }
    terms = total_losses(model(images, image_info, labels, training=True), config,
                         model.trainable_variables)
    assert all(np.isfinite(float(value)) for value in terms.values()) and "attribute_loss" in terms
    detections = model(images, image_info, training=False)["detections"]
    assert detections["attribute_probabilities"].shape == (2, 20, config.num_attributes)
    names = {v.name.split(":")[0].split("/", 1)[-1] for v in model.variables}
    assert "box_head/attribute_logits/kernel" in names and "mask_head/deconv_bn/gamma" in names
    assert not any(name.startswith("attribute_head/") for name in names)


def test_class_nms_orders_corners_per_problem_as_separate_calls_do():
    """Inverted boxes (pixel_plus_one decoding of tiny boxes): the folded class NMS keeps
    what one tf.image.non_max_suppression_padded call per (image, class) keeps."""
    from model.modeling.postprocess import DetectionSettings, padded_class_nms
    rng = np.random.default_rng(3)
    corners = rng.uniform(0, 20, [2, 40, 3, 4]).astype(np.float32)
    boxes = np.concatenate([np.minimum(corners[..., :2], corners[..., 2:]),
                            np.maximum(corners[..., :2], corners[..., 2:])], axis=-1)
    boxes[0, :, 1, 3] = boxes[0, :, 1, 1] - 0.5  # class 2 of image 0: every box inverted in x
    boxes[1, 5:, 0, 2] = boxes[1, 5:, 0, 0] - 0.3  # some of class 1 of image 1 inverted in y
    probabilities = rng.uniform(0, 1, [2, 40, 3]).astype(np.float32)
    settings = DetectionSettings(pre_nms_top_k=40, score_threshold=0.05, nms_iou=0.5,
                                 max_detections=60)
    ours = padded_class_nms(tf.constant(boxes), tf.constant(probabilities), settings)
    for image in range(2):
        expected = []
        for cls in range(3):
            scores, order = tf.math.top_k(probabilities[image, :, cls], k=40)
            kept, valid = tf.image.non_max_suppression_padded(
                tf.gather(boxes[image, :, cls], order), scores, 60, iou_threshold=0.5,
                score_threshold=0.05, pad_to_max_output_size=True)
            expected += [(float(scores[i]), cls + 1) for i in kept.numpy()[:int(valid)]]
        expected = sorted(expected, key=lambda item: -item[0])[:60]
        count = int(ours["num_detections"][image])
        got = list(zip(ours["scores"][image].numpy()[:count].tolist(),
                       ours["classes"][image].numpy()[:count].tolist()))
        assert got == [(pytest.approx(score), cls) for score, cls in expected]
