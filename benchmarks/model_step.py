"""Benchmarks of the model on this machine's CPU (or GPU when TensorFlow sees one).

  python benchmarks/model_step.py [--rows tiny:128,r50fpn:640,r50fpn:1024] [--steps 3]

For each preset:size row, in a fresh process: seconds per training step
(tf.function, the preset's batch size capped by --max_train_batch), and seconds
per image of the exported SavedModel's image-bytes signature at batch 1 on a
JPEG photo, each the median of --steps runs after one warm-up; plus the
process's peak RSS.
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
    from model.export import export
    from model.maskrcnn_losses import total_losses
    from model.modeling.maskrcnn import AttributeMaskRCNN

    config = load_config(preset, [f"input.image_size={size}"])
    batch = min(config.train.batch_size, max_batch)
    model = AttributeMaskRCNN(config.model, size)
    images = tf.random.normal([batch, size, size, 3])
    info = tf.constant([[[size, size], [size, size], [1, 1], [0, 0]]] * batch, tf.float32)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="tiny:128,r50fpn:640,r50fpn:1024")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--max_train_batch", type=int, default=8)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        preset, size = args.one.split(":")
        print(json.dumps(measure(preset, int(size), args.steps, args.max_train_batch)))
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
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
