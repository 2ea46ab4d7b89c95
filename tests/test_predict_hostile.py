"""predict on bad input: every image predicted or dead-lettered, a bad --model stops the launcher."""
import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from PIL import Image

from beam_pipelines import launcher
from beam_pipelines.inference_handlers import InferenceFailed, RetrySingly
from model.detection_lines import detection_id
from beam_pipelines.saved_model_check import ModelError
from model.dataset.image_ids import image_id_from_path, record_image_id
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.prediction_helpers import (check_detections, read_detections, read_errors, run_predict,
                                      tiny_model)

_ = tiny_model  # a fixture used by name below
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _png_declaring(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height`` (valid chunk CRC)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def _jpeg_with_bogus_huffman_table() -> bytes:
    """A JPEG that opens and ends like a complete file, but whose Huffman table is
    invalid: only a full decode (TensorFlow's, at inference) finds it."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    table = data.find(b"\xff\xc4")
    data[table + 5:table + 21] = b"\xff" * 16  # code-length counts that overflow
    return bytes(data)


@pytest.fixture
def hostile_images(tmp_path):
    """Three good images and one of each bad kind; returns (dir, expected failures by name,
    names expected predicted)."""
    generate_split(str(tmp_path), "bad", 3, SyntheticConfig(image_size=64, seed=5))
    image_dir = tmp_path / "bad"
    good = sorted(os.listdir(image_dir))
    with open(image_dir / good[0], "rb") as stream:
        jpeg = stream.read()
    rng = np.random.default_rng(1)
    (image_dir / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (image_dir / "zero.jpg").write_bytes(b"")
    (image_dir / "random.jpg").write_bytes(rng.bytes(4000))
    (image_dir / "notes.txt").write_text("not an image\n")
    (image_dir / "huge.png").write_bytes(_png_declaring(20000, 20000))
    (image_dir / "bogus_huffman.jpg").write_bytes(_jpeg_with_bogus_huffman_table())
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), np.uint8)).save(image_dir / "over_limit.png")
    Image.open(image_dir / good[0]).convert("CMYK").save(image_dir / "cmyk.jpg", format="JPEG")
    Image.fromarray(rng.integers(0, 65535, (50, 70), np.uint16)).save(image_dir / "sixteen_bit.png")
    assert Image.open(image_dir / "sixteen_bit.png").mode.startswith("I")
    expected_failed = {"truncated.jpg": "undecodable_image", "zero.jpg": "empty_file",
                       "random.jpg": "undecodable_image", "notes.txt": "undecodable_image",
                       "huge.png": "image_too_large", "over_limit.png": "image_too_large",
                       "bogus_huffman.jpg": "inference_failed"}
    return str(image_dir), expected_failed, good + ["cmyk.jpg", "sixteen_bit.png"]


def test_hostile_images_in_multiprocessing_mode(hostile_images, tiny_model, tmp_path):
    image_dir, expected_failed, expected_predicted = hostile_images
    prefix = str(tmp_path / "out" / "bad")
    counters = run_predict("--model", tiny_model, "--images", image_dir, "--output", prefix,
                           "--min_score_threshold", "0", "--batch_size", "16",
                           "--max_image_pixels", "20000", "--max_failed_fraction", "1",
                           "--direct_running_mode", "multi_processing", "--direct_num_workers", "2")
    total = len(expected_failed) + len(expected_predicted)
    assert counters["images_read"] == total
    assert counters["images_read"] == counters["images_predicted"] + counters["images_failed"]
    assert counters["images_predicted"] == len(expected_predicted)
    assert counters["images_converted"] == 2  # CMYK and 16-bit
    assert counters["images_failed.inference_failed"] == 1
    errors = read_errors(prefix)
    assert {row["filename"]: row["code"] for row in errors} == expected_failed
    assert all(row["reason"] for row in errors)
    huge = next(row for row in errors if row["filename"] == "huge.png")
    assert "pixels" in huge["reason"]
    rows = read_detections(prefix)
    assert counters["detections_written"] == len(rows)
    sizes = {}
    for name in expected_predicted:
        with Image.open(os.path.join(image_dir, name)) as image:
            sizes[name] = image.size[::-1]
    check_detections(rows, sizes)


class _PoisonAware(ModelHandler):
    """Fails any batch holding b'poison' as TensorFlow fails an undecodable image;
    otherwise echoes the inputs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def load_model(self):
        return None

    def run_inference(self, batch, model, inference_args=None):
        self.calls.append(list(batch))
        if b"poison" in batch:
            raise tf.errors.InvalidArgumentError(None, None, "cannot decode")
        return [PredictionResult(item, {"echo": item}) for item in batch]


def test_a_failed_batch_is_retried_one_by_one():
    inner = _PoisonAware()
    handler = RetrySingly(inner, min_batch_size=2, max_batch_size=4)
    results = handler.run_inference([b"a", b"poison", b"b"], None)
    assert [r.inference["echo"] for r in (results[0], results[2])] == [b"a", b"b"]
    assert results[1] == InferenceFailed("InvalidArgumentError: cannot decode")
    assert inner.calls == [[b"a", b"poison", b"b"], [b"a"], [b"poison"], [b"b"]]
    assert handler.batch_elements_kwargs() == {"min_batch_size": 2, "max_batch_size": 4}
    assert handler.share_model_across_processes() and handler.model_copies() == 1


def test_missing_model_fails_with_one_line(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    result = subprocess.run(
        [sys.executable, "-m", "beam_pipelines.predict", "--model", str(tmp_path / "absent"),
         "--images", str(tmp_path), "--output", str(tmp_path / "out" / "p")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"error: --model {tmp_path / 'absent'} does not exist: expected a SavedModel "
                    "directory (python -m model.export --output DIR)")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_wrong_models_are_named(tiny_model, tmp_path):
    images = str(tmp_path)
    (tmp_path / "a.jpg").write_bytes(b"x")
    not_saved_model = tmp_path / "weights"
    not_saved_model.mkdir()
    (not_saved_model / "model.ckpt").write_bytes(b"0")
    with pytest.raises(ModelError, match="has no saved_model.pb"):
        run_predict("--model", str(not_saved_model), "--images", images, "--output", images + "/o")
    (not_saved_model / "saved_model.pb").write_bytes(b"\x00garbage")
    with pytest.raises(ModelError, match="not a SavedModel"):
        run_predict("--model", str(not_saved_model), "--images", images, "--output", images + "/o")
    with pytest.raises(launcher.InputError, match="no file matches --images"):
        run_predict("--model", tiny_model, "--images", str(tmp_path / "none" / "*.jpg"),
                    "--output", images + "/o")


def test_image_ids_of_records_and_detection_ids():
    assert record_image_id("123", "a.jpg") == 123
    assert record_image_id("photo-7", "a.jpg") == image_id_from_path("photo-7")
    assert record_image_id("", "shop/a.jpg") == image_id_from_path("shop/a.jpg")
    assert record_image_id(str(2 ** 53), "a.jpg") == image_id_from_path(str(2 ** 53))
    largest = detection_id(2 ** 53 - 1, 1023)
    assert largest < 2 ** 63 and largest // 1024 == 2 ** 53 - 1
    with pytest.raises(ValueError, match="more than 1024"):
        detection_id(5, 1024)
