"""Detection AutoAugment with instance masks: geometry moves image, boxes and masks together."""
import numpy as np
import pytest
import tensorflow as tf

from model.data import autoaugment
from model.data import autoaugment_ops as ops

HEIGHT, WIDTH = 48, 64
COLOURS = np.array([[250, 20, 20], [20, 250, 20], [20, 20, 250]], np.uint8)


def _sample():
    """Three coloured rectangles on a dark image, with their masks and normalised boxes."""
    image = np.full([HEIGHT, WIDTH, 3], 10, np.uint8)
    masks = np.zeros([3, HEIGHT, WIDTH], np.uint8)
    rectangles = [(4, 6, 20, 30), (24, 34, 44, 60), (10, 40, 18, 52)]  # ymin, xmin, ymax, xmax
    for index, (y0, x0, y1, x1) in enumerate(rectangles):
        masks[index, y0:y1, x0:x1] = 1
        image[y0:y1, x0:x1] = COLOURS[index]
    boxes = (np.array(rectangles) / [HEIGHT, WIDTH, HEIGHT, WIDTH]).astype(np.float32)
    return tf.constant(image), tf.constant(boxes), tf.constant(masks)


def _assert_boxes_enclose_masks(boxes, masks, tolerance=1.0):
    """Every non-empty mask lies inside its pixel box, give or take ``tolerance`` pixels."""
    height, width = masks.shape[1:]
    for box, mask in zip(boxes * [height, width, height, width], masks):
        rows, cols = np.nonzero(mask)
        if rows.size == 0:
            continue
        assert rows.min() >= box[0] - tolerance and rows.max() + 1 <= box[2] + tolerance
        assert cols.min() >= box[1] - tolerance and cols.max() + 1 <= box[3] + tolerance


@pytest.mark.parametrize("name, transform", [
    ("translate", lambda s: ops.translate(s, 7.0, True)),
    ("translate_y", lambda s: ops.translate(s, -5.0, False)),
    ("rotate", lambda s: ops.rotate(s, 24.0)),
    ("rotate_back", lambda s: ops.rotate(s, -30.0)),
    ("shear", lambda s: ops.shear(s, 0.3, False)),
])
def test_geometric_operations_move_pixels_boxes_and_masks_together(name, transform):
    image, boxes, masks = (t.numpy() for t in transform(_sample()))
    assert image.shape == (HEIGHT, WIDTH, 3) and masks.shape == (3, HEIGHT, WIDTH)
    _assert_boxes_enclose_masks(boxes, masks)
    for index, mask in enumerate(masks):
        assert mask.sum() > 30
        # Away from the mask's edge (bilinear blending), the pixels carry the instance's colour.
        inner = tf.nn.erosion2d(mask[np.newaxis, ..., np.newaxis].astype(np.float32),
                                np.zeros([3, 3, 1], np.float32), [1, 1, 1, 1], "SAME",
                                "NHWC", [1, 1, 1, 1]).numpy()[0, ..., 0] > 0
        assert inner.sum() > 10
        np.testing.assert_allclose(image[inner].mean(axis=0), COLOURS[index], atol=12)


def test_rotation_by_a_right_angle_gives_the_exact_boxes_and_masks():
    _, boxes, masks = ops.rotate(_sample(), 90.0)
    # Rows 4..20, cols 6..30 turn about the centre (x 32, y 24) to rows -2..22 (clipped at 0)
    # and cols 36..52.
    np.testing.assert_allclose(boxes.numpy()[0] * [HEIGHT, WIDTH, HEIGHT, WIDTH],
                               [0.0, 36.0, 22.0, 52.0], atol=1e-4)
    rows, cols = np.nonzero(masks.numpy()[0])
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (0, 22, 36, 52)


def test_a_box_moved_out_of_the_image_gets_zero_area_and_an_empty_mask():
    _, boxes, masks = ops.translate(_sample(), 40.0, True)
    boxes, masks = boxes.numpy(), masks.numpy()
    assert boxes[1, 3] == boxes[1, 1] == 1.0 and masks[1].sum() == 0
    assert masks[0].sum() > 0


@pytest.mark.parametrize("name", ["AutoContrast", "Equalize", "Posterize", "SolarizeAdd", "Color",
                                  "Contrast", "Brightness", "Sharpness", "Cutout", "BoxCutout"])
def test_colour_and_cutout_operations_leave_boxes_and_masks_alone(name):
    image, boxes, masks = _sample()
    new_image, new_boxes, new_masks = autoaugment.operation(name, 8)((image, boxes, masks))
    assert new_image.dtype == tf.uint8 and new_image.shape == image.shape
    np.testing.assert_array_equal(new_boxes, boxes)
    np.testing.assert_array_equal(new_masks, masks)


def test_colour_operations_match_hand_computed_values():
    image = tf.constant([[[0, 100, 200], [50, 150, 255]]], tf.uint8)
    np.testing.assert_array_equal(ops.posterize(image, 2), [[[0, 64, 192], [0, 128, 192]]])
    np.testing.assert_array_equal(ops.posterize(image, 0), [[[0, 0, 128], [0, 128, 128]]])
    np.testing.assert_array_equal(ops.solarize_add(image, 66), [[[66, 166, 200], [116, 150, 255]]])
    np.testing.assert_array_equal(ops.brightness(image, 0.5), [[[0, 50, 100], [25, 75, 128]]])
    np.testing.assert_array_equal(ops.autocontrast(image), [[[0, 0, 0], [255, 255, 255]]])


def test_policy_v3_traces_in_tf_data_and_keeps_instances_in_order():
    tf.random.set_seed(11)
    image, boxes, masks = _sample()
    areas = masks.numpy().sum(axis=(1, 2))
    dataset = tf.data.Dataset.from_tensors((image, boxes, masks)).repeat(24).map(
        lambda i, b, m: autoaugment.distort(i, b, m, "v3"))
    changed = 0
    for new_image, new_boxes, new_masks in dataset:
        new_boxes, new_masks = new_boxes.numpy(), new_masks.numpy()
        assert new_image.shape == image.shape and new_masks.shape == masks.shape
        _assert_boxes_enclose_masks(new_boxes, new_masks)
        # Rotations and shears keep an instance's area within a few percent; a mask never
        # grows to the area of another one, so the instance order is the input's.
        kept = new_masks.sum(axis=(1, 2))
        assert np.all(kept <= areas * 1.15 + 4)
        changed += int(not np.array_equal(new_image.numpy(), image.numpy()))
    assert changed > 12


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="v3"):
        autoaugment.distort(*_sample(), "v9")
