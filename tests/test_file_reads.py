"""A failed read is dead-lettered only when the file itself is at fault."""
import pytest
from apache_beam.io.filesystem import BeamIOError
from google.api_core import exceptions as google_errors

from beam_pipelines.file_reads import input_read_error, read_file
from model.dataset.image_files import InvalidImage


@pytest.mark.parametrize("error, code", [
    (FileNotFoundError("gone"), "missing_file"),
    (google_errors.NotFound("404 GET .../o/x.jpg"), "missing_file"),
    (IsADirectoryError("a directory"), "unreadable_file"),
    (PermissionError("denied"), "unreadable_file"),
    (google_errors.Forbidden("403 no storage.objects.get"), "unreadable_file"),
    (BeamIOError("open failed", {"gs://b/x.jpg": FileNotFoundError("gone")}), "missing_file"),
])
def test_the_files_own_faults_become_dead_letters(error, code):
    rejected = input_read_error(error, "gs://b/x.jpg")
    assert isinstance(rejected, InvalidImage)
    assert rejected.code == code
    assert "gs://b/x.jpg" in str(rejected)


@pytest.mark.parametrize("error", [
    ConnectionResetError("connection reset by peer"),
    TimeoutError("read timed out"),
    google_errors.ServiceUnavailable("503 backend error"),
    google_errors.TooManyRequests("429 rate limit"),
    google_errors.InternalServerError("500"),
    OSError("input/output error"),
    MemoryError(),
    RuntimeError("something unknown"),
    BeamIOError("open failed", {"gs://b/x.jpg": ConnectionError("refused")}),
])
def test_faults_that_are_not_the_files_are_raised(error):
    with pytest.raises(type(error)):
        input_read_error(error, "gs://b/x.jpg")


def test_read_file_codes_for_local_files(tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"x" * 100)
    assert read_file(str(image)) == b"x" * 100
    with pytest.raises(InvalidImage) as missing:
        read_file(str(tmp_path / "absent.jpg"))
    assert missing.value.code == "missing_file"
    with pytest.raises(InvalidImage) as directory:
        read_file(str(tmp_path))
    assert directory.value.code == "unreadable_file"
    with pytest.raises(InvalidImage) as large:
        read_file(str(image), max_bytes=99)
    assert large.value.code == "image_too_large"
