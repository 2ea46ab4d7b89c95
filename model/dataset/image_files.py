"""Checks and normalises encoded images for records.

JPEG or PNG files that are 8-bit RGB and already of the expected size pass
through byte for byte. Anything else is decoded, converted to 8-bit RGB, resized
to the expected size when it differs, and re-encoded (JPEG sources as JPEG,
everything else as PNG). EXIF orientation is ignored: pixels are taken as
stored, which is what TensorFlow's decoders and COCO-style annotations use.

The work one image may cause is bounded before anything is allocated for it:
the header is read first and an image over ``max_pixels`` (width x height) is
refused with ``image_too_large``; an annotated size that differs from the file's
by more than ``MAX_RESIZE_FACTOR`` on a side is refused with
``image_size_mismatch`` instead of being resampled.
"""
import dataclasses
import io
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from model.dataset.rejections import Rejected

JPEG_QUALITY = 95
# A reduced-scale JPEG decode still reads the whole entropy-coded stream, so it
# finds truncation at a fraction of the cost of a full decode.
_JPEG_CHECK_SCALE = 8
_JPEG_END_OF_IMAGE = b"\xff\xd9"
# 50 megapixels: above any camera photo a fashion catalogue uses (a 45 MP
# full-frame camera gives 8256 x 5504), far below what breaks a worker: a
# 20000 x 20000 image would need 1.2 GB as 8-bit RGB.
DEFAULT_MAX_PIXELS = 50_000_000
# An image is resampled to its annotated size only when each side is within
# this factor of the file's; past it the file is not the one annotated (or the
# entry is wrong), and upscaling would cost memory the file does not justify.
MAX_RESIZE_FACTOR = 2.0
# The largest file an image of N pixels needs: 8 bytes a pixel is 16-bit RGBA
# stored uncompressed, the most any format spends; the rest is room for
# metadata (EXIF, ICC profiles, PNG text).
_MAX_BYTES_PER_PIXEL = 8
_MAX_METADATA_BYTES = 16 << 20


class InvalidImage(Rejected):
    """Image bytes that cannot be stored."""


@dataclasses.dataclass
class PreparedImage:
    """Encoded image bytes ready for a record; ``height``/``width`` in pixels."""
    data: bytes
    image_format: str  # "jpeg" or "png"
    height: int
    width: int
    converted_from_mode: Optional[str] = None  # the source mode when converted to RGB
    resized_from: Optional[Tuple[int, int]] = None  # the source (height, width) when resized


def _check_pixels(width: int, height: int, max_pixels: Optional[int], what: str) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise InvalidImage("image_too_large", f"{what}{width}x{height} = {width * height} pixels "
                                              f"is over the limit of {max_pixels} (--max_image_pixels)")


def check_pixels(data: bytes, max_pixels: int) -> None:
    """Reads only the header; raises InvalidImage('image_too_large') above ``max_pixels``.

    Bytes Pillow cannot read the header of pass: ``prepare_image`` says why.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError as exc:  # Pillow's own, far higher, limit
        raise InvalidImage("image_too_large", str(exc)) from None
    except Exception:
        return
    _check_pixels(width, height, max_pixels, "")


def check_annotated_size(height: int, width: int, max_pixels: int) -> None:
    """Raises InvalidImage('image_too_large') when an annotated size is over ``max_pixels``.

    Records and masks are made at the annotated size, so this bounds them
    before the file is read.
    """
    _check_pixels(width, height, max_pixels, "the images entry's size ")


def max_file_bytes(max_pixels: int) -> int:
    """The largest image file that can hold an image of at most ``max_pixels``."""
    return _MAX_BYTES_PER_PIXEL * max_pixels + _MAX_METADATA_BYTES


def _check_resize(size: Tuple[int, int], target: Tuple[int, int]) -> None:
    """Raises InvalidImage('image_size_mismatch') when ``size`` is too far from ``target``."""
    for side, wanted, name in zip(size, target, ("height", "width")):
        if max(side, wanted) > MAX_RESIZE_FACTOR * min(side, wanted):
            raise InvalidImage(
                "image_size_mismatch",
                f"the file is {size[1]}x{size[0]}, the images entry says {target[1]}x{target[0]}: "
                f"its {name} differs by more than a factor of {MAX_RESIZE_FACTOR:g}, the most that "
                f"is resampled")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16") or image.mode == "I":
        levels = np.asarray(image, dtype=np.uint32) >> 8
        return Image.fromarray(np.clip(levels, 0, 255).astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")


def _check_complete(image: Image.Image, data: bytes) -> None:
    """Raises unless a JPEG or PNG file stored as-is is complete, without a full decode.

    The header was parsed by ``Image.open``. A PNG is then walked chunk by chunk
    with every CRC checked (``verify``). A JPEG that ends with its end-of-image
    marker is complete (0xFF bytes inside the entropy-coded data are always
    stuffed, so the marker cannot appear early there); one that does not, such
    as a file with trailing data, gets a reduced-scale decode, which reads the
    whole entropy-coded stream.
    """
    if image.format == "PNG":
        image.verify()
    elif not data.endswith(_JPEG_END_OF_IMAGE):
        width, height = image.size
        image.draft("RGB", (max(1, width // _JPEG_CHECK_SCALE), max(1, height // _JPEG_CHECK_SCALE)))
        image.load()


def prepare_image(data: bytes, expected_size: Optional[Tuple[int, int]] = None,
                  max_pixels: Optional[int] = None) -> PreparedImage:
    """Validates ``data`` and returns bytes to store.

    Args:
      data: the file's bytes.
      expected_size: (height, width) the annotations refer to, or None to keep
        the image's own size.
      max_pixels: the most width x height the file may declare (None: no limit
        but Pillow's own); checked on the header, before decoding.

    Raises:
      InvalidImage: empty, unreadable, truncated or corrupt file
        (``empty_file``, ``undecodable_image``), one over ``max_pixels``
        (``image_too_large``), or one too far from ``expected_size``
        (``image_size_mismatch``).
    """
    if not data:
        raise InvalidImage("empty_file", "image file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # Pillow's own, far higher, limit
        raise InvalidImage("image_too_large", str(exc)) from None
    except Exception as exc:  # PIL raises many types for corrupt data
        raise InvalidImage("undecodable_image", f"cannot decode image: {exc}") from None
    width, height = image.size
    _check_pixels(width, height, max_pixels, "")
    target = expected_size or (height, width)
    _check_resize((height, width), tuple(target))
    try:
        source_format = image.format
        passthrough = (source_format in ("JPEG", "PNG") and image.mode == "RGB"
                       and (height, width) == tuple(target))
        if passthrough:
            _check_complete(image, data)
            return PreparedImage(data, source_format.lower(), height, width)
        image.load()
    except Exception as exc:  # PIL raises many types for corrupt data
        raise InvalidImage("undecodable_image", f"cannot decode image: {exc}") from None

    source_mode = image.mode
    rgb = _to_rgb(image)
    target_height, target_width = target
    resized_from = None
    if (height, width) != (target_height, target_width):
        rgb = rgb.resize((target_width, target_height), Image.BILINEAR)
        resized_from = (height, width)
    out_format = "jpeg" if source_format == "JPEG" else "png"
    buffer = io.BytesIO()
    if out_format == "jpeg":
        rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        rgb.save(buffer, format="PNG")
    return PreparedImage(
        buffer.getvalue(), out_format, target_height, target_width,
        converted_from_mode=None if source_mode == "RGB" else source_mode,
        resized_from=resized_from)
