"""Binary instance masks as 1-bit PNGs.

A mask is written as a palette PNG of bit depth 1 whose two palette entries are
grey levels 0 and 1. Pillow reads it back as 0/1 indices and TensorFlow's
``decode_png(channels=1)`` reads it as 0/1 grey values, so records stay
compatible with decoders that expect the 0/1 8-bit masks of the classic COCO
record tools, while encoding costs about as much as a plain 1-bit PNG (several
times less than an 8-bit PNG).
"""
import io

import numpy as np
from PIL import Image

_PALETTE_ZERO_ONE = [0, 0, 0, 1, 1, 1]


def encode_mask_png(mask: np.ndarray) -> bytes:
    """Encodes a binary mask.

    Args:
      mask: uint8 or bool array [height, width]; any non-zero value is foreground.

    Returns:
      PNG bytes (bit depth 1, palette {0: grey 0, 1: grey 1}).
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D [height, width], got shape {mask.shape}")
    height, width = mask.shape
    packed = np.packbits(mask.astype(bool), axis=1)
    image = Image.frombytes("P", (width, height), packed.tobytes(), "raw", "P;1")
    image.putpalette(_PALETTE_ZERO_ONE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decode_mask_png(png: bytes) -> np.ndarray:
    """Decodes a mask PNG (any bit depth or mode) to uint8 [height, width] of 0/1."""
    with Image.open(io.BytesIO(png)) as image:
        return (np.asarray(image) > 0).astype(np.uint8)
