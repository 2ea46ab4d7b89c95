"""Images matched by a glob: read one file, name it, hand it on or reject it.

make_records (image-only records) and predict (``--images``) both start from
``fileio.MatchFiles`` + ``ReadMatches``. ``ReadMatchedImages`` names each file
by its path relative to the input root, gives it the id ``image_id_from_path``
of that name (so both pipelines give a file the same id), reads its bytes and
passes ``(image_id, relative path, bytes)`` to the subclass's ``accept``. An
``InvalidImage`` from reading or from ``accept`` becomes the image's dead letter;
so does a local file whose real path (a symlink) leaves the root
(``image_paths.FILE_OUTSIDE_IMAGE_DIR``), which is not read. ``read_image``
does the same for a path that was listed rather than matched
(``predict --images_manifest``).
"""
from typing import Any, Callable, Iterable

import apache_beam as beam

from beam_pipelines import dead_letters
from beam_pipelines.file_reads import input_read_error
from beam_pipelines.image_paths import check_inside, relative_path
from beam_pipelines.pipeline_metrics import Counters
from model.dataset.image_files import InvalidImage
from model.dataset.image_ids import image_id_from_path


class ReadMatchedImages(beam.DoFn):
    """Beam ``ReadableFile`` -> ``accept``'s output; failures to ``dead_letters.ERRORS``.

    Counts ``images_read`` for every file and ``images_failed`` (``.code``) for
    every rejected one, in ``counters``.
    """

    def __init__(self, root: str, counters: Counters):
        self._root = root
        self._counters = counters

    def accept(self, image_id: int, relative: str, data: bytes) -> Any:
        """The main output for one file's bytes; raises InvalidImage to reject it."""
        raise NotImplementedError

    def unreadable_name(self, path: str, relative: str) -> str:
        """How the reason of an ``unreadable_file`` names the file (the relative path)."""
        return relative

    def check_path(self, path: str, relative: str) -> None:
        """Raises InvalidImage when ``path`` may not be read (a symlink that leaves the root)."""
        check_inside(path, self._root)

    def process(self, readable_file) -> Iterable[Any]:
        yield from self.read_image(readable_file.metadata.path, readable_file.read)

    def read_image(self, path: str, read: Callable[[], bytes]) -> Iterable[Any]:
        """Names the file at ``path``, checks it (``check_path``), reads it with ``read()``
        and accepts or rejects it.

        ``read`` may raise InvalidImage itself (``missing_file`` for a listed
        path that does not exist); any other exception goes through
        ``file_reads.input_read_error``: a dead letter when the file is at fault,
        raised when it is not.
        """
        self._counters.inc("images_read")
        relative = relative_path(path, self._root)
        image_id = image_id_from_path(relative)
        try:
            self.check_path(path, relative)
            try:
                data = read()
            except InvalidImage:
                raise
            except Exception as exc:  # vanished or unreadable since it was matched, or a fault
                raise input_read_error(exc, self.unreadable_name(path, relative)) from None
            output = self.accept(image_id, relative, data)
        except InvalidImage as exc:
            yield dead_letters.failed_image(self._counters, image_id, relative, exc)
            return
        yield output
