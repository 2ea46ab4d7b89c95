"""make_records killed half way and run again leaves no mixed or partial shards behind.

The real CLI runs in its own session on a synthetic dataset that takes several seconds; the
test kills the whole process group (SIGKILL) at a point of the write: once the records sink's
Beam temp directory exists, once half of the shards' temp files exist, once the first final
shard is there. Then, on what the killed run left: the same command without --overwrite is
refused with one line and exit status 2 and changes nothing (or, had nothing been left, runs);
with --overwrite (the same or another --num_shards) it finishes, and the prefix then holds
exactly one complete set of shards, every record readable and each image once, no Beam temp
directory, and an errors file that agrees with the summary line.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import tensorflow as tf

from beam_pipelines.dead_letters import errors_path
from model.record_schema import RecordDecoder
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.record_reading import read_errors, read_label_map

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISTINCT, COPIES = 100, 12  # 1,200 images: ~5 s of make_records on 2 idle cores
MISSING, CORRUPT, FAR_POLYGONS = 2, 2, 3
SHARD = re.compile(r"r-(\d{5})-of-(\d{5})\.tfrecord\Z")
RECORDS_TEMP = re.compile(r"beam-temp-r-[0-9a-f]{32}\Z")  # not the errors sink's r-errors-…


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """(image_dir, annotation file, image ids, ids that fail, number of annotations): 1,200
    images made of COPIES hard links of DISTINCT generated ones, a few of them missing or
    corrupt, and a few annotations outside their image."""
    root = tmp_path_factory.mktemp("restart")
    base_json = generate_split(str(root), "base", DISTINCT, SyntheticConfig(
        image_size=256, min_objects=4, max_objects=8, seed=11))
    with open(base_json) as stream:
        document = json.load(stream)
    image_dir = root / "train"
    image_dir.mkdir()
    images, annotations = [], []
    for copy in range(COPIES):
        for image in document["images"]:
            name = f"{copy:03d}-{image['file_name']}"
            os.link(root / "base" / image["file_name"], image_dir / name)
            images.append(dict(image, id=copy * 100_000 + image["id"], file_name=name))
        annotations += [dict(a, id=copy * 10_000_000 + a["id"],
                             image_id=copy * 100_000 + a["image_id"])
                        for a in document["annotations"]]
    failing = set()
    for image in images[100:100 + MISSING]:
        os.remove(image_dir / image["file_name"])
        failing.add(image["id"])
    for image in images[200:200 + CORRUPT]:
        path = image_dir / image["file_name"]
        data = path.read_bytes()
        os.remove(path)  # a hard link: write a new file, not into the shared one
        path.write_bytes(data[:len(data) // 3])
        failing.add(image["id"])
    for annotation in annotations[300:300 + FAR_POLYGONS]:  # images that do not fail
        annotation["segmentation"] = [[1, 1, 1e7, 1, 1e7, 1e7]]
        annotation.pop("bbox", None)
    document.update(images=images, annotations=annotations)
    json_path = root / "train.json"
    json_path.write_text(json.dumps(document))
    return (str(image_dir), str(json_path), {image["id"] for image in images}, failing,
            len(annotations))


def _command(dataset, prefix, num_shards, beam_args=()):
    image_dir, json_path = dataset[:2]
    return [sys.executable, "-m", "beam_pipelines.make_records", "--image_dir", image_dir,
            "--object_annotations_file", json_path, "--output_file_prefix", prefix,
            "--num_shards", str(num_shards), *beam_args]


def _env():
    return dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")


def _records_temp_files(out):
    names = []
    for entry in os.scandir(out) if os.path.isdir(out) else ():
        if entry.is_dir() and RECORDS_TEMP.match(entry.name):
            try:
                names += os.listdir(entry.path)
            except FileNotFoundError:
                pass
    return names


def _reached(point, out, num_shards):
    if not os.path.isdir(out):
        return False
    if point == "temp_dir":
        return any(RECORDS_TEMP.match(name) for name in os.listdir(out))
    if point == "half_the_temp_files":
        return len(_records_temp_files(out)) >= num_shards // 2
    return any(SHARD.match(name) for name in os.listdir(out))  # "final_shard"


def _kill_at(point, command, out, num_shards):
    """Runs ``command`` and SIGKILLs its process group once ``point`` is reached; returns the
    return code (``-SIGKILL`` when the kill came first)."""
    process = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if _reached(point, out, num_shards):
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    try:
        process.communicate(timeout=60)
    finally:
        _kill_group(process.pid)
    return process.returncode


def _running_in_group(pgid):
    """Pids of the processes of group ``pgid`` that have not exited (zombies left out)."""
    running = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat", "rb") as stream:
                stat = stream.read()
        except OSError:
            continue
        state, _, group = stat[stat.rfind(b")") + 2:].split()[:3]
        if int(group) == pgid and state != b"Z":
            running.append(int(entry))
    return running


def _kill_group(pgid):
    """Kills what is left of the group and waits until none of it runs (workers included)."""
    for _ in range(500):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if not _running_in_group(pgid):
            return
        time.sleep(0.01)
    raise AssertionError(f"process group {pgid} still runs after SIGKILL: "
                         f"{_running_in_group(pgid)}")


def _listing(out):
    """{name: size} of the entries of ``out``; a directory maps to {name: size} of its files."""
    listing = {}
    for entry in os.scandir(out):
        if entry.is_dir():
            listing[entry.name + "/"] = {e.name: e.stat().st_size for e in os.scandir(entry.path)}
        else:
            listing[entry.name] = entry.stat().st_size
    return listing


def _summary(stdout):
    line = [line for line in stdout.splitlines() if line.startswith("images_read=")][-1]
    return {name: int(value) for name, value in re.findall(r"(\w+)=(\d+)", line)}


def _read_all(prefix, shards):
    """(source id, number of instances) of every record in ``shards``, each record decoded in
    full (image, boxes, masks, attributes) by the schema's decoder; framing and CRCs checked."""
    decoder = RecordDecoder(read_label_map(prefix).num_attributes)

    def decode(serialized):
        record = decoder.decode(serialized)
        masks = tf.shape(record["groundtruth_instance_masks"])[0]
        tf.debugging.assert_equal(masks, tf.shape(record["groundtruth_classes"])[0])
        tf.debugging.assert_equal(tf.shape(record["image"], tf.int64)[0], record["height"])
        return record["source_id"], masks

    dataset = tf.data.TFRecordDataset(shards).map(decode, num_parallel_calls=2)
    return [(int(source_id.numpy()), int(masks.numpy())) for source_id, masks in dataset]


