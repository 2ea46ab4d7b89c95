"""Reference fixtures: run the published Attribute-Mask R-CNN code on stand-in weights and
record every stage, so the project's checkpoint import can be checked against it.

The reference code is NOT part of this project and nothing of it is copied here. This script
imports it from a checkout given on the command line:

* ``--tpu_repo``: a checkout of tensorflow/tpu (the directory holding ``models/``; it needs
  ``models/official/detection``, ``models/official/efficientnet`` and ``models/hyperparameters``)
  for the ``fp_*`` architectures (projects/fashionpedia, Attribute-Mask R-CNN);
* ``--fork_repo``: a checkout of hrsma2i/kaggle-imaterialist2020-model (the directory holding
  ``tf_tpu_models/`` and ``configs/``) for ``imat_sn143``.

The two code bases share top-level module names (``modeling``, ``ops``, ``utils``,
``dataloader``), so one process runs one architecture.

Three things the reference code needs on current TensorFlow / PyYAML are applied by
MONKEYPATCHING AT RUNTIME (the checkout is never edited or copied):

* ``eval.skip_eval_loss`` (False) is added to the Fashionpedia config template dict
  (``projects.fashionpedia.configs.model_config.CFG``) before the config is generated;
* ``yaml.load`` gets ``Loader=yaml.FullLoader`` when it is called without a loader (the fork's
  ``hyperparameters/params_dict.py`` calls it so);
* ``official/efficientnet`` is put AFTER ``official/detection`` on ``sys.path``.

What it does, per architecture: builds the reference model with the reference's own model class
in ``tf.compat.v1`` graph mode for PREDICT at ``--image_size`` (256; use_bfloat16 False, use_tpu
False, parser output_size overridden), preprocesses the fixture photos with the reference's own
input functions (``utils.input_utils.normalize_image`` and ``resize_and_crop_image`` as in the
reference's inference.py / Segmentor), lists the graph's global variables in creation order,
fills them with ``model.checkpoint_import.seeded_weights.seeded_weights(seed, variables,
logit_scales)`` from this repository, saves them with ``tf.compat.v1.train.Saver`` and checks
that ``model.checkpoint_import.checkpoint_io.variable_shapes`` of that checkpoint equals the
variable list, then runs the graph and writes to ``--output``:

* ``variables.json``: architecture, family, reference repo and commit, config file and overrides,
  image size, seed, logit_scales, variables [[name, shape], ...], images, notes;
* ``config.yaml``: the reference YAML file, byte for byte (the overrides are in variables.json);
* ``reference.npz``: images, image_info, features_L, rpn_scores_L, rpn_boxes_L, rois, roi_scores,
  box_class_outputs, box_box_outputs, box_attribute_outputs (tpu only), detection_boxes,
  detection_scores, detection_classes, num_detections, detection_masks, detection_attributes.

Regenerating the fixtures (from the repository root, with the project's venv, which has
TensorFlow; one process per architecture; the seeds and scales are in ARCHITECTURE_WEIGHTS)::

    for arch in fp_r50fpn fp_r101fpn fp_sn49 fp_sn96 fp_sn143; do
      python tools/reference_fixtures.py --tpu_repo /path/to/tensorflow-tpu \\
          --tpu_commit 7dc921f846c9e4071f3884b768a7ddf521272a49 \\
          --architecture $arch --output tests/fixtures/reference/$arch
    done
    python tools/reference_fixtures.py --fork_repo /path/to/kaggle-imaterialist2020-model \\
        --fork_commit cb85e5d0ead09a824bbc228cfeefbb51d3c3a23f \\
        --architecture imat_sn143 --output tests/fixtures/reference/imat_sn143

(``--tpu_commit`` / ``--fork_commit`` are only needed when the checkout is not a git work tree;
otherwise ``git rev-parse HEAD`` is recorded.) The photos are read from ``../shared/fixtures``
relative to the repository root unless ``--fixtures_dir`` says otherwise. A run takes 1.5 minutes
(ResNet-50) to 6 minutes (SpineNet-143) on 2 CPU cores.

``--calibrate`` (used to find the factors of fp_r101fpn, fp_sn49, fp_sn96 and fp_sn143) chooses
the feature batch-norm and class-predict factors from the stages themselves (see ``calibrate``)
and records them. It feeds the backbone's batch-norm inputs back in, so TensorFlow's graph
optimiser fuses the ops differently and its outputs differ from a plain run's by float rounding
(about 1e-6 relative); the committed fixtures are plain runs with the factors in
ARCHITECTURE_WEIGHTS.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FASHIONPEDIA_YAML = "models/official/detection/projects/fashionpedia/configs/yaml/"

# architecture -> (family, config file relative to the reference checkout)
ARCHITECTURES = {
    "fp_r50fpn": ("tpu_fashionpedia", FASHIONPEDIA_YAML + "r50fpn_amrcnn.yaml"),
    "fp_r101fpn": ("tpu_fashionpedia", FASHIONPEDIA_YAML + "r101fpn_amrcnn.yaml"),
    "fp_sn49": ("tpu_fashionpedia", FASHIONPEDIA_YAML + "spinenet49_amrcnn.yaml"),
    "fp_sn96": ("tpu_fashionpedia", FASHIONPEDIA_YAML + "spinenet96_amrcnn.yaml"),
    "fp_sn143": ("tpu_fashionpedia", FASHIONPEDIA_YAML + "spinenet143_amrcnn.yaml"),
    "imat_sn143": ("fork_imat", "configs/spinenet/sn143-imat-v2.yaml"),
}

REFERENCE_REPOS = {
    "tpu_fashionpedia": "https://github.com/tensorflow/tpu",
    "fork_imat": "https://github.com/hrsma2i/kaggle-imaterialist2020-model",
}

DEFAULT_IMAGES = [
    "imat2020-photo/00a8764cff12b2e849c850f4be5608bc.jpg",
    "fashionpedia-sample/images/000000009813.jpg",
]

# Stand-in weights per architecture: the seed, and factors for the seeded values of chosen
# variables (regex on the reference variable name; model.checkpoint_import.seeded_weights). They
# were chosen by running this script and looking at the stages it records, so that a randomly
# initialised network gives finite, unit-scale features and confident, varied detections:
# * the backbone's activations grow through the residual blocks (the seeded batch-norm statistics
#   do not normalise them), so the batch-norm scales (gamma) of the layers whose outputs the RPN
#   reads are multiplied down to give features of about unit standard deviation;
# * ReLU features give every RoI nearly the same class logits (a common component about twice
#   the per-RoI variation), so one class wins everywhere. The class-predict bias is multiplied up
#   so that the background class (whose seeded bias is the largest at these seeds) wins on most
#   RoIs, and the kernel so that the per-RoI variation decides the rest: a few tens of
#   detections over two or three categories, scores from 0.05 to 1.
# * the RPN and box-head box deltas are scaled down so that proposals and detections are proper
#   boxes (positive height and width) that move a little from their anchors / proposals;
# * the mask and attribute logits are scaled to spread the sigmoid probabilities.
ARCHITECTURE_WEIGHTS = {
    "fp_r50fpn": (119, {
        r"^fpn/p[3-7]-bn/gamma$": 3e-4,
        r"rpn-class/(kernel|bias)$": 2.0,
        r"rpn-box/(kernel|bias)$": 0.1,
        r"box-predict/(kernel|bias)$": 0.2,
        r"class-predict/kernel$": 30.0,
        r"class-predict/bias$": 2600.0,
        r"attribute-predict/(kernel|bias)$": 1.0,
        r"mask_fcn_logits/(kernel|bias)$": 4.0,
    }),
    "fp_sn49": (119, {
        r"rpn-class/(kernel|bias)$": 2.0,
        r"rpn-box/(kernel|bias)$": 0.1,
        r"box-predict/(kernel|bias)$": 0.2,
        r"attribute-predict/(kernel|bias)$": 1.0,
        r"mask_fcn_logits/(kernel|bias)$": 4.0,
        r"^spinenet/batch_normalization_8/gamma$": 0.0024,
        r"^spinenet/batch_normalization_9/gamma$": 0.0026,
        r"^spinenet/batch_normalization_10/gamma$": 0.001,
        r"^spinenet/batch_normalization_11/gamma$": 0.00054,
        r"^spinenet/batch_normalization_12/gamma$": 0.00054,
        r"class-predict/kernel$": 40.0,
        r"class-predict/bias$": 530.0,
    }),
    "fp_r101fpn": (119, {
        r"rpn-class/(kernel|bias)$": 2.0,
        r"rpn-box/(kernel|bias)$": 0.1,
        r"box-predict/(kernel|bias)$": 0.2,
        r"attribute-predict/(kernel|bias)$": 1.0,
        r"mask_fcn_logits/(kernel|bias)$": 4.0,
        r"^fpn/p3\-bn/gamma$": 4e-07,
        r"^fpn/p4\-bn/gamma$": 4.2e-07,
        r"^fpn/p5\-bn/gamma$": 4.7e-07,
        r"^fpn/p6\-bn/gamma$": 3.5e-07,
        r"^fpn/p7\-bn/gamma$": 3.9e-07,
        r"class-predict/kernel$": 30.0,
        r"class-predict/bias$": 8978.0,
    }),
    "fp_sn96": (119, {
        r"rpn-class/(kernel|bias)$": 2.0,
        r"rpn-box/(kernel|bias)$": 0.1,
        r"box-predict/(kernel|bias)$": 0.2,
        r"attribute-predict/(kernel|bias)$": 1.0,
        r"mask_fcn_logits/(kernel|bias)$": 4.0,
        r"^spinenet/batch_normalization_14/gamma$": 4.4e-05,
        r"^spinenet/batch_normalization_15/gamma$": 4.6e-05,
        r"^spinenet/batch_normalization_16/gamma$": 1.7e-05,
        r"^spinenet/batch_normalization_17/gamma$": 5.8e-06,
        r"^spinenet/batch_normalization_18/gamma$": 6.9e-06,
        r"class-predict/kernel$": 10.0,
        r"class-predict/bias$": 221.0,
    }),
    "fp_sn143": (119, {
        r"rpn-class/(kernel|bias)$": 2.0,
        r"rpn-box/(kernel|bias)$": 0.1,
        r"box-predict/(kernel|bias)$": 0.2,
        r"attribute-predict/(kernel|bias)$": 1.0,
        r"mask_fcn_logits/(kernel|bias)$": 4.0,
        r"^spinenet/batch_normalization_20/gamma$": 8.8e-07,
        r"^spinenet/batch_normalization_21/gamma$": 1.3e-06,
        r"^spinenet/batch_normalization_22/gamma$": 2.8e-07,
        r"^spinenet/batch_normalization_23/gamma$": 1e-07,
        r"^spinenet/batch_normalization_24/gamma$": 9.6e-08,
        r"class-predict/kernel$": 25.0,
        r"class-predict/bias$": 6534.0,
    }),
    "imat_sn143": (119, {
        # SpineNet endpoints (1x1 conv + batch norm + ReLU), levels 3..7 in creation order.
        r"^spinenet/batch_normalization_20/gamma$": 7e-7,
        r"^spinenet/batch_normalization_21/gamma$": 1.1e-6,
        r"^spinenet/batch_normalization_22/gamma$": 2.3e-7,
        r"^spinenet/batch_normalization_23/gamma$": 8e-8,
        r"^spinenet/batch_normalization_24/gamma$": 8e-8,
        r"rpn-box/(kernel|bias)$": 0.1,
        r"box-predict/(kernel|bias)$": 0.2,
        r"class-predict/kernel$": 30.0,
        r"class-predict/bias$": 1300.0,
        r"mask_fcn_logits/(kernel|bias)$": 4.0,
    }),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tpu_repo", help="tensorflow/tpu checkout (holds models/)")
    parser.add_argument("--fork_repo", help="kaggle-imaterialist2020-model checkout")
    parser.add_argument("--tpu_commit", help="commit of --tpu_repo when it is not a git work tree")
    parser.add_argument("--fork_commit", help="commit of --fork_repo when it is not a git work tree")
    parser.add_argument("--architecture", required=True, choices=sorted(ARCHITECTURES))
    parser.add_argument("--output", required=True, help="fixture directory to write")
    parser.add_argument("--fixtures_dir", default=os.path.join(os.path.dirname(REPO_ROOT),
                                                               "shared", "fixtures"))
    parser.add_argument("--images", nargs="+", default=DEFAULT_IMAGES,
                        help="photos relative to --fixtures_dir")
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--seed", type=int, help="replaces the architecture's seed")
    parser.add_argument("--logit_scales", help="JSON {regex: factor} replacing the architecture's")
    parser.add_argument("--float16_features", choices=("auto", "yes", "no"), default="auto",
                        help="store features_L as float16 (auto: when reference.npz > 4 MB)")
    parser.add_argument("--calibrate", action="store_true",
                        help="choose the feature batch-norm and class-predict scales from the "
                             "stages (see calibrate); the chosen scales are recorded")
    parser.add_argument("--summary_only", action="store_true",
                        help="build, run and print the summary; write nothing")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# Importing the reference code

def _patch_yaml_loader():
    import yaml

    if getattr(yaml.load, "_reference_fixtures_patch", False):
        return
    original = yaml.load

    def load(stream, Loader=None):  # noqa: N803 (PyYAML's argument name)
        return original(stream, Loader=Loader or yaml.FullLoader)

    load._reference_fixtures_patch = True
    yaml.load = load


def setup_reference(family, args):
    """Puts the reference code on sys.path and applies the runtime fixes; returns
    (checkout root, official/detection directory, commit)."""
    flag, repo, models_folder, commit = (
        ("--tpu_repo", args.tpu_repo, "models", args.tpu_commit) if family == "tpu_fashionpedia"
        else ("--fork_repo", args.fork_repo, "tf_tpu_models", args.fork_commit))
    if not repo:
        raise SystemExit("%s is required for %s" % (flag, args.architecture))
    root = os.path.abspath(repo)
    models = os.path.join(root, models_folder)
    detection = os.path.join(models, "official", "detection")
    efficientnet = os.path.join(models, "official", "efficientnet")
    for path in (detection, efficientnet, os.path.join(models, "hyperparameters")):
        if not os.path.isdir(path):
            raise SystemExit("the reference checkout lacks %s" % path)
    # official/efficientnet AFTER official/detection: both have modules of the same names.
    sys.path[:0] = [detection, efficientnet, models]
    _patch_yaml_loader()
    if not commit:
        try:
            commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], check=True,
                                    capture_output=True, text=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit = None
    return root, detection, commit


def build_params(family, config_path, image_size):
    """The reference's ParamsDict: its template, the YAML file, then the overrides (returned)."""
    from hyperparameters import params_dict

    if family == "tpu_fashionpedia":
        from projects.fashionpedia.configs import model_config
        from projects.fashionpedia.configs import factory as config_factory

        # Runtime fix: base_model reads params.eval.skip_eval_loss, the template lacks it.
        model_config.CFG["eval"].setdefault("skip_eval_loss", False)
        params = config_factory.config_generator("attribute_mask_rcnn")
        parser_key = "attribute_maskrcnn_parser"
    else:
        from configs import factory as config_factory

        params = config_factory.config_generator("mask_rcnn")
        parser_key = "maskrcnn_parser"
    params = params_dict.override_params_dict(params, config_path, is_strict=True)
    overrides = {
        "use_tpu": False,
        "architecture": {"use_bfloat16": False},
        parser_key: {"output_size": [image_size, image_size]},
    }
    params.override(overrides, is_strict=True)
    params.validate()
    params.lock()
    return params, overrides


