"""Image ids: the integers that records, detections and error files call images by.

Where an id comes from:

* an annotated image keeps its dataset id; make_records stores it in
  ``image/source_id`` as a decimal string;
* an image without annotations (an image-only record, a file given to
  ``predict --images``) gets ``image_id_from_path`` of its path relative to the
  input root, also stored in ``image/source_id`` as a decimal string.

Reading ``image/source_id`` back follows one rule. A source id is *decimal*
when it is one or more ASCII digits (leading zeros allowed) whose value is
below 2**53 (``ID_LIMIT``; at most ``MAX_DIGITS`` = 16 digits after the leading
zeros); its image id is that value. Otherwise:

* predict (``record_image_id``, Python) gives ``image_id_from_path`` of the
  source id, or of the filename when the source id is empty (an id below
  2**53, as for image files);
* the TF input parser (``source_id_to_image_id``, graph code) gives
  ``NON_DECIMAL_SOURCE_ID`` (-2). That is no valid image id (ids are >= 0) and
  differs from ``tpu.input_fn.PADDING_SOURCE_ID`` (-1), the id of the blank
  images that pad the last prediction batch, so a record with a foreign
  source id is never taken for padding (tests/test_image_ids.py checks both).
"""
import hashlib
import re
from typing import Optional

_JSON_SAFE_BITS = 53  # integers below 2**53 survive a round trip through JSON doubles
ID_LIMIT = 2 ** _JSON_SAFE_BITS
MAX_DIGITS = len(str(ID_LIMIT - 1))  # 16
_DIGITS = "[0-9]+"  # ASCII digits only, in Python's re and in RE2 (TensorFlow)
NON_DECIMAL_SOURCE_ID = -2  # tpu.input_fn.PADDING_SOURCE_ID is -1


def image_id_from_path(relative_path: str) -> int:
    """The first 53 bits of SHA-256 of the UTF-8 path relative to the input root.

    The same file under the same root always gets the same id, on any machine
    and runner; distinct paths collide with probability ~n^2 / 2^54.
    """
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - _JSON_SAFE_BITS)


def decimal_image_id(source_id: str) -> Optional[int]:
    """The value of a decimal source id (see the module docstring), else None."""
    if re.fullmatch(_DIGITS, source_id) is None:
        return None
    significant = source_id.lstrip("0")
    if len(significant) > MAX_DIGITS:
        return None
    value = int(significant or "0")
    return value if value < ID_LIMIT else None


def record_image_id(source_id: Optional[str], filename: str) -> int:
    """predict's id of a record: the decimal ``image/source_id``, else a hash of it
    (or of the filename when it is missing), as for image files."""
    value = decimal_image_id(source_id or "")
    return value if value is not None else image_id_from_path(source_id or filename)


def source_id_to_image_id(source_id):
    """TF graph code: string tensor (any shape) -> int64 tensor of the same shape.

    The decimal value of each source id, ``NON_DECIMAL_SOURCE_ID`` where it is
    not decimal; the same rule as ``decimal_image_id``.
    """
    import tensorflow as tf  # here, so that the Python rule imports without TensorFlow

    significant = tf.strings.regex_replace(source_id, "^0+", "")
    decimal = tf.logical_and(tf.strings.regex_full_match(source_id, _DIGITS),
                             tf.strings.length(significant) <= MAX_DIGITS)
    # A leading "0" keeps all-zero ids ("0", "000") parseable; non-decimal ones parse "0".
    text = tf.where(decimal, tf.strings.join(["0", significant]), "0")
    value = tf.strings.to_number(text, tf.int64)
    return tf.where(tf.logical_and(decimal, value < ID_LIMIT), value,
                    tf.constant(NON_DECIMAL_SOURCE_ID, tf.int64))
