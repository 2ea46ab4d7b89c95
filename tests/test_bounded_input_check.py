"""The launchers check that an image input exists with a match of at most one file.

A listing of gs://bucket/photos/* with millions of objects would take the launcher minutes only to
learn that the input is not empty. The filesystem below is Beam's local filesystem under its own
scheme, registered like any Beam filesystem plugin; it records the limits each match asks for.
"""
import pytest
from apache_beam.io.localfilesystem import LocalFileSystem

from beam_pipelines import launcher, make_records, predict

SCHEME = "limitrecordingfs"


class LimitRecordingFileSystem(LocalFileSystem):
    limits_asked = []

    @classmethod
    def scheme(cls):
        return SCHEME

    def match(self, patterns, limits=None):
        LimitRecordingFileSystem.limits_asked.append(limits)
        prefix = f"{SCHEME}://"
        return super().match([p[len(prefix):] for p in patterns], limits)


def _assert_every_match_bounded():
    """The input check, and the directory-or-glob lookup before it, match one file at most."""
    asked = LimitRecordingFileSystem.limits_asked
    assert asked and all(limits == [1] for limits in asked), asked


@pytest.fixture
def many_images(tmp_path):
    for index in range(50):
        (tmp_path / f"{index:03d}.jpg").write_bytes(b"x")
    LimitRecordingFileSystem.limits_asked.clear()
    return f"{SCHEME}://{tmp_path}"


def test_predict_matches_at_most_one_file(many_images):
    args, _ = predict.parse_args(["--model", "m", "--output", "o", "--images", f"{many_images}/*.jpg"])
    predict._check_inputs_exist(args)
    _assert_every_match_bounded()


def test_make_records_matches_at_most_one_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    LimitRecordingFileSystem.limits_asked.clear()
    with pytest.raises(launcher.InputError, match="no file matches --image_dir"):
        make_records.run(["--image_dir", f"{SCHEME}://{empty}/*.jpg",
                          "--output_file_prefix", str(tmp_path / "records")])
    _assert_every_match_bounded()
