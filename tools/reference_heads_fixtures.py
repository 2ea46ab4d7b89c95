"""Writes a heads-only reference fixture for tests/test_reference_heads.py.

  python tools/reference_heads_fixtures.py --family tpu --reference DIR --out OUT
      [--activation relu|swish] [--image_size 128] [--proposals 200] [--seed 13]
      [--features_from FIXTURE_DIR]

Builds the reference's heads alone (no backbone) in tf.compat.v1 graph mode from a copy
of the reference detection code at DIR (tensorflow/tpu's models/official/detection for
``--family tpu``, the iMaterialist fork's tf_tpu_models/official/detection for
``--family fork``): the RPN head, ROIGenerator, multilevel_crop_and_resize, the
Fast R-CNN head (tensorflow/tpu: Fashionpedia's, with the attribute dense), the detection
generator, the Mask R-CNN head and (fork) the attributes head on the mask RoIs, with the
Fashionpedia settings (47 classes; aspect ratios [1, 2, 0.5], anchor size 3; 4 convs + 1 fc
box head; sync batch norm, momentum 0.99, epsilon 1e-3). Features are seeded normal noise
for levels 3-7 (256 channels); weights are ``seeded_weights`` of the graph's variables.
With --features_from, the features, image_info, seed and logit scales are those of a
full-model fixture (tests/fixtures/reference/<arch>/), so the heads alone are rerun on
exactly the features stored there; float16 ones are written back as the same float16
values ("features_exact_float16": the reference heads ran on exactly them).

OUT/variables.json and OUT/reference.npz follow the fixture format of
tests/fixtures/reference/ (features_L, rpn_scores_L, rpn_boxes_L, rois, roi_scores,
box_*_outputs, detection_*); variables.json adds "heads_overrides", the config overrides
our side needs for the fixture's proposal counts.
"""
import argparse
import json
import os
import sys
import types

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 47
LOGIT_SCALES = {r"class-predict": 1.5, r"rpn-class": 3.0, r"rpn-box/": 0.1,
                r"box-predict/": 0.5, r"mask_fcn_logits": 2.0, r"attribute": 2.0}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--family", choices=("tpu", "fork"), required=True)
    parser.add_argument("--reference", required=True, help="the reference's official/detection")
    parser.add_argument("--out", required=True)
    parser.add_argument("--activation", default="relu", choices=("relu", "swish"))
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--proposals", type=int, default=200)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--features_from", help="a full-model fixture directory")
    args = parser.parse_args(argv)
    logit_scales, stored = LOGIT_SCALES, None
    if args.features_from:
        with open(os.path.join(args.features_from, "variables.json")) as stream:
            source = json.load(stream)
        stored = np.load(os.path.join(args.features_from, "reference.npz"))
        args.seed, args.image_size = int(source["seed"]), int(source["image_size"])
        logit_scales = source["logit_scales"]
    sys.path.insert(0, os.path.abspath(args.reference))
    import tensorflow.compat.v1 as tf  # noqa: E402  (graph mode for the reference)
    tf.disable_v2_behavior()
    from dataloader import anchor  # noqa: E402  (the reference's modules)
    from modeling.architecture import heads, nn_ops  # noqa: E402
    from ops import roi_ops, spatial_transform_ops  # noqa: E402
    if args.family == "tpu":
        from projects.fashionpedia.modeling.architecture import fast_rcnn_head  # noqa: E402
        from projects.fashionpedia.ops import postprocess_ops  # noqa: E402
    else:
        from ops import postprocess_ops  # noqa: E402
    sys.path.insert(1, REPO_ROOT)  # this repository, after the reference's modules
    from model.checkpoint_import.seeded_weights import seeded_weights

    size, batch, channels, act = args.image_size, 2, 256, args.activation
    num_attributes = 294 if args.family == "tpu" else 341
    ns = types.SimpleNamespace
    with tf.Graph().as_default():
        rng = np.random.default_rng(args.seed)
        features_np = {level: rng.normal(0, 1, [batch, size // 2 ** level, size // 2 ** level,
                                               channels]).astype(np.float32)
                       for level in range(3, 8)}
        info_np = np.array([[[size, size], [size - 26, size - 6], [1, 1], [0, 0]],
                            [[size, size], [size, size - 56], [1, 1], [0, 0]]], np.float32)
        if stored is not None:
            features_np = {level: stored[f"features_{level}"].astype(np.float32)
                           for level in range(3, 8)}
            info_np = stored["image_info"].astype(np.float32)
        features = {level: tf.constant(value) for level, value in features_np.items()}
        info = tf.constant(info_np)
        bn = nn_ops.BatchNormActivation(momentum=0.99, epsilon=0.001, use_sync_bn=True,
                                        activation=act)
        anchors = anchor.Anchor(3, 7, 1, [1.0, 2.0, 0.5], 3.0, [size, size]).multilevel_boxes
        anchors = {level: tf.tile(boxes[None], [batch, 1, 1]) for level, boxes in anchors.items()}
        rpn_scores, rpn_boxes = heads.RpnHead(3, 7, 3, 1, 256, False, act, True,
                                              batch_norm_activation=bn)(features, False)
        k = args.proposals
        generator = roi_ops.ROIGenerator(ns(
            rpn_pre_nms_top_k=k, rpn_post_nms_top_k=k, rpn_nms_threshold=0.7,
            rpn_score_threshold=0.0, rpn_min_size_threshold=0.0, test_rpn_pre_nms_top_k=k,
            test_rpn_post_nms_top_k=k, test_rpn_nms_threshold=0.7, test_rpn_score_threshold=0.0,
            test_rpn_min_size_threshold=0.0, use_batched_nms=False))
        rois, roi_scores = generator(rpn_boxes, rpn_scores, anchors, info[:, 1, :], False)
        roi_features = spatial_transform_ops.multilevel_crop_and_resize(features, rois,
                                                                        output_size=7)
        postprocess = ns(apply_nms=True, use_batched_nms=False, max_total_size=100,
                         nms_iou_threshold=0.5, score_threshold=0.05, pre_nms_num_boxes=1000)
        if args.family == "tpu":
            classes, attributes, boxes = fast_rcnn_head.FastrcnnHead(
                NUM_CLASSES, num_attributes, 4, 256, False, 1, 1024, act, True,
                batch_norm_activation=bn)(roi_features, False)
            detections = postprocess_ops.GenericDetectionGenerator(postprocess)(
                boxes, classes, attributes, rois, info[:, 1:2, :])
        else:
            classes, boxes = heads.FastrcnnHead(NUM_CLASSES, 4, 256, False, 1, 1024, act, True,
                                                batch_norm_activation=bn)(roi_features, False)
            detections = postprocess_ops.GenericDetectionGenerator(postprocess)(
                boxes, classes, rois, info[:, 1:2, :])
        mask_features = spatial_transform_ops.multilevel_crop_and_resize(
            features, detections["detection_boxes"], output_size=14)
        masks = heads.MaskrcnnHead(NUM_CLASSES, 28, 4, 256, False, act, True,
                                   batch_norm_activation=bn)(
            mask_features, tf.cast(detections["detection_classes"], tf.int32), False)
        outputs = {f"rpn_scores_{level}": value for level, value in rpn_scores.items()}
        outputs.update({f"rpn_boxes_{level}": value for level, value in rpn_boxes.items()})
        outputs.update(rois=rois, roi_scores=roi_scores, box_class_outputs=classes,
                       box_box_outputs=boxes, detection_boxes=detections["detection_boxes"],
                       detection_scores=detections["detection_scores"],
                       detection_classes=detections["detection_classes"],
                       num_detections=detections["num_detections"],
                       detection_masks=tf.nn.sigmoid(masks))
        if args.family == "tpu":
            outputs["box_attribute_outputs"] = attributes
            outputs["detection_attributes"] = detections["detection_attributes"]
        else:
            logits = heads.AttributesHead(num_attributes, 4, 256, False, 1, 1024, act, True,
                                          batch_norm_activation=bn)(mask_features, False)
            outputs["detection_attributes"] = tf.nn.sigmoid(logits)
        variables = [(v.op.name, v.shape.as_list()) for v in tf.global_variables()]
        values = seeded_weights(args.seed, variables, logit_scales)
        with tf.Session() as session:
            for variable in tf.global_variables():
                variable.load(values[variable.op.name], session)
            result = session.run(outputs)
    result = {key: np.asarray(value) for key, value in result.items()}
    result["detection_classes"] = result["detection_classes"].astype(np.int32)
    result["num_detections"] = result["num_detections"].astype(np.int32)
    # The features exactly as the reference heads got them (a float16 source stays float16).
    storage = stored["features_3"].dtype if stored is not None else np.float32
    result.update({f"features_{level}": value.astype(storage)
                   for level, value in features_np.items()})
    result["image_info"] = info_np
    os.makedirs(args.out, exist_ok=True)
    np.savez_compressed(os.path.join(args.out, "reference.npz"), **result)
    family = {"tpu": "tpu_fashionpedia", "fork": "fork_imat"}[args.family]
    architecture = {"tpu": "fp_sn49" if act == "swish" else "fp_r50fpn",
                    "fork": "imat_sn143"}[args.family]
    meta = {"architecture": architecture, "family": family, "image_size": size,
            "seed": args.seed, "logit_scales": logit_scales, "variables": variables,
            "features_exact_float16": stored is not None and storage == np.float16,
            "heads_overrides": [f"model.rpn.test_pre_nms_top_k={k}",
                                f"model.rpn.test_post_nms_top_k={k}"],
            "notes": ("heads only on the features of " + args.features_from if args.features_from
                      else "heads only: seeded noise features, no backbone, no images")
                     + " (tools/reference_heads_fixtures.py)"}
    with open(os.path.join(args.out, "variables.json"), "w") as stream:
        json.dump(meta, stream, indent=1)
    print(args.out, "detections per image", result["num_detections"],
          "above 0.05:", (result["detection_scores"] >= 0.05).sum(axis=1))


if __name__ == "__main__":
    main()
