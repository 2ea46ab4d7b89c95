"""tpu.train --stop_tpu_when_done: the stop command in the dry-run plan, one-line refusals,
and a recording gcloud (a real executable) called when a real run ends, done or failed."""
import os
import shlex
import subprocess
import sys

import pytest

from model.synthetic.generate import SyntheticConfig, generate_split
from tests.record_reading import run_make_records
from tests.tpu_vm_helpers import BASE, RecordingGcloud, write_config
from tpu import train, vm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stop_argv(gcloud_path):
    return [gcloud_path, "compute", "tpus", "tpu-vm", "stop", "fashion-v4",
            "--zone=us-central2-b", "--project=fashion-project", "--async"]


@pytest.fixture
def gcloud(tmp_path, monkeypatch):
    recording = RecordingGcloud(tmp_path)
    monkeypatch.setenv(vm.GCLOUD_ENV, recording.path)
    return recording


@pytest.fixture
def empty_shard(tmp_path):
    (tmp_path / "train-00000-of-00001.tfrecord").write_bytes(b"")
    return str(tmp_path / "train-*.tfrecord")


def test_dry_run_plan_shows_the_stop_command_and_runs_nothing(tmp_path, capsys, gcloud,
                                                               empty_shard):
    train.main(["--config", "tiny", "--model_dir", str(tmp_path / "model"), "--dry_run",
                "--train_file_pattern", empty_shard, "--label_format", "model_class",
                "--tpu", "fashion-v4", "--override", "train.batch_size=8",
                "--stop_tpu_when_done", write_config(tmp_path, BASE)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "when done (or failed): " + shlex.join(_stop_argv(gcloud.path))
    assert gcloud.calls() == [] and not os.path.exists(tmp_path / "model")


@pytest.mark.parametrize("change, flags, message", [
    ({"zone": "us-central2"}, [], "--stop_tpu_when_done {path}: zone 'us-central2' is not a zone"),
    ({"project": None}, [], "--stop_tpu_when_done {path}: missing key(s) 'project'"),
    ({"spot": True}, [], "--stop_tpu_when_done {path}: fashion-v4 is a spot TPU VM, which "
                         "cannot be stopped and started again"),
    ({}, ["--tpu", "other-tpu"], "--tpu other-tpu but --stop_tpu_when_done {path} stops "
                                 "fashion-v4"),
    ({}, ["--tpu_zone", "europe-west4-a"], "--tpu_zone europe-west4-a but --stop_tpu_when_done "
                                           "{path} stops us-central2-b"),
])
def test_bad_stop_config_fails_before_the_run_with_one_line(tmp_path, capsys, gcloud, empty_shard,
                                                             change, flags, message):
    raw = {key: value for key, value in {**BASE, **change}.items() if value is not None}
    path = write_config(tmp_path, raw)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--config", "tiny", "--model_dir", str(tmp_path / "model"), "--dry_run",
                    "--train_file_pattern", empty_shard, "--stop_tpu_when_done", path, *flags])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message.format(path=path) in error[0], error
    assert gcloud.calls() == []


def test_missing_gcloud_fails_before_the_run_with_one_line(tmp_path, capsys, monkeypatch,
                                                           empty_shard):
    monkeypatch.setenv(vm.GCLOUD_ENV, str(tmp_path / "no-gcloud"))
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--config", "tiny", "--model_dir", str(tmp_path / "model"),
                    "--train_file_pattern", empty_shard,
                    "--stop_tpu_when_done", write_config(tmp_path, BASE)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"python -m tpu.train: error: --stop_tpu_when_done: {tmp_path / 'no-gcloud'} not found: "
        f"install the Google Cloud CLI or set ${vm.GCLOUD_ENV}\n")
    assert not os.path.exists(tmp_path / "model")


def test_the_stop_runs_when_the_block_ends_or_fails(tmp_path):
    gcloud = RecordingGcloud(tmp_path)
    with train.stopping_tpu_when_done(_stop_argv(gcloud.path)):
        pass
    with pytest.raises(ValueError, match="boom"):
        with train.stopping_tpu_when_done(_stop_argv(gcloud.path)):
            raise ValueError("boom")
    with pytest.raises(KeyboardInterrupt):
        with train.stopping_tpu_when_done(_stop_argv(gcloud.path)):
            raise KeyboardInterrupt
    assert gcloud.calls() == [_stop_argv(gcloud.path)[1:]] * 3
    with train.stopping_tpu_when_done(None):
        pass
    assert len(gcloud.calls()) == 3


def test_a_failed_stop_is_reported_with_the_command(tmp_path, capsys):
    gcloud = RecordingGcloud(tmp_path, status=4)
    command = _stop_argv(gcloud.path)
    line = (f"error: stopping the TPU VM failed (4); stop it yourself: {shlex.join(command)}\n")
    with pytest.raises(SystemExit) as exit_info:
        with train.stopping_tpu_when_done(command):
            pass
    assert exit_info.value.code == 1 and capsys.readouterr().err == line
    with pytest.raises(ValueError, match="the run's own error"):
        with train.stopping_tpu_when_done(command):
            raise ValueError("the run's own error")
    assert capsys.readouterr().err == line
    assert len(gcloud.calls()) == 2


def _train_subprocess(gcloud, *argv):
    return subprocess.run([sys.executable, "-m", "tpu.train", *map(str, argv)], cwd=ROOT,
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT, vm.GCLOUD_ENV: gcloud.path})


def test_a_real_training_run_stops_the_tpu_when_done(tmp_path):
    config = SyntheticConfig(image_size=64, min_objects=1, max_objects=2, seed=3)
    json_path = generate_split(str(tmp_path), "train", 4, config)
    prefix = str(tmp_path / "records" / "train")
    run_make_records("--image_dir", str(tmp_path / "train"), "--object_annotations_file",
                     json_path, "--output_file_prefix", prefix, "--num_shards", "1")
    gcloud = RecordingGcloud(tmp_path)
    model_dir = tmp_path / "model"
    result = _train_subprocess(
        gcloud, "--mode", "train", "--config", "tiny", "--model_dir", model_dir,
        "--train_file_pattern", prefix + "-*.tfrecord", "--override", "train.batch_size=2",
        "--override", "train.total_steps=1", "--override", "train.warmup_steps=0",
        "--override", "train.decay_steps=[]",
        "--stop_tpu_when_done", write_config(tmp_path, BASE))
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.exists(model_dir / "checkpoint")
    assert gcloud.calls() == [_stop_argv(gcloud.path)[1:]]
    assert "stop requested: " + shlex.join(_stop_argv(gcloud.path)) in result.stdout


def test_a_real_run_that_fails_still_stops_the_tpu(tmp_path):
    gcloud = RecordingGcloud(tmp_path)
    (tmp_path / "model").mkdir()
    result = _train_subprocess(gcloud, "--mode", "export", "--config", "tiny",
                               "--model_dir", tmp_path / "model",
                               "--stop_tpu_when_done", write_config(tmp_path, BASE))
    assert result.returncode != 0
    assert f"error: no checkpoint in {tmp_path / 'model'}" in result.stderr
    assert gcloud.calls() == [_stop_argv(gcloud.path)[1:]]
