"""The one tf.Example schema shared by record writing and training input.

Keys are those of the TensorFlow detection record tools (``image/encoded``,
``image/object/bbox/xmin`` ...), so records from those tools decode here and the
other way round. Conventions:

* ``image/source_id``: the dataset's image id as a decimal string.
* ``image/object/bbox/*``: box corners normalised to [0, 1] by image width/height.
* ``image/object/class/label``: model classes 1..N (0 is background); the label map
  written next to the records maps them back to dataset category ids.
* ``image/object/mask``: one PNG per instance (see ``model.masks.png``).
* ``image/object/attributes/labels``: one bytes value holding
  ``bool[num_objects, num_attributes]`` row-major, where ``num_attributes`` is the
  largest attribute id + 1 (341 for Fashionpedia 2020). It is not stored in the
  record; the decoder takes it from the label map, and a record with another number of
  bytes than objects x num_attributes fails decoding (``ATTRIBUTES_SIZE``).
"""
import hashlib
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

ENCODED = "image/encoded"
FORMAT = "image/format"
HEIGHT = "image/height"
WIDTH = "image/width"
FILENAME = "image/filename"
SOURCE_ID = "image/source_id"
KEY_SHA256 = "image/key/sha256"
BBOX_XMIN = "image/object/bbox/xmin"
BBOX_YMIN = "image/object/bbox/ymin"
BBOX_XMAX = "image/object/bbox/xmax"
BBOX_YMAX = "image/object/bbox/ymax"
CLASS_LABEL = "image/object/class/label"
CLASS_TEXT = "image/object/class/text"
IS_CROWD = "image/object/is_crowd"
AREA = "image/object/area"
MASK = "image/object/mask"
ATTRIBUTES = "image/object/attributes/labels"
# The first words of the error a record whose attribute bytes are not
# num_objects x num_attributes raises (another attribute count, or rows that do not
# match the objects).
ATTRIBUTES_SIZE = "attribute rows do not match the objects"


