"""Benchmarks of the model on this machine's CPU (or GPU when TensorFlow sees one).

  python benchmarks/model_step.py [--rows tiny:128,r50fpn:640,r50fpn:1024] [--steps 3]
      [--size_rows sn49:640,sn96:1024,sn143:1280] [--speed_size 640] [--speed_presets sn49]

For each preset:size row of --rows, in a fresh process: seconds per training step
(tf.function, the preset's batch size capped by --max_train_batch), and seconds
per image of the exported SavedModel's image-bytes signature at batch 1 on a
JPEG photo, each the median of --steps runs after one warm-up; plus the
process's peak RSS.

For each row of --size_rows (Mask R-CNN with 91 classes and no attribute head, as
in the SpineNet paper): parameters and counted multiply-adds ("FLOPs" in the
paper's tables) beside the published numbers, and, for --speed_presets, images per
second of a batch-1 inference pass (tf.function) at --speed_size.
"""
import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _photo_bytes() -> bytes:
    photo = os.path.join(REPO, "..", "shared", "fixtures", "imat2020-photo",
                         "00a8764cff12b2e849c850f4be5608bc.jpg")
    if os.path.exists(photo):
        with open(photo, "rb") as stream:
            return stream.read()
    import numpy as np
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1000, 700, 3), np.uint8)).save(
        buffer, format="JPEG")
    return buffer.getvalue()


