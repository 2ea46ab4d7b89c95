"""Faults are not bad inputs: a failing model or worker fails the job; a job that
wrote nothing, or failed too many of its images, exits non-zero after its summary."""
import multiprocessing.managers
import os
import signal
import subprocess
import sys
import uuid

import numpy as np
import pytest
import tensorflow as tf
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from apache_beam.utils import multi_process_shared
from PIL import Image, PngImagePlugin

from beam_pipelines import launcher, make_records, predict
from beam_pipelines.inference_handlers import (InferenceFailed, RetrySingly,
                                               SavedModelSignatureHandler, is_input_error)
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.faulty_models import MARKER, Echo, export_faulty_model
from tests.prediction_helpers import read_errors, run_predict
from tests.record_reading import run_make_records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY_PREFIX = "images_read="


def _out_of_memory():
    return tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")


class _Scripted(ModelHandler):
    """Raises ``errors[input]`` for any batch holding that input; echoes the others."""

    def __init__(self, errors, batch_error=None):
        super().__init__()
        self.errors = errors
        self.batch_error = batch_error
        self.calls = []

    def load_model(self):
        return None

    def run_inference(self, batch, model, inference_args=None):
        self.calls.append(list(batch))
        if len(batch) > 1 and self.batch_error is not None:
            raise self.batch_error
        for item in batch:
            if item in self.errors:
                raise self.errors[item]
        return [PredictionResult(item, {"echo": item}) for item in batch]


def _retrying(inner):
    return RetrySingly(inner, min_batch_size=1, max_batch_size=8, large_model=False)


def test_the_errors_of_an_input_and_the_others():
    assert is_input_error(tf.errors.InvalidArgumentError(None, None, "Invalid JPEG data"))
    not_the_input = [_out_of_memory(), tf.errors.UnavailableError(None, None, "socket closed"),
                     tf.errors.InternalError(None, None, "CUDA error"),
                     tf.errors.UnknownError(None, None, "?"), MemoryError(), EOFError(),
                     ConnectionResetError(), BrokenPipeError(), OSError("disk"),
                     multiprocessing.managers.RemoteError("traceback"),
                     RuntimeError("Entry was released."), ValueError("x"), KeyError("x")]
    assert not any(is_input_error(exc) for exc in not_the_input)


def test_an_input_error_alone_is_dead_lettered_and_the_others_predicted():
    inner = _Scripted({b"bad": tf.errors.InvalidArgumentError(None, None, "Invalid PNG data")})
    results = _retrying(inner).run_inference([b"a", b"bad", b"b"], None)
    assert [r.inference["echo"] for r in (results[0], results[2])] == [b"a", b"b"]
    assert results[1] == InferenceFailed("InvalidArgumentError: Invalid PNG data")
    assert _retrying(inner).run_inference([b"bad"], None) == [results[1]]


def test_an_out_of_memory_error_on_every_input_raises():
    inner = _Scripted({item: _out_of_memory() for item in (b"a", b"b", b"c")})
    with pytest.raises(tf.errors.ResourceExhaustedError) as raised:
        _retrying(inner).run_inference([b"a", b"b", b"c"], None)
    assert "not an error of the input" in "".join(raised.value.__notes__)
    assert inner.calls == [[b"a", b"b", b"c"], [b"a"]]  # stops at the first input that fails alone
    with pytest.raises(tf.errors.ResourceExhaustedError):
        _retrying(inner).run_inference([b"a"], None)


def test_a_fault_on_one_input_alone_raises_even_when_others_succeed():
    inner = _Scripted({b"b": ConnectionResetError("connection reset by peer")})
    with pytest.raises(ConnectionResetError):
        _retrying(inner).run_inference([b"a", b"b", b"c"], None)
    unknown = _Scripted({b"b": ValueError("something else")})
    with pytest.raises(ValueError):
        _retrying(unknown).run_inference([b"a", b"b"], None)


def test_a_batch_too_large_for_memory_is_predicted_one_by_one():
    inner = _Scripted({}, batch_error=_out_of_memory())
    results = _retrying(inner).run_inference([b"a", b"b"], None)
    assert [r.inference["echo"] for r in results] == [b"a", b"b"]


