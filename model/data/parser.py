"""tf.data input parser for Attribute-Mask R-CNN: records -> (image, labels).

Reads records through ``model.record_schema.RecordDecoder``. Training applies a
random horizontal flip and scale jitter with a random crop, then pads to the
output size; eval/predict resize the long side to the output size and pad.
Training can add detection AutoAugment (``autoaugment_policy``), either on the
original image or, as in the 1st-place iMaterialist 2020 recipe, on the resized
and cropped image before padding; masks follow every geometric operation.
Every ground-truth tensor is padded to ``max_num_instances`` (boxes and classes
with -1), so shapes are static for a known batch size.

Output:
  image: float32 [H, W, 3], normalised with ImageNet mean/std.
  labels:
    image_info: float32 [4, 2] = [[orig h, w], [scaled h, w], [scale y, x], [offset y, x]].
    source_id: int64 [] the image id (``model.dataset.image_ids``: NON_DECIMAL_SOURCE_ID when
      the record's id is not decimal).
    num_instances: int32 [] valid instances before padding.
    gt_boxes: float32 [M, 4] [ymin, xmin, ymax, xmax] in output pixels, -1 padded.
    gt_classes: int32 [M] model classes 1..N, -1 padded. Records whose
      ``image/object/class/label`` holds dataset category ids (the TensorFlow tools'
      ``create_coco_tf_record.py`` writes the JSON's ``category_id``) are mapped to classes
      through ``category_ids`` (the label map's ids in ascending order: class = position + 1);
      an id not among them fails the input pipeline (``UNKNOWN_CATEGORY``).
    gt_is_crowd: bool [M] (crowd regions are to be ignored by matchers).
    gt_masks: float32 [M, S, S] 0/1 masks of each box, S = mask_crop_size.
    gt_attributes: float32 [M, num_attributes] multi-hot.
"""
import dataclasses
from typing import Dict, Tuple

import tensorflow as tf

from model.config.schema import ExperimentConfig
from model.data import augment, autoaugment
from model.dataset.image_ids import source_id_to_image_id
from model.ops import box_ops
from model.record_schema import RecordDecoder

# The first words of the error a record with a category id outside the label map raises.
UNKNOWN_CATEGORY = "category ids not in the label map"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TRAIN, EVAL, PREDICT = "train", "eval", "predict"


def normalise(image: tf.Tensor, image_info: tf.Tensor, pad_with_mean: bool) -> tf.Tensor:
    """A resized, padded image [S, S, 3] in [0, 1] (``augment.resize_and_crop``) normalised
    with the ImageNet mean and std; ``pad_with_mean``: its padding is then 0 (the mean
    colour), as ``model.preprocessing.pad_with_mean`` asks."""
    image = (image - IMAGENET_MEAN) / IMAGENET_STD
    return augment.zero_padding(image, image_info) if pad_with_mean else image


@dataclasses.dataclass(frozen=True)
class ParserSettings:
    output_size: Tuple[int, int] = (256, 256)
    max_level: int = 6
    num_attributes: int = 0
    aug_rand_hflip: bool = True
    aug_scale_min: float = 0.5
    aug_scale_max: float = 2.0
    max_num_instances: int = 100
    mask_crop_size: int = 112
    include_masks: bool = True
    autoaugment_policy: str = "none"  # "none" or a policy of model.data.autoaugment
    apply_autoaugment_after_resizing: bool = True
    resize_half_pixel_centers: bool = True  # model.preprocessing
    pad_with_mean: bool = False  # model.preprocessing
    # Empty: the records' labels are model classes. Else the records hold dataset category
    # ids and these are the label map's ids, ascending (``LabelMap.categories``).
    category_ids: Tuple[int, ...] = ()

    @classmethod
    def from_experiment(cls, config: ExperimentConfig) -> "ParserSettings":
        """The parser settings an experiment config implies."""
        data = config.input
        return cls(output_size=(data.image_size, data.image_size),
                   max_level=config.model.fpn.max_level,
                   num_attributes=config.model.num_attributes,
                   aug_rand_hflip=data.aug_rand_hflip, aug_scale_min=data.aug_scale_min,
                   aug_scale_max=data.aug_scale_max, max_num_instances=data.max_num_instances,
                   mask_crop_size=data.mask_crop_size,
                   autoaugment_policy=data.autoaugment_policy,
                   apply_autoaugment_after_resizing=data.apply_autoaugment_after_resizing,
                   resize_half_pixel_centers=config.model.preprocessing.resize_half_pixel_centers,
                   pad_with_mean=config.model.preprocessing.pad_with_mean)


