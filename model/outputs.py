"""Model space -> dataset space: what the SavedModel serves and the TPU eval path scores.

The model detects in the parser's output frame (pixels of the resized, cropped,
padded input) and names model classes 1..N-1; consumers want boxes in pixels of the
original image, the dataset's category ids and attribute probabilities that are 0 in
every slot the label map defines no attribute for (attribute ids need not be
contiguous). Plain TensorFlow, graph-safe (tf.function, TPUEstimator model_fn, TPU).
"""
from typing import Dict

import tensorflow as tf

from model.data import augment
from model.label_map import LabelMap


def to_dataset_space(detections: Dict[str, tf.Tensor], image_info: tf.Tensor,
                     label_map: LabelMap) -> Dict[str, tf.Tensor]:
    """The model's inference detections of a batch in the dataset's terms.

    Args (B images, K = max_detections, T = num_attributes):
      detections: the model's ``detections`` (``AttributeMaskRCNN.call`` with training=False):
        boxes float32 [B, K, 4] output pixels; classes int32 [B, K] model classes (0 in
        unused slots); scores float32 [B, K] (> 0 exactly in the first num_detections
        slots); num_detections int32 [B]; mask_probabilities float32 [B, K, M, M];
        attribute_probabilities float32 [B, K, T] (with an attribute head only).
      image_info: float32 [B, 4, 2] as ``augment.resize_and_crop`` writes it.
      label_map: the dataset's label map (``label_map.num_attributes`` = T).

    Returns:
      num_detections int32 [B]; boxes float32 [B, K, 4] [ymin, xmin, ymax, xmax] in
      original-image pixels, clipped to the image, 0 in unused slots; category_ids int32
      [B, K] dataset category ids, -1 in unused slots; scores float32 [B, K];
      mask_probabilities float32 [B, K, M, M] (inside each box, as the model's); and, with
      an attribute head, attribute_probabilities float32 [B, K, T] indexed by attribute
      id, 0 in the slots that are no attribute of the label map.
    """
    pixels = augment.boxes_to_original_pixels(detections["boxes"], image_info)
    boxes = tf.clip_by_value(pixels, 0.0, augment.per_coordinate(image_info[:, 0, :]))
    valid = detections["scores"] > 0.0
    # Model class c (1..N-1) -> dataset category id; class 0 (no detection) -> -1.
    category_ids = tf.constant([-1] + [c.id for c in label_map.categories], tf.int32)
    outputs = {
        "num_detections": detections["num_detections"],
        "boxes": tf.where(valid[..., tf.newaxis], boxes, 0.0),
        "category_ids": tf.gather(category_ids, detections["classes"]),
        "scores": detections["scores"],
        "mask_probabilities": detections["mask_probabilities"],
    }
    if "attribute_probabilities" in detections:
        outputs["attribute_probabilities"] = (detections["attribute_probabilities"]
                                              * attribute_slots(label_map))
    return outputs


def attribute_slots(label_map: LabelMap) -> tf.Tensor:
    """float32 [T]: 1 in the slots that are attribute ids of the label map, else 0."""
    defined = {attribute.id for attribute in label_map.attributes}
    return tf.constant([1.0 if slot in defined else 0.0
                        for slot in range(label_map.num_attributes)], tf.float32)
