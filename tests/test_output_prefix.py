"""make_records and predict never write over an earlier run's output silently: a prefix that holds
output is refused (one line, exit status 2) unless --overwrite, which deletes exactly that prefix's
shards, files and Beam temp directories first."""
import os
import subprocess
import sys

import pytest
from PIL import Image

from beam_pipelines.output_prefix import OutputError
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.prediction_helpers import read_detections, read_errors, run_predict, tiny_model
from tests.record_reading import read_label_map, read_records, run_make_records

_ = tiny_model  # a fixture used by name below
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEX = "0123456789abcdef0123456789abcdef"  # a uuid1().hex, as in Beam's temp directory names


def _files(directory) -> dict:
    """{relative path: bytes} of every file below ``directory``, and each directory as None."""
    tree = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            tree[os.path.relpath(os.path.join(root, name), directory) + "/"] = None
        for name in files:
            with open(os.path.join(root, name), "rb") as stream:
                tree[os.path.relpath(os.path.join(root, name), directory)] = stream.read()
    return tree


def _plant(directory, names) -> None:
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith("/"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as stream:
                stream.write(f"planted {name}\n")


def _cli(module: str, *args: str) -> str:
    """Runs ``python -m module``; asserts it stopped with exactly one ``error:`` line, the last on
    stderr, exit status 2 and no traceback; returns that line."""
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True,
                            text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0]
    return errors[0]


# Beam temp directories of this prefix's two sinks (records, errors), one holding a file.
LEFT_BY_A_KILLED_RUN = [f"beam-temp-r-{HEX}/1b2c.r.tfrecord", f"beam-temp-r-errors-{HEX}/"]
# Names of other prefixes in the same directory, and near misses: none is r's.
NEIGHBOURS = ["r2-00000-of-00001.tfrecord", "r-extra-00000-of-00001.tfrecord",
              "r-errors-errors.jsonl",  # prefix r-errors' own errors file
              "r-labels.json.bak", "r-00000-of-00003.tfrecord.bak", "r-0000-of-00003.tfrecord",
              "r-labels-00000-of-00001.tfrecord",  # prefix r-labels' shard
              f"beam-temp-r2-{HEX}/x.r2.tfrecord", f"beam-temp-r-extra-{HEX}/",
              f"beam-temp-r-errors-errors-{HEX}/", f"beam-temp-r-{HEX}-old/", "beam-temp-r-1234/"]


def test_make_records_refuses_a_used_prefix_and_overwrite_replaces_it(tmp_path):
    json_path = generate_split(str(tmp_path), "train", 3, SyntheticConfig(image_size=48, seed=3))
    out = tmp_path / "out"
    prefix = str(out / "r")
    flags = ["--image_dir", str(tmp_path / "train"), "--object_annotations_file", json_path,
             "--output_file_prefix", prefix]
    first = run_make_records(*flags, "--num_shards", "3")
    first_labels = read_label_map(prefix)
    _plant(out, LEFT_BY_A_KILLED_RUN + NEIGHBOURS)
    before = _files(out)
    assert {f"r-0000{i}-of-00003.tfrecord" for i in range(3)} <= set(before)

    with pytest.raises(OutputError, match="already holds output of an earlier run.*--overwrite"):
        run_make_records(*flags, "--num_shards", "2")
    line = _cli("beam_pipelines.make_records", *flags, "--num_shards", "2")
    assert line.startswith(f"error: --output_file_prefix {prefix} already holds output of an "
                           f"earlier run: {out}/r-00000-of-00003.tfrecord, ")
    assert line.endswith(" and 3 more; pass --overwrite to delete it first, or choose another prefix")
    assert _files(out) == before  # refused before anything was written or deleted

    second = run_make_records(*flags, "--num_shards", "2", "--overwrite")
    after = _files(out)
    _plant(tmp_path / "neighbours", NEIGHBOURS)
    kept = _files(tmp_path / "neighbours")
    assert set(after) == {"r-00000-of-00002.tfrecord", "r-00001-of-00002.tfrecord",
                          "r-errors.jsonl", "r-labels.json"} | set(kept)
    for name in kept:
        assert after[name] == before[name]
    records = read_records(prefix, first_labels.num_attributes)
    assert second["images_written"] == first["images_written"] == len(records) == 3
    assert read_label_map(prefix).dumps() == first_labels.dumps()
    assert read_errors(prefix) == []


def _photos(directory, count: int = 3) -> str:
    os.makedirs(directory)
    for index in range(count):
        Image.new("RGB", (40 + 8 * index, 48), (40 * index, 90, 200)).save(
            os.path.join(directory, f"{index}.png"))
    return str(directory)


