import numpy as np
import pytest
import tensorflow as tf

from model import record_schema
from model.label_map import LabelMap, LabelMapError
from model.masks.png import decode_mask_png, encode_mask_png


def _jpeg(height, width):
    return tf.io.encode_jpeg(tf.zeros([height, width, 3], tf.uint8)).numpy()


def test_mask_png_is_one_bit_and_decodes_to_zero_one_everywhere():
    mask = (np.random.default_rng(0).random((33, 47)) > 0.5).astype(np.uint8)
    png = encode_mask_png(mask)
    assert png[24] == 1  # IHDR bit depth
    np.testing.assert_array_equal(decode_mask_png(png), mask)
    decoded_by_tf = tf.io.decode_png(png, channels=1).numpy()[..., 0]
    np.testing.assert_array_equal(decoded_by_tf, mask)  # 0/1, as 8-bit 0/1 masks decode


def test_encode_decode_round_trip():
    masks = np.zeros((2, 6, 8), np.uint8)
    masks[0, 1:3, 2:5] = 1
    masks[1, 4:, :] = 1
    attributes = np.zeros((2, 341), bool)
    attributes[0, [0, 340]] = True
    attributes[1, 17] = True
    example = record_schema.encode_example(
        image_bytes=_jpeg(6, 8), image_format="jpeg", height=6, width=8, filename="a/b.jpg",
        source_id="42", boxes=np.array([[0.1, 0.2, 0.5, 0.6], [0.6, 0.0, 1.0, 1.0]]),
        classes=[3, 46], class_texts=["x", "y"], is_crowd=[0, 1], areas=[6.0, 16.0],
        mask_pngs=[encode_mask_png(m) for m in masks], attributes=attributes)
    decoded = record_schema.RecordDecoder(num_attributes=341).decode(example.SerializeToString())
    assert decoded["source_id"].numpy() == b"42" and decoded["filename"].numpy() == b"a/b.jpg"
    assert decoded["image"].shape == (6, 8, 3)
    np.testing.assert_allclose(decoded["groundtruth_boxes"].numpy(),
                               [[0.1, 0.2, 0.5, 0.6], [0.6, 0.0, 1.0, 1.0]], rtol=1e-6)
    np.testing.assert_array_equal(decoded["groundtruth_classes"].numpy(), [3, 46])
    np.testing.assert_array_equal(decoded["groundtruth_is_crowd"].numpy(), [False, True])
    np.testing.assert_array_equal(decoded["groundtruth_instance_masks"].numpy(), masks)
    np.testing.assert_array_equal(decoded["groundtruth_attributes"].numpy(), attributes)


def test_attribute_bytes_are_row_major_bool():
    attributes = np.zeros((2, 5), bool)
    attributes[1, 3] = True
    example = record_schema.encode_example(
        image_bytes=b"x", image_format="jpeg", height=1, width=1, filename="f", source_id="1",
        boxes=np.zeros((2, 4)), classes=[1, 1], class_texts=["a", "a"], is_crowd=[0, 0],
        areas=[1, 1], attributes=attributes)
    raw = example.features.feature[record_schema.ATTRIBUTES].bytes_list.value[0]
    assert raw == bytes([0, 0, 0, 0, 0, 0, 0, 0, 1, 0])


def test_decoder_in_graph_mode_and_without_objects():
    example = record_schema.encode_example(
        image_bytes=_jpeg(5, 7), image_format="jpeg", height=5, width=7, filename="f",
        source_id="9")
    decoder = record_schema.RecordDecoder(num_attributes=4)
    dataset = tf.data.Dataset.from_tensors(example.SerializeToString()).map(decoder.decode)
    (decoded,) = list(dataset)
    assert decoded["groundtruth_boxes"].shape == (0, 4)
    assert decoded["groundtruth_instance_masks"].shape == (0, 5, 7)
    assert decoded["groundtruth_attributes"].shape == (0, 4)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="classes has 1 entries for 2 boxes"):
        record_schema.encode_example(image_bytes=b"", image_format="jpeg", height=1, width=1,
                                     filename="f", source_id="1", boxes=np.zeros((2, 4)),
                                     classes=[1], class_texts=["a", "b"], is_crowd=[0, 0],
                                     areas=[1, 1])


def test_label_map_json_round_trip_and_errors():
    label_map = LabelMap.from_coco([{"id": 5, "name": "b", "supercategory": "s"},
                                    {"id": 2, "name": "a"}], [{"id": 340, "name": "z"}])
    again = LabelMap.loads(label_map.dumps())
    assert again == label_map and again.num_attributes == 341
    assert again.category_for_class(2).name == "b"
    with pytest.raises(LabelMapError, match="empty"):
        LabelMap.from_coco([])
    with pytest.raises(LabelMapError, match="non-negative integer"):
        LabelMap.from_coco([{"id": "1"}])
