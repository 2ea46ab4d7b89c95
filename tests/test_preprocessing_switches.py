"""model.preprocessing switches: TF1 resize and mean-colour padding, as tensorflow/tpu's parsers."""
import numpy as np
import tensorflow as tf

from model.config.schema import PreprocessingConfig
from model.data import augment
from model.serving import preprocess


def _photo(height=40, width=60):
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, [height, width, 3], dtype=np.uint8)


def test_v1_resize_equals_tf1_resize_images():
    image = tf.image.convert_image_dtype(_photo(), tf.float32)
    ours, info = augment.resize_and_crop(image, (64, 64), half_pixel_centers=False)
    expected = tf.compat.v1.image.resize_images(image, [43, 64])  # 40 * 64/60 = 42.67 -> 43
    np.testing.assert_array_equal(info.numpy()[1], [43, 64])
    np.testing.assert_allclose(ours.numpy()[:43], expected.numpy(), atol=1e-6)
    default, _ = augment.resize_and_crop(image, (64, 64))
    assert np.abs(default.numpy()[:43] - expected.numpy()).max() > 0.01  # the switch matters


def test_pad_with_mean_zeroes_exactly_the_padding_after_normalising():
    encoded = tf.io.encode_png(_photo())
    black, info = preprocess(encoded, 64)
    mean, info_mean = preprocess(encoded, 64, PreprocessingConfig(pad_with_mean=True))
    np.testing.assert_array_equal(info.numpy(), info_mean.numpy())
    np.testing.assert_array_equal(mean.numpy()[:43], black.numpy()[:43])
    assert np.all(mean.numpy()[43:] == 0.0)
    assert np.all(black.numpy()[43:] < -1.5)  # black, normalised
