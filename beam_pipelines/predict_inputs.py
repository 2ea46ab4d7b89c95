"""Prediction inputs, checked one by one before they are batched.

Each input becomes ``((image_id, filename), payload)`` where the payload is
what the model signature takes: image bytes, or a serialized tf.Example.
Every image is checked on the worker before batching, so that a bad file fails
alone instead of failing the batch it would have joined:

* the header is read first and an image over ``max_pixels`` (width x height)
  is rejected without decoding it: a 20000 x 20000 image would need 1.2 GB as
  8-bit RGB and several times that as the model's float input;
* then ``image_files.prepare_image``: 8-bit RGB JPEG/PNG pass through after a
  cheap completeness check; other modes (CMYK, 16-bit, grayscale, palette,
  alpha) and formats (GIF, BMP, TIFF, WebP ...) are converted to 8-bit RGB;
  empty, truncated or undecodable files are rejected.

Counters in the ``predict`` namespace: images_read, images_failed and
images_failed.<code>, images_converted.
"""
import io
from typing import Any, Iterable, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput
from PIL import Image

from model.dataset import rejections
from model.dataset.image_files import InvalidImage, PreparedImage, prepare_image
from model.dataset.image_ids import image_id_from_path
from beam_pipelines.image_paths import relative_path

NAMESPACE = "predict"
ERRORS = "errors"
# 50 megapixels: above any camera photo a fashion catalogue uses (a 45 MP
# full-frame camera gives 8256 x 5504), far below what breaks a worker.
DEFAULT_MAX_PIXELS = 50_000_000
ImageKey = Tuple[int, str]  # (image_id, filename)


def count(name: str, value: int = 1) -> None:
    if value:
        Metrics.counter(NAMESPACE, name).inc(value)


def count_failure(code: str) -> None:
    count("images_failed")
    count(f"images_failed.{code}")


def check_pixels(data: bytes, max_pixels: int) -> None:
    """Reads only the header; raises InvalidImage('image_too_large') above ``max_pixels``."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError as exc:  # Pillow's own, far higher, limit
        raise InvalidImage("image_too_large", str(exc)) from None
    except Exception:
        return  # not an image Pillow can read the header of: prepare_image says why
    if width * height > max_pixels:
        raise InvalidImage("image_too_large", f"{width}x{height} = {width * height} pixels is over "
                                              f"the limit of {max_pixels} (--max_image_pixels)")


def checked_image(data: bytes, max_pixels: int) -> PreparedImage:
    """Image bytes the model can decode, or InvalidImage with a code and a reason."""
    check_pixels(data, max_pixels)
    prepared = prepare_image(data)
    count("images_converted", int(prepared.data is not data))
    return prepared


def _failure(image_id: Optional[int], filename: Optional[str], exc: InvalidImage) -> TaggedOutput:
    count_failure(exc.code)
    return TaggedOutput(ERRORS, rejections.failed_image(image_id, filename, exc.code, str(exc)))


class ReadImageFiles(beam.DoFn):
    """Beam ReadableFile -> ((image_id, relative path), image bytes); failures to ``errors``.

    ``image_id`` is ``image_id_from_path`` of the path relative to ``root``, the
    id make_records gives the same file as an image-only record.
    """

    def __init__(self, root: str, max_pixels: int):
        self._root = root
        self._max_pixels = max_pixels

    def process(self, readable_file) -> Iterable[Any]:
        count("images_read")
        relative = relative_path(readable_file.metadata.path, self._root)
        image_id = image_id_from_path(relative)
        try:
            try:
                data = readable_file.read()
            except Exception as exc:  # vanished or unreadable since it was matched
                raise InvalidImage("unreadable_file", f"cannot read {relative}: {exc}") from None
            prepared = checked_image(data, self._max_pixels)
        except InvalidImage as exc:
            yield _failure(image_id, relative, exc)
            return
        yield (image_id, relative), prepared.data


def _feature_bytes(example, key: str) -> Optional[bytes]:
    values = example.features.feature[key].bytes_list.value if key in example.features.feature else []
    return values[0] if values else None


def record_image_id(source_id: Optional[str], filename: str) -> int:
    """``image/source_id`` when it is a decimal integer below 2^53, else a hash of it
    (or of the filename when it is missing), as for image files."""
    if source_id and source_id.isdigit() and int(source_id) < 2 ** 53:
        return int(source_id)
    return image_id_from_path(source_id or filename)


class ReadRecords(beam.DoFn):
    """Serialized tf.Example from make_records -> ((image_id, filename), serialized tf.Example).

    ``image_id`` comes from ``image/source_id``; the image in ``image/encoded``
    is checked like a file, and replaced in the record when it had to be
    converted. Failures go to ``errors``.
    """

    def __init__(self, max_pixels: int):
        self._max_pixels = max_pixels

    def setup(self) -> None:
        from model import record_schema
        import tensorflow as tf
        self._schema = record_schema
        self._example_class = tf.train.Example

    def process(self, serialized: bytes) -> Iterable[Any]:
        count("images_read")
        schema = self._schema
        image_id, filename = None, None
        try:
            try:
                example = self._example_class.FromString(serialized)
            except Exception:
                raise InvalidImage("malformed_record", "not a serialized tf.Example") from None
            filename = (_feature_bytes(example, schema.FILENAME) or b"").decode("utf-8", "replace")
            source_id = (_feature_bytes(example, schema.SOURCE_ID) or b"").decode("utf-8", "replace")
            image_id = record_image_id(source_id, filename)
            data = _feature_bytes(example, schema.ENCODED)
            if data is None:
                raise InvalidImage("malformed_record", f"record has no {schema.ENCODED}")
            prepared = checked_image(data, self._max_pixels)
        except InvalidImage as exc:
            yield _failure(image_id, filename, exc)
            return
        if prepared.data is not data:
            example.features.feature[schema.ENCODED].bytes_list.value[:] = [prepared.data]
            serialized = example.SerializeToString()
        yield (image_id, filename), serialized