def build_model(family, params):
    if family == "tpu_fashionpedia":
        from projects.fashionpedia.modeling import factory as model_factory
    else:
        from modeling import factory as model_factory
    return model_factory.model_generator(params)


def _record_calls(model, attribute, sink):
    """Wraps ``model.<attribute>`` (a callable the model calls once) to keep its output."""
    function = getattr(model, attribute)

    def wrapped(*args, **kwargs):
        output = function(*args, **kwargs)
        sink[attribute] = output
        return output

    setattr(model, attribute, wrapped)


def preprocess_graph(family, params, image_size):
    """(bytes placeholder, image [S,S,3], image_info [4,2]) built with the reference's own input
    functions: decode, normalise, resize keeping the aspect ratio, pad to the stride."""
    import tensorflow.compat.v1 as tf
    from utils import input_utils

    image_bytes = tf.placeholder(shape=(), dtype=tf.string)
    image = tf.io.decode_image(image_bytes, channels=3)
    image.set_shape([None, None, 3])
    image = input_utils.normalize_image(image)
    desired = [image_size, image_size]
    if family == "tpu_fashionpedia":
        padded = desired  # projects/fashionpedia/inference.py
    else:  # kaggle_imaterialist2020_model/segmentor.py
        padded = input_utils.compute_padded_size(desired, 2 ** params.architecture.max_level)
    image, image_info = input_utils.resize_and_crop_image(
        image, desired, padded, aug_scale_min=1.0, aug_scale_max=1.0)
    image.set_shape([padded[0], padded[1], 3])
    return image_bytes, image, image_info