def test_predict_refuses_a_used_prefix_and_overwrite_replaces_it(tiny_model, tmp_path):
    images = _photos(tmp_path / "photos")
    out = tmp_path / "out"
    prefix = str(out / "p")
    flags = ["--model", tiny_model, "--images", images, "--output", prefix,
             "--min_score_threshold", "0"]
    first = run_predict(*flags, "--num_shards", "2")
    assert first["images_predicted"] == 3
    _plant(out, [f"beam-temp-p-{HEX}/", "p2-00000-of-00001.jsonl", "p-old.jsonl"])
    before = _files(out)

    with pytest.raises(OutputError, match=f"--output {prefix} already holds"):
        run_predict(*flags)
    line = _cli("beam_pipelines.predict", *flags)
    assert line == (f"error: --output {prefix} already holds output of an earlier run: "
                    f"{out}/p-00000-of-00002.jsonl, {out}/p-00001-of-00002.jsonl, "
                    f"{out}/p-errors.jsonl, {out}/beam-temp-p-{HEX}/; "
                    "pass --overwrite to delete it first, or choose another prefix")
    assert _files(out) == before

    second = run_predict(*flags, "--num_shards", "1", "--overwrite")
    after = _files(out)
    assert set(after) == {"p-00000-of-00001.jsonl", "p-errors.jsonl",
                          "p2-00000-of-00001.jsonl", "p-old.jsonl"}
    assert after["p2-00000-of-00001.jsonl"] == before["p2-00000-of-00001.jsonl"]
    rows = read_detections(prefix)
    assert second["images_predicted"] == 3 and second["detections_written"] == len(rows) > 0
    assert {row["filename"] for row in rows} <= {"0.png", "1.png", "2.png"}
    assert read_errors(prefix) == []


@pytest.mark.parametrize("module, flag", [("beam_pipelines.make_records", "--output_file_prefix"),
                                          ("beam_pipelines.predict", "--output")])
def test_output_below_a_regular_file_fails_with_one_line(tmp_path, module, flag):
    images = _photos(tmp_path / "photos", 1)
    (tmp_path / "file.txt").write_text("a file\n")
    prefix = str(tmp_path / "file.txt" / "sub" / "p")
    extra = ["--model", str(tmp_path / "no_model")] if module.endswith("predict") else []
    line = _cli(module, *extra, "--images" if extra else "--image_dir", images, flag, prefix)
    assert line == f"error: {flag} {prefix}: {tmp_path / 'file.txt'} is a file, not a directory"
    assert sorted(os.listdir(tmp_path)) == ["file.txt", "photos"]


def test_output_prefix_with_glob_characters_is_refused(tmp_path):
    images = _photos(tmp_path / "photos", 1)
    prefix = str(tmp_path / "run[1]" / "r")
    with pytest.raises(OutputError, match=r"cannot contain \*, \? or \["):
        run_make_records("--image_dir", images, "--output_file_prefix", prefix)
    with pytest.raises(OutputError, match=r"cannot contain \*, \? or \["):
        run_predict("--model", str(tmp_path / "no_model"), "--images", images, "--output", prefix)
    assert sorted(os.listdir(tmp_path)) == ["photos"]


def test_predict_owns_its_shards_compressed_or_not(tmp_path):
    from beam_pipelines import output_prefix
    from beam_pipelines.predict import OUTPUTS
    prefix = str(tmp_path / "p")
    _plant(tmp_path, ["p-00000-of-00002.jsonl.gz", "p-00001-of-00002.jsonl.gz",
                      "p-00000-of-00001.jsonl", "p-00000-of-00001.jsonl.bz2", "p.jsonl.gz"])
    found = output_prefix.check(OUTPUTS, prefix, overwrite=True)
    assert sorted(os.path.basename(path) for path in found.files) == [
        "p-00000-of-00001.jsonl", "p-00000-of-00002.jsonl.gz", "p-00001-of-00002.jsonl.gz"]
    with pytest.raises(OutputError):
        output_prefix.check(OUTPUTS, prefix, overwrite=False)


@pytest.mark.parametrize("module", ["predict", "make_records"])
def test_no_main_sink_can_take_the_errors_file_for_its_shard(module):
    """Before renaming its shards into place, Beam's file sink deletes every existing
    PREFIX + template-as-glob + suffix for the shard count it wrote (FileBasedSink.pre_finalize):
    the errors file must match none of them, at any shard count."""
    import fnmatch
    import importlib
    from beam_pipelines.dead_letters import errors_path
    outputs = importlib.import_module(f"beam_pipelines.{module}").OUTPUTS
    prefix = "/out/p"
    for num_shards in (1, 2, 7, 100):
        shard_glob = outputs.shard_template.replace("SSSSS", "*").replace(
            "NNNNN", f"{num_shards:05d}")
        for suffix in outputs.shard_suffixes:
            assert not fnmatch.fnmatchcase(errors_path(prefix), prefix + shard_glob + suffix)
    assert fnmatch.fnmatchcase("/out/p-errors-00000-of-00001.jsonl", "/out/p-*-of-00001.jsonl")
