"""A config that is not plain YAML is one line and exit status 2 in every CLI that takes
--config, and a tag that would run a command runs nothing."""
import os
import re
import subprocess
import sys

import pytest

from model.config import ConfigError, load_config, loads_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSTRUCTOR = ("could not determine a constructor for the tag "
               "'tag:yaml.org,2002:python/object/apply:os.system' (a config is plain YAML: "
               "tags that build Python objects are refused)")
# Logged by TensorFlow and Beam while importing, before any flag is read.
_IMPORT_NOISE = re.compile(r"^WARNING:(root|tensorflow):")


def _hostile_config(tmp_path):
    """A YAML file whose tag would create ``marker`` if it were constructed."""
    marker = tmp_path / "the_tag_ran"
    config = tmp_path / "hostile.yaml"
    config.write_text(f'model: !!python/object/apply:os.system ["touch {marker}"]\n')
    return str(config), marker


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3",
                                                PYTHONWARNINGS="ignore::FutureWarning"))


def _assert_one_line(result: subprocess.CompletedProcess, expected: str) -> None:
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and not _IMPORT_NOISE.match(line)]
    assert lines == [expected], result.stderr
    assert "Traceback" not in result.stderr
    assert result.returncode == 2


def test_tpu_train_refuses_a_python_tag_in_the_config_file(tmp_path):
    config, marker = _hostile_config(tmp_path)
    model_dir = tmp_path / "model_dir"
    result = _run("tpu.train", "--config", config, "--model_dir", str(model_dir))
    _assert_one_line(result, f"python -m tpu.train: error: {config}: not valid YAML at line 1, "
                             f"column 8: {CONSTRUCTOR}")
    assert not marker.exists() and not model_dir.exists()


def test_tpu_train_refuses_a_python_tag_in_an_override(tmp_path):
    marker = tmp_path / "the_tag_ran"
    override = f'model.num_classes=!!python/object/apply:os.system ["touch {marker}"]'
    result = _run("tpu.train", "--config", "tiny", "--override", override,
                  "--model_dir", str(tmp_path / "model_dir"), "--dry_run")
    _assert_one_line(result, f"python -m tpu.train: error: override {override!r}: not valid YAML "
                             f"at line 1, column 1: {CONSTRUCTOR}")
    assert not marker.exists()


def test_export_refuses_a_python_tag_and_writes_nothing(tmp_path):
    config, marker = _hostile_config(tmp_path)
    output = tmp_path / "saved_model"
    result = _run("model.export", "--config", config, "--output", str(output))
    _assert_one_line(result, f"error: {config}: not valid YAML at line 1, column 8: {CONSTRUCTOR}")
    assert not marker.exists() and not output.exists()


def test_summary_refuses_malformed_yaml(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("model: {num_classes: [1, 2}\n")
    _assert_one_line(_run("model.summary", "--config", str(config)),
                     f"error: {config}: not valid YAML at line 1, column 27: "
                     "expected ',' or ']', but got '}'")


@pytest.mark.parametrize("text, message", [
    ("a: [", "config: not valid YAML at line 1, column 5: expected the node content, "
             "but found '<stream end>'"),
    ('a: "x', "config: not valid YAML at line 1, column 6: found unexpected end of stream"),
    ("a: 1\nb: *missing", "config: not valid YAML at line 2, column 4: found undefined alias "
                          "'missing'"),
    ("!!python/name:os.system", "config: not valid YAML at line 1, column 1: could not determine "
                                "a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'"),
])
def test_loads_config_names_the_yaml_problem(text, message):
    with pytest.raises(ConfigError) as error:
        loads_config(text)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_unreadable_and_undecodable_files(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}: cannot be read (Is a directory)")):
        load_config(str(tmp_path))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"model: \xff\xfe\xfa\n")
    with pytest.raises(ConfigError, match=re.escape(f"{binary}: not valid YAML: ")):
        load_config(str(binary))
