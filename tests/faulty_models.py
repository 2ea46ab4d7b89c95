"""Models that fail on purpose, for the tests of how predict tells bad inputs from faults.

``export_faulty_model(path, fault)`` writes a real SavedModel with the exported
model's two signatures (``serving_default(image_bytes)``, ``serve_examples(examples)``)
and every output predict reads (``saved_model_check.REQUIRED_OUTPUTS``), which
detects nothing, and whose graph fails at run time:

* ``out_of_memory``: every call allocates a float32[2^40 + N, 2^20] tensor (4 EiB),
  so TensorFlow raises ``ResourceExhaustedError`` whatever the input (after its
  allocator's retry, about 10 s, without allocating anything);
* ``marker``: a call fails with ``InvalidArgumentError`` when the bytes of one of
  its images contain ``MARKER`` (``tf.debugging.Assert``), like a decode failure:
  the batch fails and that image alone fails again.

``Echo`` is a plain object for Beam's multi_process_shared (no TensorFlow), whose
``predict`` answers like ``LoadedSignature.predict``.
"""
import os
from typing import Dict, List

import numpy as np

MARKER = b"MARKER-FAILS-INFERENCE"
MAX_DETECTIONS = 2
NUM_ATTRIBUTES = 3
MASK_SIZE = 28
FAULTS = ("out_of_memory", "marker")


def export_faulty_model(path: str, fault: str) -> str:
    import tensorflow as tf

    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}, expected one of {FAULTS}")

    class FaultyModule(tf.Module):
        def __init__(self):
            super().__init__()
            self.scale = tf.Variable(1.0)  # a SavedModel with variables, as exported ones have

        def _fault(self, encoded: tf.Tensor) -> tf.Tensor:
            if fault == "out_of_memory":
                rows = tf.cast(tf.size(encoded), tf.int64) + (1 << 40)  # known at run time only
                huge = tf.fill(tf.stack([rows, tf.constant(1 << 20, tf.int64)]), self.scale)
                return tf.reduce_sum(huge)
            length = tf.strings.length(encoded)
            marked = tf.strings.length(tf.strings.regex_replace(encoded, MARKER, b"")) < length
            check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(marked)),
                                        ["an image holds the failing marker"])
            with tf.control_dependencies([check]):
                return tf.constant(0.0)

        def _detect(self, encoded: tf.Tensor) -> Dict[str, tf.Tensor]:
            zero = tf.minimum(self._fault(encoded), 0.0)  # min, not * 0: grappler folds x * 0
            sizes = tf.map_fn(
                lambda data: tf.cast(tf.shape(tf.io.decode_image(
                    data, channels=3, expand_animations=False))[:2], tf.float32),
                encoded, fn_output_signature=tf.TensorSpec([2], tf.float32))
            count = tf.shape(encoded)[0]
            slots = tf.zeros([count, MAX_DETECTIONS]) + zero
            image_info = tf.stack([sizes, sizes, tf.ones_like(sizes), tf.zeros_like(sizes)], axis=1)
            return {
                "num_detections": tf.zeros([count], tf.int32),
                "detection_boxes": tf.zeros([count, MAX_DETECTIONS, 4]) + zero,
                "detection_classes": tf.fill([count, MAX_DETECTIONS], -1),
                "detection_scores": slots,
                "detection_masks": tf.zeros([count, MAX_DETECTIONS, MASK_SIZE, MASK_SIZE]) + zero,
                "detection_attributes": tf.zeros([count, MAX_DETECTIONS, NUM_ATTRIBUTES]) + zero,
                "image_info": image_info,
            }

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve_image_bytes(self, image_bytes):
            return self._detect(image_bytes)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve_examples(self, examples):
            parsed = tf.io.parse_example(
                examples, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})
            return self._detect(parsed["image/encoded"])

    module = FaultyModule()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve_image_bytes,
                                                  "serve_examples": module.serve_examples})
    return path


class Echo:
    """``predict(inputs) -> {"echo": inputs, "pid": this process's id per input}``."""

    def predict(self, inputs: List[bytes]) -> Dict[str, np.ndarray]:
        return {"echo": np.array(inputs, dtype=object),
                "pid": np.full(len(inputs), os.getpid())}
