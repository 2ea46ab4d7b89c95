"""TPUEstimator input functions over make_records' TFRecords.

Training yields (features, labels) forever, shuffled; prediction yields features
for every record (or the first ``eval.num_images``) exactly once in file order, the last batch filled up with
blank images whose ``source_id`` is -1 (static batch shapes without losing the
tail; ``tpu.evaluation`` drops them).

``params["batch_size"]`` is set by TPUEstimator: per core on a TPU (per-host
input v2), the whole batch elsewhere.
"""
import dataclasses
from typing import Optional, Tuple

import tensorflow as tf

from model.config.schema import ExperimentConfig
from model.data.augment import identity_image_info
from model.data.parser import PREDICT, TRAIN, Parser, ParserSettings, make_dataset

FEATURE_KEYS = ("images", "image_info")
PADDING_SOURCE_ID = -1


def train_input_fn(config: ExperimentConfig, file_pattern: str,
                   category_ids: Tuple[int, ...] = ()):
    """``category_ids``: empty when the records' labels are model classes; else the label
    map's category ids, ascending, that the records' labels are mapped through."""
    settings = dataclasses.replace(ParserSettings.from_experiment(config),
                                   category_ids=tuple(category_ids))

    def input_fn(params):
        dataset = make_dataset(file_pattern, Parser(settings, TRAIN), params["batch_size"],
                               training=True, shuffle_buffer=config.input.shuffle_buffer)
        return dataset.map(_split_features, num_parallel_calls=tf.data.AUTOTUNE)

    return input_fn


def _split_features(images, labels):
    features = {"images": images, "image_info": labels["image_info"]}
    labels = {key: value for key, value in labels.items() if key not in ("image_info", "source_id")}
    return features, labels


def prediction_records(file_pattern: str, num_images: int = 0) -> tf.data.Dataset:
    """The serialized records prediction reads, in its order: the files in name order, each
    from start to end; the first ``num_images`` only when > 0."""
    files = tf.data.Dataset.list_files(file_pattern, shuffle=False)
    records = files.interleave(tf.data.TFRecordDataset, cycle_length=1)
    return records.take(num_images) if num_images > 0 else records


def predict_input_fn(config: ExperimentConfig, file_pattern: str,
                     num_images: Optional[int] = None):
    """Features of every record of ``file_pattern`` (``prediction_records``; ``num_images``
    None: ``eval.num_images``), then the blank padding images."""
    settings = dataclasses.replace(ParserSettings.from_experiment(config), include_masks=False)
    size = config.input.image_size
    limit = config.eval.num_images if num_images is None else num_images

    def input_fn(params):
        batch_size = params["batch_size"]
        parser = Parser(settings, PREDICT)
        records = prediction_records(file_pattern, limit)
        images = records.map(lambda record: _prediction_features(*parser(record)),
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        blank = {
            "images": tf.zeros([size, size, 3]),
            "image_info": identity_image_info(size),
            "source_id": tf.constant(PADDING_SOURCE_ID, tf.int64),
        }
        padding = tf.data.Dataset.from_tensors(blank).repeat(batch_size - 1)
        return images.concatenate(padding).batch(batch_size, drop_remainder=True).prefetch(2)

    return input_fn


def _prediction_features(image, labels):
    return {"images": image, "image_info": labels["image_info"], "source_id": labels["source_id"]}
