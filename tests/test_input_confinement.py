"""Reads stay inside --image_dir / --images; directories named with glob characters just work.

Every file outside the input that an entry or a symlink points to is a valid image, so without the
confinement it would be read and written (or predicted): the tests see the difference.
"""
import io
import json
import os
import re

import numpy as np
import pytest
from apache_beam.io.filesystems import FileSystems
from PIL import Image

from beam_pipelines import image_paths
from model.dataset.image_files import InvalidImage
from tests.gcs_emulator import running_emulator, upload_tree
from tests.prediction_helpers import read_detections, run_predict, tiny_model
from tests.prediction_helpers import read_errors as read_predict_errors
from tests.record_reading import as_text, read_errors, read_records, run_make_records

_ = tiny_model  # a fixture used by name below

OUTSIDE = image_paths.FILE_OUTSIDE_IMAGE_DIR
SIZE = 32
# One name holding every glob character; the decoy beside it matches it when it is read as a glob.
GLOB_NAMED = "p[1]*?x"
DECOY = "p1abx"


def _image_bytes(seed: int, fmt: str = "JPEG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (SIZE, SIZE, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _write(path, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as stream:
        stream.write(data)


def _coco(file_names, path) -> str:
    """A COCO file with one box annotation per image; image ids 1..N in the order given."""
    document = {
        "images": [{"id": k + 1, "file_name": name, "height": SIZE, "width": SIZE}
                   for k, name in enumerate(file_names)],
        "annotations": [{"id": 100 + k, "image_id": k + 1, "category_id": 1, "bbox": [2, 2, 10, 12],
                         "segmentation": [[2, 2, 12, 2, 12, 14, 2, 14]], "area": 120, "iscrowd": 0}
                        for k in range(len(file_names))],
        "categories": [{"id": 1, "name": "shirt", "supercategory": "upper"}],
    }
    with open(path, "w") as stream:
        json.dump(document, stream)
    return str(path)


def _check_accounting(counters, written, failed_codes, prefix):
    """read = written + failed, the failures' codes by file name, the records by file name."""
    assert counters["images_read"] == len(written) + len(failed_codes)
    assert counters["images_read"] == counters["images_written"] + counters.get("images_failed", 0)
    assert counters["images_written"] == len(written)
    for code in set(failed_codes.values()):
        assert counters[f"images_failed.{code}"] == list(failed_codes.values()).count(code)
    errors = read_errors(prefix)
    assert {row["filename"]: row["code"] for row in errors} == failed_codes
    assert all(row["reason"] for row in errors)
    records = read_records(prefix, num_attributes=0)
    assert sorted(as_text(r["filename"]) for r in records) == sorted(written)
    return errors


@pytest.mark.parametrize("name, normal", [
    ("a.jpg", "a.jpg"), ("sub/a.jpg", "sub/a.jpg"), ("./a.jpg", "a.jpg"), ("a//b.jpg", "a/b.jpg"),
    ("a/../b.jpg", "b.jpg"), ("a:b.jpg", "a:b.jpg"), ("..a.jpg", "..a.jpg"),
    ("d[1]/*.jpg", "d[1]/*.jpg"),
])
def test_names_inside_are_normalised(name, normal):
    assert image_paths.confined_name(name) == normal


@pytest.mark.parametrize("name", [
    "../a.jpg", "a/../../a.jpg", "..", ".", "/etc/passwd", "//host/a.jpg", "gs://other/a.jpg",
    "file:///etc/passwd", "s3://b/a.jpg", "sub\\..\\..\\a.jpg", "C:\\a.jpg", "a.jpg\x00.png",
])
def test_names_leaving_the_directory_are_refused(name):
    with pytest.raises(InvalidImage) as error:
        image_paths.confined_name(name)
    assert error.value.code == OUTSIDE


@pytest.mark.parametrize("path", ["d[1]", "d*", "d?", "p[1]*?x/a[b].jpg", "gs://b/x[0-9]/*.png"])
def test_escaped_names_match_only_themselves(path):
    pattern = image_paths.escape(path)
    regex = re.compile(FileSystems.get_filesystem(path).translate_pattern(pattern))
    assert regex.match(path)
    for other in (path.replace("[", "").replace("]", ""), path.replace("*", "zz"),
                  path.replace("?", "q")):
        if other != path:
            assert not regex.match(other)


def test_make_records_reads_only_inside_the_image_dir(tmp_path):
    """Directory form, named with a glob character: file_names and symlinks that leave it fail."""
    image_dir = tmp_path / "a[1]"
    secret = str(tmp_path / "secret.jpg")
    _write(secret, _image_bytes(0))
    _write(str(tmp_path / "outside_dir" / "inner.jpg"), _image_bytes(1))
    _write(str(image_dir / "img.jpg"), _image_bytes(2))
    _write(str(image_dir / "sub" / "deep.jpg"), _image_bytes(3))
    _write(str(tmp_path / "a1" / "img.jpg"), _image_bytes(4))  # what 'a[1]' as a glob matches
    os.symlink("img.jpg", image_dir / "alias.jpg")                      # inside: fine
    os.symlink("sub", image_dir / "insidelink")                         # inside: fine
    os.symlink(os.path.join("..", "secret.jpg"), image_dir / "leak.jpg")  # leaves
    os.symlink(os.path.join("..", "outside_dir"), image_dir / "linkdir")  # leaves
    written = ["img.jpg", "sub/deep.jpg", "alias.jpg", "./sub/../img.jpg", "insidelink/deep.jpg"]
    leaving = ["../secret.jpg", secret, "gs://other/x.jpg", "leak.jpg", "linkdir/inner.jpg",
               "sub\\..\\..\\secret.jpg", "img.jpg\x00.png", "sub/../../secret.jpg"]
    json_path = _coco(written + leaving, tmp_path / "a.json")
    prefix = str(tmp_path / "out" / "a")
    counters = run_make_records("--image_dir", str(image_dir), "--object_annotations_file",
                                json_path, "--output_file_prefix", prefix, "--num_shards", "1",
                                "--max_failed_fraction", "1")
    errors = _check_accounting(counters, written, {name: OUTSIDE for name in leaving}, prefix)
    assert counters["annotations_written"] == len(written)
    skipped = counters["annotations_skipped"]
    assert skipped == counters["annotations_skipped.image_failed"] == len(leaving)
    assert all(row["num_annotations"] == 1 for row in errors)
    by_name = {row["filename"]: row["reason"] for row in errors}
    assert "symlink" in by_name["leak.jpg"] and "absolute" in by_name[secret]


def test_make_records_glob_form_refuses_symlinks_that_leave(tmp_path):
    """Beam's local listing does not descend into symlinked directories; a symlinked file it
    matches is checked like one in a directory."""
    root = tmp_path / "root"
    _write(str(root / "day1" / "x.jpg"), _image_bytes(5))
    _write(str(tmp_path / "secret.jpg"), _image_bytes(7))
    os.symlink(str(tmp_path / "secret.jpg"), root / "day1" / "leak.jpg")
    json_path = _coco(["day1/x.jpg", "day1/leak.jpg", "../secret.jpg", "day1/absent.jpg"],
                      tmp_path / "g.json")
    prefix = str(tmp_path / "out" / "g")
    counters = run_make_records("--image_dir", str(root / "day*" / "*.jpg"),
                                "--object_annotations_file", json_path,
                                "--output_file_prefix", prefix, "--num_shards", "1",
                                "--max_failed_fraction", "1")
    _check_accounting(counters, ["day1/x.jpg"], {"day1/leak.jpg": OUTSIDE, "../secret.jpg": OUTSIDE,
                                                 "day1/absent.jpg": "missing_file"}, prefix)


@pytest.fixture
def glob_named_dir(tmp_path):
    """``p[1]*?x`` with a file, a symlink to it and a symlink out; a decoy ``p1abx`` beside it."""
    image_dir = tmp_path / GLOB_NAMED
    _write(str(image_dir / "a.png"), _image_bytes(8, "PNG"))
    _write(str(tmp_path / "secret.png"), _image_bytes(9, "PNG"))
    _write(str(tmp_path / DECOY / "decoy.png"), _image_bytes(10, "PNG"))
    os.symlink("a.png", image_dir / "alias.png")
    os.symlink(str(tmp_path / "secret.png"), image_dir / "leak.png")
    return str(image_dir)


def test_make_records_image_only_directory_named_with_glob_characters(glob_named_dir, tmp_path):
    prefix = str(tmp_path / "out" / "p")
    counters = run_make_records("--image_dir", glob_named_dir, "--output_file_prefix", prefix,
                                "--num_shards", "1")
    _check_accounting(counters, ["a.png", "alias.png"], {"leak.png": OUTSIDE}, prefix)


def test_a_glob_that_names_no_directory_is_still_a_glob(tmp_path):
    _write(str(tmp_path / "d1" / "a.png"), _image_bytes(11, "PNG"))
    source = image_paths.image_source(str(tmp_path / "d[0-9]"))
    assert not source.directory and source.root == str(tmp_path) + "/"
    assert [m.path for m in FileSystems.match([source.pattern + "/*"])[0].metadata_list] == [
        str(tmp_path / "d1" / "a.png")]
    assert image_paths.image_source(str(tmp_path / "d1")).directory


def test_predict_directory_named_with_glob_characters_refuses_symlinks_out(glob_named_dir,
                                                                          tiny_model, tmp_path):
    prefix = str(tmp_path / "pred" / "p")
    counters = run_predict("--model", tiny_model, "--images", glob_named_dir, "--output", prefix,
                           "--min_score_threshold", "0", "--num_shards", "1")
    assert counters["images_read"] == 3
    assert counters["images_predicted"] == 2 and counters["images_failed"] == 1
    assert counters[f"images_failed.{OUTSIDE}"] == 1
    (error,) = read_predict_errors(prefix)
    assert error["filename"] == "leak.png" and error["code"] == OUTSIDE
    assert {row["filename"] for row in read_detections(prefix)} == {"a.png", "alias.png"}


def test_gcs_directories_named_with_glob_characters(tmp_path):
    """gs:// has no directories: a prefix holding objects is one; names stay confined to it.

    The emulator's mediaLink leaves '?' unencoded (GCS encodes it), so the gs:// name here
    holds '[' and '*' only; '?' is covered locally."""
    bucket = "confinement-test"
    named = GLOB_NAMED.replace("?", "")  # 'p[1]*x': the decoy 'p1abx' still matches it as a glob
    local = tmp_path / "local"
    _write(str(local / "a[1]" / "img.jpg"), _image_bytes(12))
    _write(str(local / "a1" / "img.jpg"), _image_bytes(13))        # 'a[1]' read as a glob
    _write(str(local / "secret.jpg"), _image_bytes(14))
    _write(str(local / named / "b.png"), _image_bytes(15, "PNG"))
    _write(str(local / named / "sub" / "c.png"), _image_bytes(16, "PNG"))  # not a direct child
    _write(str(local / DECOY / "decoy.png"), _image_bytes(17, "PNG"))
    json_path = _coco(["img.jpg", "../secret.jpg", f"gs://{bucket}/secret.jpg", "/secret.jpg"],
                      tmp_path / "a.json")
    with running_emulator(bucket):
        upload_tree(str(local), f"gs://{bucket}")
        out = tmp_path / "out"
        out.mkdir()
        annotated = run_make_records("--image_dir", f"gs://{bucket}/a[1]",
                                     "--object_annotations_file", json_path,
                                     "--output_file_prefix", str(out / "a"), "--num_shards", "1",
                                     "--max_failed_fraction", "1")
        image_only = run_make_records("--image_dir", f"gs://{bucket}/{named}",
                                      "--output_file_prefix", str(out / "p"), "--num_shards", "1")
    _check_accounting(annotated, ["img.jpg"], {"../secret.jpg": OUTSIDE,
                                               f"gs://{bucket}/secret.jpg": OUTSIDE,
                                               "/secret.jpg": OUTSIDE}, str(out / "a"))
    _check_accounting(image_only, ["b.png"], {}, str(out / "p"))
