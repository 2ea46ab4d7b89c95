"""A SavedModel with incomplete variables stops predict's and check's launchers with one line.

Every broken copy is made from one real ``tiny`` export: a truncated or deleted
data shard, a deleted, corrupted or foreign index.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from beam_pipelines import bundle_index
from beam_pipelines.saved_model_check import (IMAGE_INPUT, IMAGE_SIGNATURE, ModelError,
                                              check_signature, check_variables)
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.gcs_emulator import running_emulator, upload_tree
from tests.prediction_helpers import tiny_model

_ = tiny_model  # a fixture used by name below
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARD = "variables/variables.data-00000-of-00001"
INDEX = "variables/variables.index"
BUCKET = "fashion-model-check-test"


def _copy(model: str, tmp_path, name: str = "model") -> str:
    copy = str(tmp_path / name)
    shutil.copytree(model, copy)
    return copy


def _truncate(model: str, size: int) -> int:
    path = os.path.join(model, SHARD)
    full = os.path.getsize(path)
    with open(path, "r+b") as stream:
        stream.truncate(size)
    return full


def _flip_byte(path: str, position: int) -> None:
    with open(path, "r+b") as stream:
        stream.seek(position)
        byte = stream.read(1)[0]
        stream.seek(position)
        stream.write(bytes([byte ^ 0xFF]))


def _run_cli(module: str, model: str, tmp_path) -> subprocess.CompletedProcess:
    images = tmp_path / "images"
    if not images.exists():
        generate_split(str(tmp_path), "images", 1, SyntheticConfig(image_size=64, seed=3))
    args = {"beam_pipelines.predict": ["--images", str(images), "--output", str(tmp_path / "out" / "p")],
            "beam_pipelines.check": ["--images", str(images), "--expected_masks", str(images),
                                     "--out_qual", str(tmp_path / "out" / "qual")]}[module]
    return subprocess.run([sys.executable, "-m", module, "--model", model] + args,
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3",
                                   PYTHONWARNINGS="ignore::FutureWarning"))


def _assert_one_line(result: subprocess.CompletedProcess, expected: str, tmp_path) -> None:
    """stderr is ``expected`` alone, apart from the warning Beam logs on import."""
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and "crcmod package not found" not in line]
    assert lines == [expected], result.stderr
    assert "Traceback" not in result.stderr
    assert result.returncode == 2
    assert not (tmp_path / "out").exists()


def test_a_complete_model_passes(tiny_model, tmp_path):
    info = check_signature(tiny_model, IMAGE_SIGNATURE, IMAGE_INPUT)
    assert info.name == IMAGE_SIGNATURE
    with open(os.path.join(tiny_model, INDEX), "rb") as stream:
        num_shards, needed = bundle_index.shard_extents(stream.read())
    # The index accounts for the whole shard: a single missing byte is a truncation.
    assert num_shards == 1 and needed[0] == os.path.getsize(os.path.join(tiny_model, SHARD))
    # The tensors the index names are those TensorFlow's checkpoint reader lists.
    with open(os.path.join(tiny_model, INDEX), "rb") as stream:
        _, entries = bundle_index.read_index(stream.read())
    reader = tf.train.load_checkpoint(os.path.join(tiny_model, "variables", "variables"))
    assert set(entries) == set(reader.get_variable_to_shape_map())
    model = _copy(tiny_model, tmp_path)
    _truncate(model, needed[0] - 1)
    with pytest.raises(ModelError, match=f"needs {needed[0]} bytes, the file has {needed[0] - 1}"):
        check_variables(model)


def test_truncated_shard_is_named_by_predict(tiny_model, tmp_path):
    model = _copy(tiny_model, tmp_path)
    full = _truncate(model, 1000)
    # The workers would fail on it: TensorFlow cannot restore the weights.
    with pytest.raises(Exception, match="Read less bytes than requested"):
        tf.saved_model.load(model)
    _assert_one_line(_run_cli("beam_pipelines.predict", model, tmp_path),
                     f"error: --model {model}: {SHARD} is truncated: the index needs {full} bytes, "
                     "the file has 1000", tmp_path)


def test_missing_shard_is_named_by_predict(tiny_model, tmp_path):
    model = _copy(tiny_model, tmp_path)
    os.remove(os.path.join(model, SHARD))
    _assert_one_line(_run_cli("beam_pipelines.predict", model, tmp_path),
                     f"error: --model {model}: {SHARD} is missing ({INDEX} names 1 data shard(s))",
                     tmp_path)


def test_missing_index_is_named_by_predict(tiny_model, tmp_path):
    model = _copy(tiny_model, tmp_path)
    os.remove(os.path.join(model, INDEX))
    _assert_one_line(_run_cli("beam_pipelines.predict", model, tmp_path),
                     f"error: --model {model}: {INDEX} is missing, so its weights cannot be loaded "
                     "(export the model again)", tmp_path)


def test_corrupt_index_is_named_by_predict(tiny_model, tmp_path):
    model = _copy(tiny_model, tmp_path)
    index = os.path.join(model, INDEX)
    _flip_byte(index, os.path.getsize(index) // 3)
    with pytest.raises(Exception):
        tf.saved_model.load(model)
    _assert_one_line(_run_cli("beam_pipelines.predict", model, tmp_path),
                     f"error: --model {model}: {INDEX} is not a readable variables index "
                     "(a data block at byte 0 fails its checksum)", tmp_path)


def test_foreign_index_is_named_by_check(tiny_model, tmp_path):
    model = _copy(tiny_model, tmp_path)
    shutil.copy(os.path.join(model, "saved_model.pb"), os.path.join(model, INDEX))
    _assert_one_line(_run_cli("beam_pipelines.check", model, tmp_path),
                     f"error: --model {model}: {INDEX} is not a readable variables index "
                     "(no table magic number at its end)", tmp_path)


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:40], "40 bytes, shorter than a table footer (48)"),
    (lambda data: data[:-48 - 12] + data[-48:], "runs past the end"),
    (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "no table magic number at its end"),
])
def test_damaged_index_bytes(tiny_model, damage, message):
    with open(os.path.join(tiny_model, INDEX), "rb") as stream:
        data = stream.read()
    with pytest.raises(bundle_index.BundleIndexError, match=re.escape(message)):
        bundle_index.shard_extents(damage(data))


def test_variables_are_checked_on_gcs(tiny_model, tmp_path):
    truncated = _copy(tiny_model, tmp_path, "truncated")
    full = _truncate(truncated, 1000)
    no_index = _copy(tiny_model, tmp_path, "no_index")
    os.remove(os.path.join(no_index, INDEX))
    _truncate(no_index, 10)
    with running_emulator(BUCKET):
        upload_tree(tiny_model, f"gs://{BUCKET}/good")
        upload_tree(truncated, f"gs://{BUCKET}/truncated")
        upload_tree(no_index, f"gs://{BUCKET}/no_index")
        check_signature(f"gs://{BUCKET}/good", IMAGE_SIGNATURE, IMAGE_INPUT)
        with pytest.raises(ModelError) as error:
            check_signature(f"gs://{BUCKET}/truncated", IMAGE_SIGNATURE, IMAGE_INPUT)
        assert str(error.value) == (f"--model gs://{BUCKET}/truncated: {SHARD} is truncated: the "
                                    f"index needs {full} bytes, the file has 1000")
        with pytest.raises(ModelError, match=f"{INDEX} is missing"):
            check_signature(f"gs://{BUCKET}/no_index", IMAGE_SIGNATURE, IMAGE_INPUT)