def test_a_dead_shared_model_process_fails_the_bundle(tmp_path):
    """The model shared across processes (RunInference's large_model path) is a proxy;
    when the process holding the model dies, calls raise and RetrySingly re-raises."""
    shared = multi_process_shared.MultiProcessShared(
        Echo, tag=f"echo-{uuid.uuid4().hex}", path=str(tmp_path), always_proxy=True,
        spawn_process=True)
    model = shared.acquire()
    handler = _retrying(SavedModelSignatureHandler("unused", "unused", "unused"))
    results = handler.run_inference([b"a", b"b"], model)
    assert [r.inference["echo"] for r in results] == [b"a", b"b"]
    server_pid = int(results[0].inference["pid"])
    assert server_pid != os.getpid()
    os.kill(server_pid, signal.SIGKILL)
    multiprocessing.active_children()  # reaps it
    with pytest.raises(Exception) as raised:
        handler.run_inference([b"a", b"b"], model)
    assert isinstance(raised.value, (EOFError, OSError)), repr(raised.value)
    assert not is_input_error(raised.value)


def test_check_outcome():
    check = launcher.check_outcome
    check({"images_read": 4, "images_predicted": 2, "images_failed": 2}, "images_predicted",
          0.5, "E")
    with pytest.raises(launcher.JobFailed, match=r"3 of 4 images failed \(75.0%\), more than "
                                                 r"--max_failed_fraction 0.5 \(reasons in E\)"):
        check({"images_read": 4, "images_predicted": 1, "images_failed": 3}, "images_predicted",
              0.5, "E")
    check({"images_read": 4, "images_predicted": 1, "images_failed": 3}, "images_predicted",
          1.0, "E")
    with pytest.raises(launcher.JobFailed, match="wrote nothing: images_written=0 of "
                                                 "images_read=4") as raised:
        check({"images_read": 4, "images_failed": 4}, "images_written", 1.0, "E")
    assert raised.value.counters == {"images_read": 4, "images_failed": 4}
    with pytest.raises(launcher.JobFailed, match="read no image"):
        check({}, "images_written", 1.0, "E")
    with pytest.raises(launcher.JobFailed):
        check({"images_read": 10, "images_predicted": 9, "images_failed": 1},
              "images_predicted", 0.0, "E")


def _png(path, marker: bool = False, seed: int = 0) -> None:
    info = PngImagePlugin.PngInfo()
    if marker:
        info.add_text("comment", MARKER.decode())
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 32, 3), np.uint8)
    Image.fromarray(pixels).save(path, format="PNG", pnginfo=info)


def _run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"))


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def marker_model(tmp_path_factory):
    return export_faulty_model(str(tmp_path_factory.mktemp("models") / "marker"), "marker")


def test_a_model_out_of_memory_on_every_call_fails_predict(tmp_path):
    model = export_faulty_model(str(tmp_path / "oom"), "out_of_memory")
    images = tmp_path / "images"
    images.mkdir()
    for index in range(3):
        _png(images / f"{index}.png", seed=index)
    prefix = str(tmp_path / "out" / "p")
    result = _run_module("beam_pipelines.predict", "--model", model, "--images", str(images),
                         "--output", prefix, "--batch_size", "2")
    assert result.returncode != 0
    assert "ResourceExhaustedError" in result.stderr and "OOM when allocating" in result.stderr
    assert SUMMARY_PREFIX not in result.stdout
    assert not any(row["code"] == "inference_failed" for row in read_errors(prefix))