class Parser:
    """Callable mapping one serialized record to (image, labels); see the module docstring."""

    def __init__(self, settings: ParserSettings, mode: str):
        if mode not in (TRAIN, EVAL, PREDICT):
            raise ValueError(f"mode must be train, eval or predict, got {mode!r}")
        if settings.autoaugment_policy not in ("none", *autoaugment.POLICIES):
            raise ValueError(f"autoaugment_policy must be none or one of "
                             f"{sorted(autoaugment.POLICIES)}, got {settings.autoaugment_policy!r}")
        stride = 2 ** settings.max_level
        if any(side % stride for side in settings.output_size):
            raise ValueError(f"output_size {settings.output_size} must be a multiple of "
                             f"2**max_level = {stride}")
        if list(settings.category_ids) != sorted(set(settings.category_ids)):
            raise ValueError("category_ids must be distinct and ascending")
        self._settings = settings
        self._mode = mode
        self._decoder = RecordDecoder(settings.num_attributes, include_masks=settings.include_masks)

    def __call__(self, serialized: tf.Tensor) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        data = self._decoder.decode(serialized)
        settings = self._settings
        image = tf.image.convert_image_dtype(data["image"], tf.float32)
        boxes = data["groundtruth_boxes"]
        masks = (data["groundtruth_instance_masks"] if settings.include_masks
                 else tf.zeros([tf.shape(boxes)[0], 1, 1], tf.uint8))
        training = self._mode == TRAIN
        use_autoaugment = training and settings.autoaugment_policy != "none"
        if use_autoaugment and not settings.apply_autoaugment_after_resizing:
            image, boxes, masks = self._autoaugment(image, boxes, masks)
        if training and settings.aug_rand_hflip:
            image, boxes, masks = tf.cond(
                tf.random.uniform([]) < 0.5,
                lambda: augment.horizontal_flip(image, boxes, masks),
                lambda: (image, boxes, masks))
        scale_min, scale_max = ((settings.aug_scale_min, settings.aug_scale_max) if training
                                else (1.0, 1.0))
        image, image_info = augment.resize_and_crop(
            image, settings.output_size, scale_min, scale_max,
            half_pixel_centers=settings.resize_half_pixel_centers)
        valid_size = tf.minimum(image_info[1] - image_info[3],
                                tf.constant(settings.output_size, tf.float32))
        output_boxes = augment.clip_boxes(augment.boxes_to_output(boxes, image_info),
                                          *tf.unstack(valid_size))
        classes = data["groundtruth_classes"]
        if settings.category_ids:
            classes = classes_of_category_ids(classes, settings.category_ids, data["source_id"])
        instances = _keep_nonempty(output_boxes, {
            "classes": tf.cast(classes, tf.int32),
            "is_crowd": data["groundtruth_is_crowd"],
            "attributes": tf.cast(data["groundtruth_attributes"], tf.float32),
            "masks": masks,
        })
        if use_autoaugment and settings.apply_autoaugment_after_resizing:
            image, instances = self._autoaugment_resized(image, image_info, valid_size, instances)
        image = normalise(image, image_info, settings.pad_with_mean)

        output_boxes = instances["boxes"]
        labels = {
            "image_info": image_info,
            "source_id": source_id_to_image_id(data["source_id"]),
            "num_instances": tf.minimum(tf.shape(output_boxes)[0], settings.max_num_instances),
            "gt_boxes": augment.pad_to(output_boxes, settings.max_num_instances, -1.0),
            "gt_classes": augment.pad_to(instances["classes"], settings.max_num_instances, -1),
            "gt_is_crowd": augment.pad_to(instances["is_crowd"], settings.max_num_instances, False),
            "gt_attributes": augment.pad_to(instances["attributes"], settings.max_num_instances, 0.0),
        }
        if settings.include_masks:
            if use_autoaugment and settings.apply_autoaugment_after_resizing:
                # Masks are already in the output frame, cropped to the valid region.
                crop_boxes = output_boxes / tf.tile(valid_size, [2])
            else:
                crop_boxes = augment.boxes_to_original(output_boxes, image_info)
            labels["gt_masks"] = augment.pad_to(
                self._crop_masks(instances["masks"], crop_boxes), settings.max_num_instances, 0.0)
        return image, labels

    def _autoaugment(self, image: tf.Tensor, boxes: tf.Tensor, masks: tf.Tensor):
        """AutoAugment of a float [H, W, 3] image in [0, 1] with its normalised boxes and masks."""
        pixels = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
        pixels, boxes, masks = autoaugment.distort(pixels, boxes, masks,
                                                   self._settings.autoaugment_policy)
        return tf.image.convert_image_dtype(pixels, tf.float32), boxes, masks

    def _autoaugment_resized(self, image: tf.Tensor, image_info: tf.Tensor, valid_size: tf.Tensor,
                             instances: Dict[str, tf.Tensor]):
        """AutoAugment of the valid (unpadded) region of the resized image.

        The instance masks are brought to that region first (nearest resize, crop), so
        geometric operations move them with the pixels; returns the re-padded image and
        the instances in output pixels, minus those moved out of the image.
        """
        settings = self._settings
        valid = tf.cast(valid_size, tf.int32)
        offset = tf.cast(image_info[3], tf.int32)
        region = image[:valid[0], :valid[1], :]
        masks = instances["masks"][:settings.max_num_instances]
        if settings.include_masks:
            scaled = tf.image.resize(masks[..., tf.newaxis], tf.cast(image_info[1], tf.int32),
                                     method="nearest")[..., 0]
            masks = scaled[:, offset[0]:offset[0] + valid[0], offset[1]:offset[1] + valid[1]]
        scale = tf.tile(valid_size, [2])
        region, boxes, masks = self._autoaugment(
            region, instances["boxes"][:settings.max_num_instances] / scale, masks)
        image = tf.image.pad_to_bounding_box(region, 0, 0, *settings.output_size)
        kept = {key: value[:settings.max_num_instances] for key, value in instances.items()
                if key != "boxes"}
        kept["masks"] = masks
        return image, _keep_nonempty(boxes * scale, kept)

    def _crop_masks(self, masks: tf.Tensor, normalised_boxes: tf.Tensor) -> tf.Tensor:
        """Masks [N, H, W] -> 0/1 masks [N, S, S] of each box (normalised to the masks' frame)."""
        size = self._settings.mask_crop_size
        height, width = tf.shape(masks)[1], tf.shape(masks)[2]
        frame = tf.cast(tf.stack([height, width, height, width]), tf.float32)
        crops = tf.image.crop_and_resize(
            tf.cast(masks[..., tf.newaxis], tf.float32),
            box_ops.cell_centre_crop_boxes(normalised_boxes * frame, height, width, size),
            tf.range(tf.shape(masks)[0]), [size, size], method="bilinear")
        return tf.cast(crops[..., 0] >= 0.5, tf.float32)