def _median_seconds(function, steps: int) -> float:
    function()  # warm-up: tracing and first-call allocation
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(preset: str, size: int, steps: int, max_batch: int) -> dict:
    import tensorflow as tf

    from model.config import load_config
    from model.data.augment import identity_image_info
    from model.export import export
    from model.maskrcnn_losses import total_losses
    from model.modeling.factory import build_model

    config = load_config(preset, [f"input.image_size={size}"])
    batch = min(config.train.batch_size, max_batch)
    model = build_model(config.model, size)
    images = tf.random.normal([batch, size, size, 3])
    info = identity_image_info(size, batch)
    instances = config.input.max_num_instances
    crop = config.input.mask_crop_size
    gt_boxes = tf.concat([tf.tile([[[size * 0.1, size * 0.1, size * 0.6, size * 0.5]]], [batch, 1, 1]),
                          -tf.ones([batch, instances - 1, 4])], axis=1)
    labels = {
        "gt_boxes": gt_boxes,
        "gt_classes": tf.concat([tf.ones([batch, 1], tf.int32),
                                 -tf.ones([batch, instances - 1], tf.int32)], axis=1),
        "gt_is_crowd": tf.zeros([batch, instances], tf.bool),
        "gt_masks": tf.ones([batch, instances, crop, crop]),
        "gt_attributes": tf.zeros([batch, instances, config.model.num_attributes]),
    }
    optimizer = tf.keras.optimizers.SGD(0.01, momentum=0.9)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            outputs = model(images, info, labels, training=True)
            loss = total_losses(outputs, config.model, model.trainable_variables)["total_loss"]
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    step_seconds = _median_seconds(lambda: train_step().numpy(), steps)
    with tempfile.TemporaryDirectory() as directory:
        export(config.model, size, directory)
        serving = tf.saved_model.load(directory).signatures["serving_default"]
        photo = tf.constant([_photo_bytes()])
        image_seconds = _median_seconds(lambda: serving(image_bytes=photo), steps)
    return {
        "preset": preset, "size": size, "train_batch": batch,
        "train_step_s": round(step_seconds, 3),
        "export_s_per_image": round(image_seconds, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
    }


# Published Mask R-CNN sizes (TPU detection model zoo, COCO, trained from scratch):
# preset -> (image size, params in millions, multiply-adds in billions).
PUBLISHED = {"sn49": (640, 40.8, 215.7), "sn96": (1024, 55.2, 314.6), "sn143": (1280, 79.2, 498.4)}


def measure_size(preset: str, size: int, speed_size: int, steps: int) -> dict:
    import tensorflow as tf

    from model.config import load_config
    from model.data.augment import identity_image_info
    from model.flops import count_multiply_adds
    from model.modeling.factory import build_model, build_parts, build_variables
    from model.summary import count_parameters

    config = load_config(preset, ["model.num_classes=91", "model.num_attributes=0"]).model
    parts = build_parts(config)
    build_variables(parts, config)
    result = {"preset": preset, "size": size,
              "params": sum(count_parameters(part) for part in parts.values()),
              "backbone_params": count_parameters(parts["backbone"]),
              "multiply_adds": count_multiply_adds(config, size)}
    if speed_size:
        model = build_model(config, speed_size)
        images = tf.random.normal([1, speed_size, speed_size, 3])
        info = identity_image_info(speed_size, batch=1)
        infer = tf.function(lambda: model(images, info, training=False))
        seconds = _median_seconds(lambda: tf.nest.map_structure(lambda t: t.numpy(), infer()),
                                  steps)
        result.update(speed_size=speed_size, images_per_s=round(1.0 / seconds, 3))
    result["device"] = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    return result


def _print_size_row(result: dict) -> None:
    published = PUBLISHED.get(result["preset"])
    params, flops = result["params"] / 1e6, result["multiply_adds"] / 1e9
    if published and published[0] == result["size"]:
        paper = (f"{published[1]:6.1f} ({100 * (params / published[1] - 1):+5.1f}%) "
                 f"{published[2]:7.1f} ({100 * (flops / published[2] - 1):+5.1f}%)")
    else:
        paper = f"{'-':>16s} {'-':>17s}"
    speed = (f"{result['images_per_s']:8.2f} @{result['speed_size']}" if "images_per_s" in result
             else f"{'-':>8s}")
    print(f"{result['preset']:8s} {result['size']:5d} {result['backbone_params'] / 1e6:9.2f} "
          f"{params:8.2f} {flops:8.1f} {paper} {speed} {result['device']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="tiny:128,r50fpn:640,r50fpn:1024")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--max_train_batch", type=int, default=8)
    parser.add_argument("--size_rows", default="sn49:640,sn96:1024,sn143:1280",
                        help="preset:size rows for parameters and multiply-adds ('' for none)")
    parser.add_argument("--speed_size", type=int, default=640)
    parser.add_argument("--speed_presets", default="sn49",
                        help="presets of --size_rows also timed at --speed_size")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--one_size", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        preset, size = args.one.split(":")
        print(json.dumps(measure(preset, int(size), args.steps, args.max_train_batch)))
        return
    if args.one_size:
        preset, size, speed_size = args.one_size.split(":")
        print(json.dumps(measure_size(preset, int(size), int(speed_size), args.steps)))
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    if args.size_rows:
        print(f"{'preset':8s} {'size':>5s} {'backbone':>9s} {'params M':>8s} {'GMACs':>8s} "
              f"{'paper params M':>16s} {'paper GMACs':>17s} {'images/s':>8s} device")
        speed_presets = set(filter(None, args.speed_presets.split(",")))
        for row in args.size_rows.split(","):
            preset, size = row.split(":")
            speed_size = args.speed_size if preset in speed_presets else 0
            output = subprocess.run(
                [sys.executable, __file__, "--one_size", f"{preset}:{size}:{speed_size}",
                 "--steps", str(args.steps)],
                check=True, capture_output=True, text=True, env=env).stdout
            _print_size_row(json.loads(output.strip().splitlines()[-1]))
    if not args.rows:
        return
    print(f"{'preset':8s} {'size':>5s} {'batch':>5s} {'s/train step':>12s} "
          f"{'s/image (export)':>16s} {'peak RSS MiB':>12s} device")
    for row in args.rows.split(","):
        output = subprocess.run([sys.executable, __file__, "--one", row, "--steps", str(args.steps),
                                 "--max_train_batch", str(args.max_train_batch)],
                                check=True, capture_output=True, text=True, env=env).stdout
        result = json.loads(output.strip().splitlines()[-1])
        print(f"{result['preset']:8s} {result['size']:5d} {result['train_batch']:5d} "
              f"{result['train_step_s']:12.2f} {result['export_s_per_image']:16.2f} "
              f"{result['peak_rss_mib']:12d} {result['device']}", flush=True)


if __name__ == "__main__":
    main()
