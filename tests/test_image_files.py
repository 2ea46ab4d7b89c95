import io

import numpy as np
import pytest
from PIL import Image

from model.dataset.image_files import InvalidImage, prepare_image

PIXELS = np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8)


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_rgb_jpeg_and_png_of_the_right_size_pass_through(fmt):
    data = _encode(Image.fromarray(PIXELS), fmt)
    prepared = prepare_image(data, (30, 40))
    assert prepared.data == data and prepared.image_format == fmt.lower()
    assert prepared.converted_from_mode is None and prepared.resized_from is None


@pytest.mark.parametrize("mode, fmt, out_format", [
    ("L", "PNG", "png"), ("L", "JPEG", "jpeg"), ("CMYK", "JPEG", "jpeg"), ("RGBA", "PNG", "png"),
    ("P", "PNG", "png"), ("LA", "PNG", "png"), ("RGB", "BMP", "png"), ("RGB", "GIF", "png"),
])
def test_other_modes_and_formats_become_rgb(mode, fmt, out_format):
    data = _encode(Image.fromarray(PIXELS).convert(mode), fmt)
    prepared = prepare_image(data, (30, 40))
    assert prepared.image_format == out_format
    decoded = Image.open(io.BytesIO(prepared.data))
    assert decoded.mode == "RGB" and decoded.size == (40, 30)


def test_sixteen_bit_grey_keeps_its_high_byte():
    grey16 = (PIXELS[..., 0].astype(np.uint16) << 8) | 0x7F
    prepared = prepare_image(_encode(Image.fromarray(grey16), "PNG"))
    assert prepared.converted_from_mode.startswith("I")
    decoded = np.asarray(Image.open(io.BytesIO(prepared.data)))
    np.testing.assert_array_equal(decoded[..., 0], PIXELS[..., 0])


def test_size_mismatch_is_rescaled_to_the_annotated_size():
    prepared = prepare_image(_encode(Image.fromarray(PIXELS), "JPEG"), (60, 80))
    assert prepared.resized_from == (30, 40) and (prepared.height, prepared.width) == (60, 80)
    assert Image.open(io.BytesIO(prepared.data)).size == (80, 60)


@pytest.mark.parametrize("data, code", [
    (b"", "empty_file"),
    (b"GIF89a garbage", "undecodable_image"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "undecodable_image"),
])
def test_unusable_bytes(data, code):
    with pytest.raises(InvalidImage) as error:
        prepare_image(data)
    assert error.value.code == code


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_refused_even_on_the_pass_through_path(fmt):
    data = _encode(Image.fromarray(np.repeat(np.repeat(PIXELS, 8, 0), 8, 1)), fmt)
    with pytest.raises(InvalidImage, match="truncated|Truncated|broken|cannot decode"):
        prepare_image(data[: len(data) - 40], (240, 320))


def test_jpeg_with_trailing_data_after_its_end_marker_is_kept():
    data = _encode(Image.fromarray(PIXELS), "JPEG") + b"\x00vendor trailer"
    assert prepare_image(data, (30, 40)).data == data


def test_png_with_a_corrupted_chunk_is_refused():
    data = bytearray(_encode(Image.fromarray(PIXELS), "PNG"))
    data[len(data) // 2] ^= 0xFF  # inside IDAT: its CRC no longer matches
    with pytest.raises(InvalidImage):
        prepare_image(bytes(data), (30, 40))
