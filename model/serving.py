"""The serving graph: encoded images or tf.Examples in, detections in original pixels out.

Signatures (N images, K = max_detections, T = num_attributes):
  serving_default(image_bytes: string[N])   JPEG/PNG of any size
  serve_examples(examples: string[N])       serialized tf.Example with image/encoded
Outputs: num_detections int32[N]; detection_boxes float32[N, K, 4] [ymin, xmin,
ymax, xmax] in original-image pixels; detection_classes int32[N, K] dataset
category ids (-1 in unused slots); detection_scores float32[N, K];
detection_masks float32[N, K, 28, 28] mask probabilities inside each box;
detection_attributes float32[N, K, T] indexed by attribute id (0 in slots that
are no attribute of the label map); image_info
float32[N, 4, 2].
"""
from typing import Dict

import tensorflow as tf

from model import record_schema
from model.config.schema import PreprocessingConfig
from model.data import augment
from model.data.parser import normalise
from model.label_map import LabelMap
from model.modeling.maskrcnn import AttributeMaskRCNN
from model.outputs import to_dataset_space


def preprocess(encoded: tf.Tensor, image_size: int,
               settings: PreprocessingConfig = PreprocessingConfig()):
    """One encoded image -> (normalised image [S, S, 3], image_info [4, 2]), as the
    parser makes evaluation inputs (``model.data.parser``)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.convert_image_dtype(image, tf.float32)
    image, image_info = augment.resize_and_crop(
        image, (image_size, image_size), half_pixel_centers=settings.resize_half_pixel_centers)
    return normalise(image, image_info, settings.pad_with_mean), image_info


class _Untracked:
    """Holds the Keras model out of sight of SavedModel's object tracking: saving a
    Keras model would also trace its training call, which needs ground truth."""

    def __init__(self, model):
        self.model = model


class ServingModule(tf.Module):
    def __init__(self, model: AttributeMaskRCNN, label_map: LabelMap, image_size: int,
                 label_map_path: str, preprocessing: PreprocessingConfig = PreprocessingConfig()):
        super().__init__()
        self._preprocessing = preprocessing
        self._holder = _Untracked(model)
        self.model_variables = list(model.variables)
        self._image_size = image_size
        self._label_map = label_map
        self.label_map_asset = tf.saved_model.Asset(label_map_path)

    def _detect(self, encoded: tf.Tensor) -> Dict[str, tf.Tensor]:
        images, image_info = tf.map_fn(
            lambda data: preprocess(data, self._image_size, self._preprocessing), encoded,
            fn_output_signature=(tf.TensorSpec([self._image_size, self._image_size, 3], tf.float32),
                                 tf.TensorSpec([4, 2], tf.float32)))
        detections = self._holder.model(images, image_info, training=False)["detections"]
        outputs = to_dataset_space(detections, image_info, self._label_map)
        attributes = outputs.get("attribute_probabilities")
        if attributes is None:  # no attribute head: the signature still has the output
            attributes = tf.zeros(tf.concat([tf.shape(outputs["scores"]), [0]], 0))
        return {
            "num_detections": outputs["num_detections"],
            "detection_boxes": outputs["boxes"],
            "detection_classes": outputs["category_ids"],
            "detection_scores": outputs["scores"],
            "detection_masks": outputs["mask_probabilities"],
            "detection_attributes": attributes,
            "image_info": image_info,
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_image_bytes(self, image_bytes):
        return self._detect(image_bytes)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        parsed = tf.io.parse_example(
            examples, {record_schema.ENCODED: tf.io.FixedLenFeature([], tf.string)})
        return self._detect(parsed[record_schema.ENCODED])
