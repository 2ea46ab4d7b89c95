"""Reading one input image file, and what a failed read means.

A read that fails because of the file itself is the input's fault and becomes
an ``InvalidImage`` that the caller dead-letters: ``missing_file`` when the
file does not exist (``FileNotFoundError``, HTTP 404 from Cloud Storage) and
``unreadable_file`` when it exists but cannot be read by this job (a directory,
no permission: ``IsADirectoryError``, ``PermissionError``, HTTP 403).

Any other failure (a lost connection, a timeout, a storage service error such
as HTTP 429 or 5xx, an unknown exception) is not the file's: it is raised as
it is, so that the runner retries the bundle (Dataflow retries a failing work
item four times in batch) instead of recording a good image as bad.
"""
from typing import Optional

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from model.dataset.image_files import InvalidImage

_MISSING_STATUS = 404
_DENIED_STATUS = 403


def _http_status(exc: BaseException) -> Optional[int]:
    """The HTTP status of a Google API error (``google.api_core`` sets ``code``), else None."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def input_read_error(exc: BaseException, name: str) -> InvalidImage:
    """The dead-letter error for a read of ``name`` that failed with ``exc`` because of
    the file itself; re-raises ``exc`` when the failure is not the file's."""
    if isinstance(exc, BeamIOError) and len(exc.exception_details or {}) == 1:
        inner = next(iter(exc.exception_details.values()))  # Beam's wrapper of one path's error
        if isinstance(inner, BaseException):
            try:
                return input_read_error(inner, name)
            except BaseException:
                raise exc from None
    status = _http_status(exc)
    if isinstance(exc, FileNotFoundError) or status == _MISSING_STATUS:
        return InvalidImage("missing_file", f"no such file: {name}")
    if isinstance(exc, (IsADirectoryError, PermissionError)) or status == _DENIED_STATUS:
        return InvalidImage("unreadable_file", f"cannot read {name}: {exc}")
    raise exc


def read_file(path: str, max_bytes: Optional[int] = None) -> bytes:
    """The whole file at ``path`` (local or gs://).

    At most ``max_bytes`` + 1 bytes are read: a larger file is refused unread.
    Raises InvalidImage (``missing_file``, ``unreadable_file``, ``image_too_large``)
    for the file's own faults; any other failure propagates (see the module docstring).
    """
    try:
        with FileSystems.open(path, compression_type="uncompressed") as stream:
            data = stream.read() if max_bytes is None else stream.read(max_bytes + 1)
    except Exception as exc:
        raise input_read_error(exc, path) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidImage("image_too_large", f"{path} is over {max_bytes} bytes, more than an image "
                                              f"within --max_image_pixels needs")
    return data