def test_an_image_failing_alone_is_dead_lettered_and_predict_succeeds(marker_model, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for index in range(3):
        _png(images / f"good{index}.png", seed=index)
    _png(images / "marked.png", marker=True)
    prefix = str(tmp_path / "out" / "p")
    result = _run_module("beam_pipelines.predict", "--model", marker_model, "--images",
                         str(images), "--output", prefix, "--batch_size", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _last_line(result.stdout) == ("images_read=4 images_predicted=3 images_failed=1 "
                                         "detections_written=0")
    (error,) = read_errors(prefix)
    assert error["filename"] == "marked.png" and error["code"] == "inference_failed"
    assert error["reason"].startswith("InvalidArgumentError") and "marker" in error["reason"]

    strict = _run_module("beam_pipelines.predict", "--model", marker_model, "--images",
                         str(images), "--output", str(tmp_path / "strict" / "p"),
                         "--batch_size", "4", "--max_failed_fraction", "0.2")
    assert strict.returncode == launcher.JOB_FAILED_STATUS == 1
    assert _last_line(strict.stdout).startswith("images_read=4 images_predicted=3 images_failed=1")
    errors_file = str(tmp_path / "strict" / "p-errors.jsonl")
    assert _last_line(strict.stderr) == (f"error: 1 of 4 images failed (25.0%), more than "
                                         f"--max_failed_fraction 0.2 (reasons in {errors_file})")


def test_predict_that_predicts_nothing_fails(marker_model, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for index in range(2):
        _png(images / f"marked{index}.png", marker=True, seed=index)
    prefix = str(tmp_path / "out" / "p")
    with pytest.raises(launcher.JobFailed, match="wrote nothing: images_predicted=0 of "
                                                 "images_read=2") as raised:
        run_predict("--model", marker_model, "--images", str(images), "--output", prefix,
                    "--batch_size", "2", "--max_failed_fraction", "1")
    assert raised.value.counters["images_failed.inference_failed"] == 2
    assert {row["filename"] for row in read_errors(prefix)} == {"marked0.png", "marked1.png"}


def test_max_failed_fraction_must_be_a_fraction(capsys):
    for value in ("1.5", "-0.1", "half", "nan"):
        with pytest.raises(SystemExit) as raised:
            predict.parse_args(["--model", "m", "--images", "i", "--output", "o",
                                "--max_failed_fraction", value])
        assert raised.value.code == 2
        assert f"argument --max_failed_fraction: '{value}' is not a number in [0, 1]" in (
            capsys.readouterr().err)
    args, _ = make_records.parse_args(["--image_dir", "i", "--output_file_prefix", "o"])
    assert args.max_failed_fraction == launcher.DEFAULT_MAX_FAILED_FRACTION == 0.5


def test_make_records_of_only_bad_images_fails_after_its_summary(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "empty.jpg").write_bytes(b"")
    (images / "notes.txt").write_text("not an image\n")
    prefix = str(tmp_path / "out" / "records")
    result = _run_module("beam_pipelines.make_records", "--image_dir", str(images),
                         "--output_file_prefix", prefix, "--num_shards", "1")
    assert result.returncode == 1, result.stderr[-3000:]
    assert _last_line(result.stdout) == ("images_read=2 images_written=0 images_failed=2 "
                                         "annotations_written=0 annotations_skipped=0")
    assert _last_line(result.stderr) == (
        "error: the job wrote nothing: images_written=0 of images_read=2 (images_failed=2; "
        f"reasons in {prefix}-errors.jsonl)")


def test_make_records_failing_most_images_fails(tmp_path):
    json_path = generate_split(str(tmp_path), "train", 3, SyntheticConfig(image_size=48, seed=2))
    image_dir = tmp_path / "train"
    names = sorted(os.listdir(image_dir))
    for name in names[:2]:
        os.remove(image_dir / name)
    prefix = str(tmp_path / "out" / "train")
    args = ["--image_dir", str(image_dir), "--object_annotations_file", json_path,
            "--output_file_prefix", prefix, "--num_shards", "1"]
    with pytest.raises(launcher.JobFailed, match=r"2 of 3 images failed \(66.7%\)") as raised:
        run_make_records(*args)
    assert raised.value.counters["images_failed.missing_file"] == 2
    counters = run_make_records(*args, "--max_failed_fraction", "0.7", "--overwrite")
    assert counters["images_written"] == 1 and counters["images_failed"] == 2


def test_help_documents_the_default(capsys):
    for parse_args in (predict.parse_args, make_records.parse_args):
        with pytest.raises(SystemExit) as raised:
            parse_args(["--help"])
        assert raised.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "--max_failed_fraction MAX_FAILED_FRACTION Exit with status 1" in text
        assert "(default 0.5;" in text
