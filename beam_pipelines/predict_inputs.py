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

``--images_manifest`` lists the files instead (``manifest_path`` reads one
line; ``ReadListedImages``): the same naming, confinement and checks, and a
listed path that does not exist fails with ``missing_file``.

Counters in the ``predict`` namespace: images_read, images_failed and
images_failed.<code>, images_converted.
"""
import os
from typing import Any, Iterable, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import dead_letters, image_paths
from beam_pipelines.file_reads import read_file
from beam_pipelines.image_paths import relative_path
from beam_pipelines.matched_images import ReadMatchedImages
from beam_pipelines.pipeline_metrics import Counters
from model.dataset.image_files import InvalidImage, PreparedImage, check_pixels, prepare_image
from model.dataset.image_ids import record_image_id

NAMESPACE = "predict"
COUNTERS = Counters(NAMESPACE)
ImageKey = Tuple[int, str]  # (image_id, filename)


def checked_image(data: bytes, max_pixels: int) -> PreparedImage:
    """Image bytes the model can decode, or InvalidImage with a code and a reason."""
    check_pixels(data, max_pixels)
    prepared = prepare_image(data)
    COUNTERS.inc("images_converted", int(prepared.data is not data))
    return prepared


class ReadImageFiles(ReadMatchedImages):
    """Beam ReadableFile -> ((image_id, relative path), image bytes); failures to ``errors``.

    ``image_id`` is ``image_id_from_path`` of the path relative to ``root``, the
    id make_records gives the same file as an image-only record.
    """

    def __init__(self, root: str, max_pixels: int):
        super().__init__(root, COUNTERS)
        self._max_pixels = max_pixels

    def accept(self, image_id: int, relative: str, data: bytes) -> Tuple[ImageKey, bytes]:
        return (image_id, relative), checked_image(data, self._max_pixels).data


def manifest_root(manifest: str, images_dir: Optional[str]) -> str:
    """The directory a manifest's relative paths are below: ``--images`` when given,
    else the directory that holds the manifest; made absolute when local."""
    directory = images_dir or FileSystems.split(manifest)[0]
    return directory if FileSystems.get_scheme(directory) else os.path.abspath(directory)


def manifest_path(line: str, root: str) -> Iterable[str]:
    """One manifest line -> the path it lists (none for a blank or ``#`` comment line).

    Surrounding whitespace is dropped. A relative path is below ``root``; a URI
    (``gs://...``) or an absolute local path is used as written. A path below
    ``root`` comes out as ``root``/normalised name (``image_paths.confined_name``:
    ``./a.jpg`` and ``a.jpg`` are one file), so that ``Distinct`` sees each file
    once; a path that leaves ``root`` comes out as it is, and ``ReadListedImages``
    rejects it.
    """
    entry = line.strip()
    if not entry or entry.startswith("#"):
        return
    if FileSystems.get_scheme(entry) or entry.startswith("/"):
        relative = relative_path(entry, root)
        if relative == entry:  # not below root
            yield entry
            return
    else:
        relative = entry
    try:
        relative = image_paths.confined_name(relative)
    except InvalidImage:
        pass  # ReadListedImages gives the reason
    yield FileSystems.join(root, relative)


class ReadListedImages(ReadImageFiles):
    """A path listed in the manifest -> what ReadImageFiles makes of a matched file.

    Named and identified like a matched file below ``root`` (``relative_path``):
    ``--images ROOT`` and a manifest of the same files give the same filenames
    and ids. Reads stay below ``root`` as for ``--images``: a listed path outside
    it, or leading out of it (``../x``), fails with ``file_outside_image_dir``
    (its ``filename`` is then the path as listed). A path that does not exist
    fails with ``missing_file``.
    """

    def check_path(self, path: str, relative: str) -> None:
        if relative == path:
            raise InvalidImage(image_paths.FILE_OUTSIDE_IMAGE_DIR,
                               f"{path} is not below {self._root} (the manifest's root: --images, "
                               f"or the manifest's directory)")
        if image_paths.confined_name(relative) != relative:
            raise InvalidImage(image_paths.FILE_OUTSIDE_IMAGE_DIR,
                               f"{relative} is not a normalised path below {self._root}")
        super().check_path(path, relative)

    def process(self, path: str) -> Iterable[Any]:
        yield from self.read_image(path, lambda: read_file(path))


def _feature_bytes(example, key: str) -> Optional[bytes]:
    values = example.features.feature[key].bytes_list.value if key in example.features.feature else []
    return values[0] if values else None


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
        COUNTERS.inc("images_read")
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
            yield dead_letters.failed_image(COUNTERS, image_id, filename, exc)
            return
        if prepared.data is not data:
            example.features.feature[schema.ENCODED].bytes_list.value[:] = [prepared.data]
            serialized = example.SerializeToString()
        yield (image_id, filename), serialized