def classes_of_category_ids(labels: tf.Tensor, category_ids: Tuple[int, ...],
                            source_id: tf.Tensor) -> tf.Tensor:
    """Dataset category ids int64 [N] -> model classes int64 [N] (1 + the id's position in
    the ascending ``category_ids``). An id that is not there raises InvalidArgumentError
    starting with ``UNKNOWN_CATEGORY`` and naming the record's source_id and the ids."""
    known = tf.constant(category_ids, tf.int64)
    position = tf.searchsorted(known, labels, side="left", out_type=tf.int64)
    found = tf.equal(tf.gather(known, tf.minimum(position, len(category_ids) - 1)), labels)
    check = tf.debugging.Assert(
        tf.reduce_all(found),
        [f"{UNKNOWN_CATEGORY}: image/source_id", source_id, "has category ids",
         tf.boolean_mask(labels, tf.logical_not(found))], summarize=20)
    with tf.control_dependencies([check]):
        return position + 1


def _keep_nonempty(boxes: tf.Tensor, fields: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Drops instances whose pixel box [N, 4] has no area, from the boxes and every field."""
    keep = tf.logical_and(boxes[:, 2] > boxes[:, 0], boxes[:, 3] > boxes[:, 1])
    kept = {key: tf.boolean_mask(value, keep) for key, value in fields.items()}
    kept["boxes"] = tf.boolean_mask(boxes, keep)
    return kept


def make_dataset(file_pattern: str, parser: Parser, batch_size: int, training: bool,
                 shuffle_buffer: int = 256) -> tf.data.Dataset:
    """Batched (image, labels) from records matching ``file_pattern`` (drop_remainder: static batch)."""
    files = tf.data.Dataset.list_files(file_pattern, shuffle=training)
    dataset = files.interleave(tf.data.TFRecordDataset, cycle_length=4,
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    if training:
        dataset = dataset.shuffle(shuffle_buffer).repeat()
    dataset = dataset.map(parser, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
