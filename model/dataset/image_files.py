"""Checks and normalises encoded images for records.

JPEG or PNG files that are 8-bit RGB and already of the expected size pass
through byte for byte. Anything else is decoded, converted to 8-bit RGB, resized
to the expected size when it differs, and re-encoded (JPEG sources as JPEG,
everything else as PNG). EXIF orientation is ignored: pixels are taken as
stored, which is what TensorFlow's decoders and COCO-style annotations use.
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


def prepare_image(data: bytes, expected_size: Optional[Tuple[int, int]] = None) -> PreparedImage:
    """Validates ``data`` and returns bytes to store.

    Args:
      data: the file's bytes.
      expected_size: (height, width) the annotations refer to, or None to keep
        the image's own size.

    Raises:
      InvalidImage: empty, unreadable, truncated or corrupt file.
    """
    if not data:
        raise InvalidImage("empty_file", "image file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
        source_format = image.format
        width, height = image.size
        target = expected_size or (height, width)
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