def _check_one_complete_set(out, prefix, num_shards, summary, dataset):
    image_ids, failing, num_annotations = dataset[2:]
    names = set(os.listdir(out))
    shards = [f"r-{index:05d}-of-{num_shards:05d}.tfrecord" for index in range(num_shards)]
    assert names == set(shards) | {"r-labels.json", os.path.basename(errors_path(prefix))}, names
    records = _read_all(prefix, [os.path.join(out, name) for name in shards])
    written = [source_id for source_id, _ in records]
    assert len(written) == len(set(written)) == summary["images_written"]
    assert set(written) == image_ids - failing
    assert sum(masks for _, masks in records) == summary["annotations_written"]
    assert summary["annotations_written"] + summary["annotations_skipped"] == num_annotations
    assert summary["images_read"] == len(image_ids)
    assert summary["images_read"] == summary["images_written"] + summary["images_failed"]
    letters = read_errors(prefix)
    failed = [letter for letter in letters if "annotation_id" not in letter]
    skipped = [letter for letter in letters if "annotation_id" in letter]
    assert len(failed) == summary["images_failed"] == len(failing)
    assert {letter["image_id"] for letter in failed} == failing
    assert len(skipped) == FAR_POLYGONS  # the annotations of a failed image are counted in it
    assert len(skipped) + sum(letter["num_annotations"] for letter in failed) == \
        summary["annotations_skipped"]
    assert {letter["code"] for letter in skipped} == {"polygon_outside_image"}


@pytest.mark.parametrize("point, shards, rerun_shards, beam_args", [
    ("temp_dir", 8, 8, ()),
    ("half_the_temp_files", 8, 3, ()),
    ("half_the_temp_files", 6, 6,
     ("--direct_running_mode", "multi_processing", "--direct_num_workers", "2")),
    ("final_shard", 8, 5, ()),
])
def test_killed_run_then_rerun(dataset, tmp_path, point, shards, rerun_shards, beam_args):
    out = str(tmp_path / "out")
    prefix = os.path.join(out, "r")
    returncode = _kill_at(point, _command(dataset, prefix, shards, beam_args), out, shards)
    if point != "final_shard":  # the kill must have come first to test anything
        assert returncode == -signal.SIGKILL, f"{point}: the run ended ({returncode}) first"
    left = _listing(out) if os.path.isdir(out) else {}
    if point == "half_the_temp_files":
        temp = [name for name in left if RECORDS_TEMP.match(name.rstrip("/"))]
        assert temp and not any(SHARD.match(name) for name in left)

    rerun = _command(dataset, prefix, rerun_shards, beam_args)
    refused = subprocess.run(rerun, cwd=REPO, env=_env(), capture_output=True, text=True,
                             timeout=300)
    if left:
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert "Traceback" not in refused.stderr
        errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and refused.stderr.strip().splitlines()[-1] == errors[0]
        assert "already holds output of an earlier run" in errors[0]
        assert _listing(out) == left  # refused before anything was written or deleted
        finished = subprocess.run(rerun + ["--overwrite"], cwd=REPO, env=_env(),
                                  capture_output=True, text=True, timeout=300)
    else:
        finished = refused
    assert finished.returncode == 0, finished.stderr[-3000:]
    _check_one_complete_set(out, prefix, rerun_shards, _summary(finished.stdout), dataset)