def _bytes(values: Sequence[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _floats(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def encode_example(
    *,
    image_bytes: bytes,
    image_format: str,
    height: int,
    width: int,
    filename: str,
    source_id: str,
    boxes: Optional[np.ndarray] = None,
    classes: Sequence[int] = (),
    class_texts: Sequence[str] = (),
    is_crowd: Sequence[int] = (),
    areas: Sequence[float] = (),
    mask_pngs: Optional[Sequence[bytes]] = None,
    attributes: Optional[np.ndarray] = None,
) -> tf.train.Example:
    """Builds one record.

    Args:
      image_bytes: the encoded image (JPEG or PNG).
      image_format: "jpeg" or "png".
      height, width: image size in pixels.
      filename: the image path relative to the image root.
      source_id: the dataset image id as a decimal string.
      boxes: float [N, 4] as [ymin, xmin, ymax, xmax] normalised to [0, 1]; None
        for an image-only record.
      classes: int [N] model classes 1..num_classes.
      class_texts: [N] category names.
      is_crowd: int [N] 0/1.
      areas: float [N] instance areas in original pixels.
      mask_pngs: [N] PNG bytes, or None to leave masks out.
      attributes: bool [N, num_attributes], or None to leave attributes out.
    """
    feature: Dict[str, tf.train.Feature] = {
        ENCODED: _bytes([image_bytes]),
        FORMAT: _bytes([image_format.encode()]),
        HEIGHT: _ints([height]),
        WIDTH: _ints([width]),
        FILENAME: _bytes([filename.encode()]),
        SOURCE_ID: _bytes([source_id.encode()]),
        KEY_SHA256: _bytes([hashlib.sha256(image_bytes).hexdigest().encode()]),
    }
    if boxes is not None:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        num_objects = boxes.shape[0]
        for name, values in (("classes", classes), ("class_texts", class_texts),
                             ("is_crowd", is_crowd), ("areas", areas)):
            if len(values) != num_objects:
                raise ValueError(f"{name} has {len(values)} entries for {num_objects} boxes")
        feature.update({
            BBOX_YMIN: _floats(boxes[:, 0]),
            BBOX_XMIN: _floats(boxes[:, 1]),
            BBOX_YMAX: _floats(boxes[:, 2]),
            BBOX_XMAX: _floats(boxes[:, 3]),
            CLASS_LABEL: _ints(classes),
            CLASS_TEXT: _bytes([text.encode() for text in class_texts]),
            IS_CROWD: _ints(is_crowd),
            AREA: _floats(areas),
        })
        if mask_pngs is not None:
            if len(mask_pngs) != num_objects:
                raise ValueError(f"{len(mask_pngs)} masks for {num_objects} boxes")
            feature[MASK] = _bytes(mask_pngs)
        if attributes is not None:
            attributes = np.asarray(attributes, bool)
            if attributes.ndim != 2 or attributes.shape[0] != num_objects:
                raise ValueError(
                    f"attributes must be [{num_objects}, num_attributes], got {attributes.shape}")
            feature[ATTRIBUTES] = _bytes([np.ascontiguousarray(attributes).tobytes()])
    return tf.train.Example(features=tf.train.Features(feature=feature))


class RecordDecoder:
    """Parses serialized records into tensors (eager, tf.function or tf.data).

    Output of ``decode`` (N = number of objects):
      source_id: string []; filename: string []; image: uint8 [H, W, 3];
      height, width: int64 []; groundtruth_boxes: float32 [N, 4] normalised
      [ymin, xmin, ymax, xmax]; groundtruth_classes: int64 [N];
      groundtruth_is_crowd: bool [N]; groundtruth_area: float32 [N];
      groundtruth_instance_masks: uint8 [N, H, W] of 0/1 (when include_masks);
      groundtruth_attributes: bool [N, num_attributes] (all False when the record
      has no attributes).
    """

    def __init__(self, num_attributes: int, include_masks: bool = True):
        if num_attributes < 0:
            raise ValueError(f"num_attributes must be >= 0, got {num_attributes}")
        self._num_attributes = num_attributes
        self._include_masks = include_masks
        self._features = {
            ENCODED: tf.io.FixedLenFeature((), tf.string),
            HEIGHT: tf.io.FixedLenFeature((), tf.int64, -1),
            WIDTH: tf.io.FixedLenFeature((), tf.int64, -1),
            FILENAME: tf.io.FixedLenFeature((), tf.string, ""),
            SOURCE_ID: tf.io.FixedLenFeature((), tf.string, ""),
            BBOX_XMIN: tf.io.VarLenFeature(tf.float32),
            BBOX_YMIN: tf.io.VarLenFeature(tf.float32),
            BBOX_XMAX: tf.io.VarLenFeature(tf.float32),
            BBOX_YMAX: tf.io.VarLenFeature(tf.float32),
            CLASS_LABEL: tf.io.VarLenFeature(tf.int64),
            IS_CROWD: tf.io.VarLenFeature(tf.int64),
            AREA: tf.io.VarLenFeature(tf.float32),
            ATTRIBUTES: tf.io.FixedLenFeature((), tf.string, ""),
        }
        if include_masks:
            self._features[MASK] = tf.io.VarLenFeature(tf.string)

    def decode(self, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
        parsed = tf.io.parse_single_example(serialized, self._features)
        dense = {
            key: tf.sparse.to_dense(value) if isinstance(value, tf.SparseTensor) else value
            for key, value in parsed.items()
        }
        image = tf.io.decode_image(dense[ENCODED], channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        shape = tf.shape(image, out_type=tf.int64)
        height = tf.where(dense[HEIGHT] > 0, dense[HEIGHT], shape[0])
        width = tf.where(dense[WIDTH] > 0, dense[WIDTH], shape[1])
        boxes = tf.stack(
            [dense[BBOX_YMIN], dense[BBOX_XMIN], dense[BBOX_YMAX], dense[BBOX_XMAX]], axis=-1)
        classes = dense[CLASS_LABEL]
        num_objects = tf.shape(classes)[0]
        is_crowd = tf.cond(
            tf.size(dense[IS_CROWD]) > 0,
            lambda: tf.cast(dense[IS_CROWD], tf.bool),
            lambda: tf.zeros([num_objects], tf.bool))
        decoded = {
            "source_id": dense[SOURCE_ID],
            "filename": dense[FILENAME],
            "image": image,
            "height": height,
            "width": width,
            "groundtruth_boxes": boxes,
            "groundtruth_classes": classes,
            "groundtruth_is_crowd": is_crowd,
            "groundtruth_area": dense[AREA],
            "groundtruth_attributes": self._decode_attributes(dense[ATTRIBUTES], num_objects,
                                                             dense[SOURCE_ID]),
        }
        if self._include_masks:
            decoded["groundtruth_instance_masks"] = self._decode_masks(
                dense[MASK], shape[0], shape[1])
        return decoded

    def _decode_attributes(self, raw: tf.Tensor, num_objects: tf.Tensor,
                           source_id: tf.Tensor) -> tf.Tensor:
        if not self._num_attributes:  # a model without attributes ignores stored ones
            return tf.zeros([num_objects, 0], tf.bool)

        def from_bytes():
            flat = tf.io.decode_raw(raw, tf.uint8)
            expected = tf.cast(num_objects, tf.int64) * self._num_attributes
            check = tf.debugging.Assert(
                tf.equal(tf.size(flat, out_type=tf.int64), expected),
                [f"{ATTRIBUTES_SIZE}: image/source_id", source_id, "has",
                 tf.size(flat), "attribute bytes for", num_objects,
                 f"objects, not objects x {self._num_attributes} "
                 "(the label map's attribute slots)"])
            with tf.control_dependencies([check]):
                return tf.reshape(flat > 0, [num_objects, self._num_attributes])

        return tf.cond(
            tf.strings.length(raw) > 0,
            from_bytes,
            lambda: tf.zeros([num_objects, self._num_attributes], tf.bool))

    @staticmethod
    def _decode_masks(pngs: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
        def decode_one(png):
            mask = tf.io.decode_png(png, channels=1)[:, :, 0]
            # 1-bit greyscale PNGs decode to 0/255, palette ones to 0/1.
            return tf.cast(mask > 0, tf.uint8)

        def decode_all():
            return tf.map_fn(decode_one, pngs,
                             fn_output_signature=tf.TensorSpec([None, None], tf.uint8))

        num_masks = tf.shape(pngs, out_type=tf.int64)[0]
        shape = tf.stack([num_masks, height, width])
        masks = tf.cond(num_masks > 0, decode_all, lambda: tf.zeros(shape, tf.uint8))
        return tf.reshape(masks, shape)
