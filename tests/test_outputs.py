"""model.outputs: model detections -> original pixels, dataset category ids, defined attributes."""
import numpy as np
import pytest
import tensorflow as tf

from model.data import augment
from model.dataset.record_files import LabelMapMismatch, check_label_map, mixed_runs
from model.label_map import Attribute, Category, LabelMap
from model.config import load_config
from model.outputs import to_dataset_space
from tpu.evaluation import present_attributes

LABELS = LabelMap((Category(3, "a"), Category(7, "b")), (Attribute(0, "x"), Attribute(2, "z")))


def _detections():
    return {
        "boxes": tf.constant([[[10.0, 20.0, 50.0, 90.0], [0.0, -5.0, 200.0, 300.0],
                               [0.0, 0.0, 0.0, 0.0]]]),
        "classes": tf.constant([[2, 1, 0]], tf.int32),
        "scores": tf.constant([[0.9, 0.4, 0.0]]),
        "num_detections": tf.constant([2], tf.int32),
        "mask_probabilities": tf.fill([1, 3, 4, 4], 0.5),
        "attribute_probabilities": tf.constant([[[0.8, 0.9, 0.1]] * 3]),
    }


def test_boxes_categories_and_attribute_slots_in_dataset_space():
    # original 100 x 200, scaled by 0.64 to 64 x 128, then a crop offset of (2, 4)
    image_info = tf.constant([[[100.0, 200.0], [64.0, 128.0], [0.64, 0.64], [2.0, 4.0]]])
    outputs = to_dataset_space(_detections(), image_info, LABELS)
    boxes = outputs["boxes"].numpy()[0]
    np.testing.assert_allclose(boxes[0], [(10 + 2) / 0.64, (20 + 4) / 0.64, (50 + 2) / 0.64,
                                          (90 + 4) / 0.64], rtol=1e-6)
    np.testing.assert_allclose(boxes[1], [2 / 0.64, 0.0, 100.0, 200.0], rtol=1e-6)  # clipped
    np.testing.assert_array_equal(boxes[2], 0.0)
    assert outputs["category_ids"].numpy().tolist() == [[7, 3, -1]]
    np.testing.assert_allclose(outputs["attribute_probabilities"].numpy()[0, 0], [0.8, 0.0, 0.1])
    assert outputs["num_detections"].numpy().tolist() == [2]


def test_without_attribute_head_there_are_no_attribute_outputs():
    detections = _detections()
    del detections["attribute_probabilities"]
    image_info = tf.constant([augment.resize_and_crop(tf.zeros([8, 8, 3]), (8, 8))[1].numpy()])
    assert "attribute_probabilities" not in to_dataset_space(detections, image_info, LABELS)


def test_original_pixels_divided_by_the_size_are_the_normalised_boxes():
    _, info = augment.resize_and_crop(tf.zeros([50, 100, 3]), (64, 64))
    output = tf.constant([[16.0, 32.0, 32.0, 64.0]])
    np.testing.assert_allclose(augment.boxes_to_original_pixels(output, info).numpy(),
                               [[25, 50, 50, 100]])
    np.testing.assert_allclose(augment.boxes_to_original(output, info).numpy(),
                               [[0.5, 0.5, 1.0, 1.0]])


def test_a_slot_at_probability_zero_is_never_present():
    assert present_attributes(np.array([0.8, 0.0, 0.1]), 0.5) == [0]
    assert present_attributes(np.array([0.8, 0.0, 0.1]), 0.0) == [0, 2]


def test_label_map_check_names_file_and_config_key():
    config = load_config("tiny").model  # 7 classes, 82 attribute slots
    with pytest.raises(LabelMapMismatch, match=r"x.json has 3 classes with background; .*"
                                                r"model.num_classes=7"):
        check_label_map(LABELS, config, "x.json")
    six = LabelMap(tuple(Category(i, str(i)) for i in range(6)), LABELS.attributes)
    with pytest.raises(LabelMapMismatch, match=r"3 attribute slots; .*model.num_attributes=82"):
        check_label_map(six, config, "x.json")
    config.num_attributes = 0  # a model without attributes takes any
    check_label_map(six, config, "x.json")


def test_mixed_runs_are_prefixes_with_two_shard_totals():
    assert mixed_runs(["a-00000-of-00002.tfrecord", "a-00001-of-00002.tfrecord",
                       "b-00000-of-00001.tfrecord", "b-00000-of-00003.tfrecord.gz",
                       "notes.txt"]) == ["b"]
