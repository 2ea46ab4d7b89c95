"""predict --images_manifest: a chosen subset of images, named and identified as --images names them."""
import os

import numpy as np
import pytest
from PIL import Image

from beam_pipelines import launcher, predict
from beam_pipelines.predict_inputs import manifest_path, manifest_root
from model.dataset.image_ids import image_id_from_path
from tests.dataflow_jobs import anonymous_gcs
from tests.gcs_emulator import download_matching, running_emulator, upload_tree
from tests.prediction_helpers import read_detections, read_errors, run_predict, tiny_model

_ = tiny_model  # a fixture used by name below
BUCKET = "fashion-manifest-test"


def _images(directory, names):
    rng = np.random.default_rng(3)
    for name in names:
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), np.uint8)).save(path)


def _check_accounting(counters, rows, errors):
    assert counters["images_read"] == counters["images_predicted"] + counters["images_failed"]
    assert counters["images_failed"] == len(errors)
    assert counters["detections_written"] == len(rows) > 0
    for row in rows + errors:
        assert row["image_id"] == image_id_from_path(row["filename"])


def test_manifest_below_images_directory(tiny_model, tmp_path):
    root = tmp_path / "shop"
    _images(str(root), ["a.png", "b.jpg", "more/c.png", "not_listed.png"])
    elsewhere = tmp_path / "elsewhere"
    _images(str(elsewhere), ["d.png"])
    manifest = tmp_path / "lists" / "chosen.txt"
    manifest.parent.mkdir()
    manifest.write_text("\n".join([
        "# the images chosen for this run",
        "a.png",
        "   b.jpg  ",           # surrounding whitespace is dropped
        "",
        f"{root}/more/c.png",   # absolute, below the root: named more/c.png
        "a.png",               # listed twice: predicted once
        "./more/../a.png",     # the same file again, normalised as --images names it
        "missing/none.jpg",    # does not exist: a dead letter, not a crash
        f"{elsewhere}/d.png",  # outside the root: not read
        "../elsewhere/d.png",  # leads out of the root: not read
        "  # an indented comment",
    ]) + "\n")
    prefix = str(tmp_path / "out" / "chosen")
    counters = run_predict("--model", tiny_model, "--images_manifest", str(manifest),
                           "--images", str(root), "--output", prefix,
                           "--min_score_threshold", "0", "--num_shards", "1",
                           "--max_failed_fraction", "1")
    rows, errors = read_detections(prefix), read_errors(prefix)
    assert counters["images_read"] == 6
    assert counters["images_predicted"] == 3 and counters["images_failed"] == 3
    assert counters["images_failed.missing_file"] == 1
    assert counters["images_failed.file_outside_image_dir"] == 2
    _check_accounting(counters, rows, errors)
    assert {(e["filename"], e["code"]) for e in errors} == {
        ("missing/none.jpg", "missing_file"),
        (f"{elsewhere}/d.png", "file_outside_image_dir"),
        ("../elsewhere/d.png", "file_outside_image_dir")}
    # --images ROOT names the same files the same way, so they get the same ids.
    assert {row["filename"] for row in rows} <= {"a.png", "b.jpg", "more/c.png"}


def test_manifest_on_gcs_relative_to_its_directory(tiny_model, tmp_path):
    local = tmp_path / "photos"
    _images(str(local), ["x.png", "y.png"])
    (local / "manifest.txt").write_text("x.png\nnested/gone.png\n")
    prefix = tmp_path / "out"
    with running_emulator(BUCKET), anonymous_gcs():
        upload_tree(str(local), f"gs://{BUCKET}/photos")
        counters = run_predict("--model", tiny_model,
                               "--images_manifest", f"gs://{BUCKET}/photos/manifest.txt",
                               "--output", f"gs://{BUCKET}/out/photos", "--num_shards", "1",
                               "--min_score_threshold", "0", "--max_failed_fraction", "1")
        prefix.mkdir()
        download_matching(f"gs://{BUCKET}/out/*", str(prefix))
    rows, errors = read_detections(str(prefix / "photos")), read_errors(str(prefix / "photos"))
    assert counters["images_read"] == 2 and counters["images_predicted"] == 1
    _check_accounting(counters, rows, errors)
    assert {row["filename"] for row in rows} == {"x.png"}
    (error,) = errors
    assert error["filename"] == "nested/gone.png" and error["code"] == "missing_file"


def test_manifest_lines_and_root():
    assert list(manifest_path("a/b.jpg", "gs://b/root")) == ["gs://b/root/a/b.jpg"]
    assert list(manifest_path(" gs://other/x.jpg\r", "gs://b/root")) == ["gs://other/x.jpg"]
    assert list(manifest_path("/data/x.jpg", "/photos")) == ["/data/x.jpg"]  # refused when read
    assert list(manifest_path("x.jpg", "/photos")) == ["/photos/x.jpg"]
    for skipped in ("", "   ", "# a comment", "\t#x.jpg"):
        assert list(manifest_path(skipped, "/photos")) == []
    assert manifest_root("gs://b/lists/m.txt", None) == "gs://b/lists"
    assert manifest_root("gs://b/lists/m.txt", "gs://b/photos") == "gs://b/photos"
    assert manifest_root("m.txt", None) == os.getcwd()
    assert manifest_root("m.txt", "photos") == os.path.join(os.getcwd(), "photos")
    assert list(manifest_path("./a/../b.jpg", "/photos")) == ["/photos/b.jpg"]
    assert list(manifest_path("/photos/./b.jpg", "/photos")) == ["/photos/b.jpg"]
    assert list(manifest_path("../x.jpg", "/photos")) == ["/photos/../x.jpg"]  # refused when read


def test_missing_manifest_stops_the_launcher(tiny_model, tmp_path):
    with pytest.raises(launcher.InputError) as stopped:
        predict.run(["--model", tiny_model, "--output", str(tmp_path / "o"),
                     "--images_manifest", str(tmp_path / "list.txt")])
    assert str(stopped.value) == f"--images_manifest {tmp_path / 'list.txt'} does not exist"


@pytest.mark.parametrize("argv", [
    ["--images_manifest", "m.txt", "--tfrecords", "r*.tfrecord"],
    [],
])
def test_manifest_flag_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        predict.parse_args(["--model", "m", "--output", "o"] + argv)
    assert stopped.value.code == 2
    assert "--images_manifest" in capsys.readouterr().err


def test_manifest_root_must_be_a_directory(tmp_path):
    manifest = tmp_path / "m.txt"
    manifest.write_text("a.jpg\n")
    args, _ = predict.parse_args(["--model", "m", "--output", "o", "--images_manifest",
                                  str(manifest), "--images", f"{tmp_path}/*.jpg"])
    with pytest.raises(launcher.InputError, match="--images is the directory the listed paths are below"):
        predict._check_inputs_exist(args)
