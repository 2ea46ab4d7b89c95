"""tf.data input parser for Attribute-Mask R-CNN: records -> (image, labels).

Reads records through ``model.record_schema.RecordDecoder``. Training applies a
random horizontal flip and scale jitter with a random crop, then pads to the
output size; eval/predict resize the long side to the output size and pad.
Every ground-truth tensor is padded to ``max_num_instances`` (boxes and classes
with -1), so shapes are static for a known batch size.

Output:
  image: float32 [H, W, 3], normalised with ImageNet mean/std.
  labels:
    image_info: float32 [4, 2] = [[orig h, w], [scaled h, w], [scale y, x], [offset y, x]].
    source_id: int64 [] (-1 when not a decimal number).
    num_instances: int32 [] valid instances before padding.
    gt_boxes: float32 [M, 4] [ymin, xmin, ymax, xmax] in output pixels, -1 padded.
    gt_classes: int32 [M] model classes 1..N, -1 padded.
    gt_is_crowd: bool [M] (crowd regions are to be ignored by matchers).
    gt_masks: float32 [M, S, S] 0/1 masks of each box, S = mask_crop_size.
    gt_attributes: float32 [M, num_attributes] multi-hot.
"""
import dataclasses
from typing import Dict, Tuple

import tensorflow as tf

from model.config.schema import ExperimentConfig
from model.data import augment
from model.record_schema import RecordDecoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TRAIN, EVAL, PREDICT = "train", "eval", "predict"


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

    @classmethod
    def from_experiment(cls, config: ExperimentConfig) -> "ParserSettings":
        """The parser settings an experiment config implies."""
        data = config.input
        return cls(output_size=(data.image_size, data.image_size),
                   max_level=config.model.fpn.max_level,
                   num_attributes=config.model.num_attributes,
                   aug_rand_hflip=data.aug_rand_hflip, aug_scale_min=data.aug_scale_min,
                   aug_scale_max=data.aug_scale_max, max_num_instances=data.max_num_instances,
                   mask_crop_size=data.mask_crop_size)


class Parser:
    """Callable mapping one serialized record to (image, labels); see the module docstring."""

    def __init__(self, settings: ParserSettings, mode: str):
        if mode not in (TRAIN, EVAL, PREDICT):
            raise ValueError(f"mode must be train, eval or predict, got {mode!r}")
        stride = 2 ** settings.max_level
        if any(side % stride for side in settings.output_size):
            raise ValueError(f"output_size {settings.output_size} must be a multiple of "
                             f"2**max_level = {stride}")
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
        if training and settings.aug_rand_hflip:
            image, boxes, masks = tf.cond(
                tf.random.uniform([]) < 0.5,
                lambda: augment.horizontal_flip(image, boxes, masks),
                lambda: (image, boxes, masks))
        scale_min, scale_max = ((settings.aug_scale_min, settings.aug_scale_max) if training
                                else (1.0, 1.0))
        image, image_info = augment.resize_and_crop(image, settings.output_size, scale_min, scale_max)
        image = (image - IMAGENET_MEAN) / IMAGENET_STD

        output_boxes = augment.clip_boxes(augment.boxes_to_output(boxes, image_info),
                                          *tf.unstack(tf.minimum(
                                              image_info[1] - image_info[3],
                                              tf.constant(settings.output_size, tf.float32))))
        keep = tf.logical_and(output_boxes[:, 2] > output_boxes[:, 0],
                              output_boxes[:, 3] > output_boxes[:, 1])
        output_boxes = tf.boolean_mask(output_boxes, keep)
        labels = {
            "image_info": image_info,
            "source_id": _source_id_number(data["source_id"]),
            "num_instances": tf.minimum(tf.reduce_sum(tf.cast(keep, tf.int32)),
                                        settings.max_num_instances),
            "gt_boxes": augment.pad_to(output_boxes, settings.max_num_instances, -1.0),
            "gt_classes": augment.pad_to(
                tf.cast(tf.boolean_mask(data["groundtruth_classes"], keep), tf.int32),
                settings.max_num_instances, -1),
            "gt_is_crowd": augment.pad_to(tf.boolean_mask(data["groundtruth_is_crowd"], keep),
                                          settings.max_num_instances, False),
            "gt_attributes": augment.pad_to(
                tf.cast(tf.boolean_mask(data["groundtruth_attributes"], keep), tf.float32),
                settings.max_num_instances, 0.0),
        }
        if settings.include_masks:
            labels["gt_masks"] = augment.pad_to(
                self._crop_masks(tf.boolean_mask(masks, keep), output_boxes, image_info),
                settings.max_num_instances, 0.0)
        return image, labels

    def _crop_masks(self, masks: tf.Tensor, output_boxes: tf.Tensor, image_info: tf.Tensor
                    ) -> tf.Tensor:
        """Full-image masks [N, H, W] -> 0/1 masks of each (clipped) box [N, S, S]."""
        size = self._settings.mask_crop_size
        original_boxes = augment.boxes_to_original(output_boxes, image_info)
        crops = tf.image.crop_and_resize(
            tf.cast(masks[..., tf.newaxis], tf.float32), original_boxes,
            tf.range(tf.shape(masks)[0]), [size, size], method="bilinear")
        return tf.cast(crops[..., 0] >= 0.5, tf.float32)


def _source_id_number(source_id: tf.Tensor) -> tf.Tensor:
    is_number = tf.strings.regex_full_match(source_id, r"[0-9]{1,18}")
    return tf.cond(is_number, lambda: tf.strings.to_number(source_id, tf.int64),
                   lambda: tf.constant(-1, tf.int64))


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