# ---------------------------------------------------------------------------------------------
# Calibration (--calibrate): picks the scales that ARCHITECTURE_WEIGHTS records. It only chooses
# numbers; the fixture is the plain run with the chosen scales (the checkpoint check compares the
# graph's values with seeded_weights of the recorded scales).

def _variable_name(tensor):
    while tensor.op.type in ("Identity", "ReadVariableOp"):
        tensor = tensor.op.inputs[0]
    return tensor.op.name


def _is_variable(tensor):
    while tensor.op.type in ("Identity", "ReadVariableOp"):
        tensor = tensor.op.inputs[0]
    return tensor.op.type in ("VariableV2", "VarHandleOp", "Variable")


def _nearest_batch_norm(tensor):
    """(input tensor, gamma variable name) of the batch norm nearest upstream of ``tensor``
    (through the activation). The reference uses the unfused batch norm: ``scale = gamma *
    rsqrt(variance + epsilon)``, ``x * scale + (beta - mean * scale)``."""
    frontier, seen = [tensor.op], set()
    while frontier:
        op = frontier.pop(0)
        if op.name in seen:
            continue
        seen.add(op.name)
        gammas = [t for t in op.inputs if _is_variable(t) and _variable_name(t).endswith("/gamma")]
        if gammas and op.type != "Identity":
            for consumer in op.outputs[0].consumers():
                others = [t for t in consumer.inputs if t is not op.outputs[0]]
                if len(others) == 1 and not _is_variable(others[0]):
                    return others[0], _variable_name(gammas[0])
        frontier.extend(t.op for t in op.inputs)
    raise RuntimeError("no batch norm upstream of %s" % tensor.name)


