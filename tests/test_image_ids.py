import numpy as np
import tensorflow as tf

from model.dataset.image_ids import (ID_LIMIT, NON_DECIMAL_SOURCE_ID, decimal_image_id,
                                     image_id_from_path, record_image_id, source_id_to_image_id)
from tpu.input_fn import PADDING_SOURCE_ID

SOURCE_IDS = ["0", "000", "7", "0042", "123", str(ID_LIMIT - 1), "0" * 30 + str(ID_LIMIT - 1),
              str(ID_LIMIT), "9" * 16, "1" * 17, "1" * 5000, "", "photo-7", "12a", "-3", "+3",
              " 3", "3 ", "3\n", "1e3", "\u0663", "\u00b2"]


def test_python_rule():
    assert decimal_image_id("0042") == 42 and decimal_image_id("000") == 0
    assert decimal_image_id(str(ID_LIMIT - 1)) == ID_LIMIT - 1
    for text in (str(ID_LIMIT), "1" * 5000, "", "photo-7", "-3", "3\n", "\u0663", "\u00b2"):
        assert decimal_image_id(text) is None, text
    assert record_image_id("\u0663", "a.jpg") == image_id_from_path("\u0663")
    assert record_image_id(None, "shop/a.jpg") == image_id_from_path("shop/a.jpg")


def test_tensorflow_rule_is_the_python_rule():
    expected = [NON_DECIMAL_SOURCE_ID if decimal_image_id(text) is None else decimal_image_id(text)
                for text in SOURCE_IDS]
    batch = source_id_to_image_id(tf.constant(SOURCE_IDS))
    assert batch.dtype == tf.int64
    np.testing.assert_array_equal(batch.numpy(), expected)
    scalars = [int(source_id_to_image_id(tf.constant(text))) for text in SOURCE_IDS]
    assert scalars == expected


def test_non_decimal_is_not_padding_nor_an_image_id():
    assert NON_DECIMAL_SOURCE_ID != PADDING_SOURCE_ID
    assert NON_DECIMAL_SOURCE_ID < 0 and PADDING_SOURCE_ID < 0