def _significant(value, digits=2):
    return float("%.*g" % (digits, value))


def choose_class_scales(logits, bias):
    """(kernel factor, bias factor) for class-predict from its outputs at factor 1: the background
    wins on most proposals, a few tens of proposals per image pass the 0.05 score threshold over
    as many categories as possible, the best scores near 1 (the bounds are relaxed in steps when
    nothing meets them)."""
    kernel_part = logits - bias
    ratios = np.concatenate([np.linspace(0.0, 20.0, 201), np.geomspace(20.0, 3000.0, 1200)])
    trials = []
    for kernel_factor in (5, 10, 15, 20, 25, 30, 40, 50):
        for ratio in ratios:
            z = kernel_factor * (kernel_part + ratio * bias)
            z = z - z.max(-1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(-1, keepdims=True)
            passing = (p[..., 1:] > 0.05).sum(1)            # [image, class]
            trials.append((kernel_factor, ratio, passing.sum(1), int((passing >= 3).sum(1).min()),
                           float(p[..., 1:].max(axis=(1, 2)).min())))
    for low, high, top in ((20, 90, 0.8), (15, 120, 0.5), (10, 150, 0.3), (1, 200, 0.0)):
        fitting = [t for t in trials if t[2].min() >= low and t[2].max() <= high and t[4] >= top]
        if fitting:
            break
    else:
        raise RuntimeError("no class-predict scales give proposals over 0.05")
    kernel_factor, ratio, total, categories, _ = max(
        fitting, key=lambda t: (t[3], -abs(np.log(t[2].mean() / 50.0))))
    print("calibrate: class-predict kernel x%g bias x%g (%s proposals over 0.05; categories with "
          ">= 3: %d)" % (kernel_factor, round(kernel_factor * ratio), total.tolist(), categories),
          flush=True)
    return float(kernel_factor), float(round(kernel_factor * ratio))


def calibrate(args, session, feed, fetch, by_name, seed, logit_scales, min_level, max_level):
    """Sets the feature batch-norm gammas (unit-scale features) and the class-predict factors in
    ``logit_scales`` and loads the new values; returns extra feeds (the batch-norm inputs, so the
    backbone runs once)."""
    from model.checkpoint_import.seeded_weights import seeded_value

    def reload(name):
        variable = by_name[name]
        variable.load(seeded_value(seed, name, variable.shape.as_list(), logit_scales), session)

    norms = {level: _nearest_batch_norm(fetch["features_%d" % level])
             for level in range(min_level, max_level + 1)}
    inputs = session.run({level: norm[0] for level, norm in norms.items()}, feed)
    extra = {norms[level][0]: value for level, value in inputs.items()}
    for level, (_, gamma) in norms.items():
        for pattern in [p for p in logit_scales if re.search(p, gamma)]:
            del logit_scales[pattern]
        reload(gamma)
    stds = session.run({level: fetch["features_%d" % level] for level in norms},
                       {**feed, **extra})
    for level, (_, gamma) in norms.items():
        factor = _significant(1.0 / max(float(np.std(stds[level])), 1e-30))
        logit_scales["^%s$" % re.escape(gamma)] = factor
        reload(gamma)
        print("calibrate: level %d features std %.3g -> %s x%g" % (
            level, float(np.std(stds[level])), gamma, factor), flush=True)

    names = [n for n in by_name if re.search(r"class-predict/(kernel|bias)$", n)]
    for pattern in [p for p in logit_scales
                    if any(re.search(p, n) for n in names)]:
        del logit_scales[pattern]
    for name in names:
        reload(name)
    logits = session.run(fetch["box_class_outputs"], {**feed, **extra})
    bias_name = [n for n in names if n.endswith("bias")][0]
    bias = seeded_value(seed, bias_name, by_name[bias_name].shape.as_list(), logit_scales)
    kernel_factor, bias_factor = choose_class_scales(logits, bias)
    logit_scales[r"class-predict/kernel$"] = kernel_factor
    logit_scales[r"class-predict/bias$"] = bias_factor
    for name in names:
        reload(name)
    print("calibrate: logit_scales %s" % json.dumps(logit_scales), flush=True)
    return extra

# ---------------------------------------------------------------------------------------------

def run(args):
    family, config_file = ARCHITECTURES[args.architecture]
    root, _, commit = setup_reference(family, args)
    config_path = os.path.join(root, config_file)

    sys.path.insert(0, REPO_ROOT)
    from model.checkpoint_import.checkpoint_io import read_tensors, variable_shapes
    from model.checkpoint_import.seeded_weights import seeded_weights

    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    from dataloader import mode_keys

    default_seed, default_scales = ARCHITECTURE_WEIGHTS.get(args.architecture, (1, {}))
    seed = default_seed if args.seed is None else args.seed
    logit_scales = dict(json.loads(args.logit_scales) if args.logit_scales else default_scales)
    params, overrides = build_params(family, config_path, args.image_size)
    min_level, max_level = params.architecture.min_level, params.architecture.max_level
    started = time.time()

    graph = tf.Graph()
    with graph.as_default():
        # Preprocessing: its own small graph part, fed once per photo.
        image_bytes, one_image, one_info = preprocess_graph(family, params, args.image_size)
        padded = one_image.get_shape().as_list()[:2]

        model = build_model(family, params)
        captured = {}
        _record_calls(model, "_fpn_fn", captured)
        _record_calls(model, "_generate_rois_fn", captured)
        images = tf.placeholder(tf.float32, [len(args.images), padded[0], padded[1], 3])
        image_info = tf.placeholder(tf.float32, [len(args.images), 4, 2])
        model_vars_before = len(tf.global_variables())
        outputs = model.build_outputs(images, {"image_info": image_info},
                                      mode=mode_keys.PREDICT)
        variables = tf.global_variables()[model_vars_before:]
        if model_vars_before:
            raise RuntimeError("preprocessing created variables")

        fetch = {}
        for level in range(min_level, max_level + 1):
            fetch["features_%d" % level] = captured["_fpn_fn"][level]
            fetch["rpn_scores_%d" % level] = outputs["rpn_score_outputs"][level]
            fetch["rpn_boxes_%d" % level] = outputs["rpn_box_outputs"][level]
        fetch["rois"], fetch["roi_scores"] = captured["_generate_rois_fn"]
        fetch["box_class_outputs"] = outputs["class_outputs"]
        fetch["box_box_outputs"] = outputs["box_outputs"]
        if family == "tpu_fashionpedia":
            fetch["box_attribute_outputs"] = outputs["attribute_outputs"]
        for key in ("detection_boxes", "detection_scores", "detection_classes",
                    "num_detections", "detection_masks", "detection_attributes"):
            fetch[key] = outputs[key]

        names_shapes = [(v.op.name, tuple(v.shape.as_list())) for v in variables]
        print("%s: graph built in %.0f s, %d variables, %d values" % (
            args.architecture, time.time() - started, len(names_shapes),
            sum(int(np.prod(s)) for _, s in names_shapes)), flush=True)
        values = seeded_weights(seed, names_shapes, logit_scales)
        saver = tf.train.Saver(variables)

        with tf.Session(graph=graph, config=tf.ConfigProto(
                intra_op_parallelism_threads=2, inter_op_parallelism_threads=1)) as session:
            for variable in variables:
                variable.load(values[variable.op.name], session)
            del values

            batch_images, batch_info = [], []
            for relative in args.images:
                with open(os.path.join(args.fixtures_dir, relative), "rb") as f:
                    data = f.read()
                one, info = session.run([one_image, one_info], {image_bytes: data})
                batch_images.append(one)
                batch_info.append(info)
            feed = {images: np.stack(batch_images), image_info: np.stack(batch_info)}

            if args.calibrate:
                by_name = {v.op.name: v for v in variables}
                feed_more = calibrate(args, session, feed, fetch, by_name, seed, logit_scales,
                                      min_level, max_level)
            else:
                feed_more = {}
            result = session.run(fetch, {**feed, **feed_more})

            checkpoint_dir = tempfile.mkdtemp(prefix="reference_ckpt_")
            try:
                prefix = saver.save(session, os.path.join(checkpoint_dir, "model.ckpt"),
                                    write_meta_graph=False)
                saved = variable_shapes(prefix)
                if saved != dict(names_shapes):
                    raise RuntimeError("saved checkpoint differs from the variable list: %s" % (
                        sorted(set(saved.items()) ^ set(names_shapes))[:10],))
                # The values the graph ran with are the seeded values (no calibration drift).
                check = [name for name, _ in names_shapes
                         if re.search(r"(gamma|class-predict/(kernel|bias))$", name)]
                stored = read_tensors(prefix, check)
                expected = seeded_weights(seed, [(n, dict(names_shapes)[n]) for n in check],
                                          logit_scales)
                for name in check:
                    if not np.array_equal(stored[name], expected[name]):
                        raise RuntimeError("checkpoint value of %s is not the seeded value" % name)
            finally:
                shutil.rmtree(checkpoint_dir, ignore_errors=True)
    result["images"] = feed[images]
    result["image_info"] = feed[image_info]
    print("%s: ran in %.0f s" % (args.architecture, time.time() - started), flush=True)

    arrays = {}
    for key, value in result.items():
        value = np.asarray(value)
        if key in ("detection_classes", "num_detections"):
            arrays[key] = value.astype(np.int32)
        else:
            arrays[key] = value.astype(np.float32)
    summary = summarise(args.architecture, names_shapes, arrays)
    if args.summary_only:
        return summary

    notes = []
    if family == "fork_imat":
        notes.append("box_attribute_outputs: not captured, the fork's attribute head runs on the "
                     "14x14 mask RoI features of the detections (detection_attributes), not on "
                     "the proposals.")
    notes.append("rois / roi_scores are the ROIGenerator outputs (proposals after NMS, "
                 "model-input pixels); detection_boxes are model-input pixels too (not divided "
                 "by the image_info scale).")
    notes.append("config.yaml is the reference YAML file unchanged; config_overrides were applied "
                 "on top of it (ParamsDict.override, is_strict).")
    os.makedirs(args.output, exist_ok=True)
    npz_path = os.path.join(args.output, "reference.npz")
    np.savez_compressed(npz_path, **arrays)
    use_float16 = args.float16_features == "yes" or (
        args.float16_features == "auto" and os.path.getsize(npz_path) > 4 * 1024 * 1024)
    if use_float16:
        for key in list(arrays):
            if key.startswith("features_"):
                arrays[key] = arrays[key].astype(np.float16)
        np.savez_compressed(npz_path, **arrays)
        notes.append("features_L are stored as float16 (to keep reference.npz small); "
                     "everything else is float32 / int32.")
    shutil.copyfile(config_path, os.path.join(args.output, "config.yaml"))
    description = {
        "architecture": args.architecture,
        "family": family,
        "reference_repo": REFERENCE_REPOS[family],
        "reference_commit": commit,
        "config_file": config_file,
        "config_overrides": overrides,
        "image_size": args.image_size,
        "seed": seed,
        "logit_scales": logit_scales,
        "variables": [[name, list(shape)] for name, shape in names_shapes],
        "images": list(args.images),
        "levels": [min_level, max_level],
        "summary": summary,
        "notes": notes,
    }
    with open(os.path.join(args.output, "variables.json"), "w") as f:
        f.write(dump_description(description))
    print("%s: wrote %s (reference.npz %.2f MB)" % (
        args.architecture, args.output, os.path.getsize(npz_path) / 1e6), flush=True)
    return summary


def dump_description(description):
    """JSON text with one variable per line (the list is long; the rest is indented)."""
    variables = description["variables"]
    text = json.dumps(dict(description, variables="@VARIABLES@"), indent=1)
    lines = ",\n".join("  " + json.dumps(entry) for entry in variables)
    return text.replace('"@VARIABLES@"', "[\n" + lines + "\n ]") + "\n"


def summarise(architecture, names_shapes, arrays):
    summary = {
        "variables": len(names_shapes),
        "values": int(sum(int(np.prod(shape)) for _, shape in names_shapes)),
        "per_image": [],
    }
    for index, count in enumerate(arrays["num_detections"]):
        count = int(count)
        scores = arrays["detection_scores"][index, :count]
        classes = arrays["detection_classes"][index, :count]
        masks = arrays["detection_masks"][index, :count]
        attributes = arrays["detection_attributes"][index, :count]
        boxes = arrays["detection_boxes"][index, :count]
        rois = arrays["rois"][index]
        summary["per_image"].append({
            "detections": count,
            "min_box_height_width": ([float((boxes[:, 2] - boxes[:, 0]).min()),
                                      float((boxes[:, 3] - boxes[:, 1]).min())] if count else None),
            "min_roi_height_width": [float((rois[:, 2] - rois[:, 0]).min()),
                                     float((rois[:, 3] - rois[:, 1]).min())],
            "score_range": [float(scores.min()), float(scores.max())] if count else None,
            "categories": int(len(set(classes.tolist()))),
            "mask_std": float(masks.std()) if count else None,
            "mask_fraction_over_half": float((masks > 0.5).mean()) if count else None,
            "attribute_range": ([float(attributes.min()), float(attributes.max())]
                                if count else None),
            "attributes_over_half_per_detection": (float((attributes > 0.5).sum(-1).mean())
                                                   if count else None),
        })
    print(json.dumps({architecture: summary}, indent=1), flush=True)
    return summary


def main(argv=None):
    run(parse_args(argv))


if __name__ == "__main__":
    main()
