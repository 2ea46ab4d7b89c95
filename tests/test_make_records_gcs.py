"""make_records reading and writing gs:// through a real GCS emulator."""
import json
import os

import pytest
from apache_beam.io.filesystems import FileSystems

from tests.gcs_emulator import download_matching, running_emulator, upload_tree
from tests.record_reading import (read_errors, read_label_map, read_records, run_make_records)
from tests.test_make_records_roundtrip import assert_records_match_coco

BUCKET = "fashion-test"


@pytest.fixture(scope="module")
def gcs():
    with running_emulator(BUCKET):
        yield f"gs://{BUCKET}"


def test_annotated_dataset_in_and_out_of_gcs(gcs, all_forms_dataset, tmp_path):
    json_path, image_dir = all_forms_dataset
    upload_tree(image_dir, f"{gcs}/data/train")
    with open(json_path, "rb") as source, FileSystems.create(f"{gcs}/data/train.json") as target:
        target.write(source.read())
    counters = run_make_records("--image_dir", f"{gcs}/data/train",
                                "--object_annotations_file", f"{gcs}/data/train.json",
                                "--output_file_prefix", f"{gcs}/records/train",
                                "--num_shards", "2")
    with open(json_path) as stream:
        document = json.load(stream)
    assert counters["images_written"] == len(document["images"])
    assert counters["annotations_written"] == len(document["annotations"])

    local = tmp_path / "downloaded"
    local.mkdir()
    shards = download_matching(f"{gcs}/records/train-*", str(local))
    names = sorted(os.path.basename(p) for p in shards)
    assert names == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
                     "train-errors.jsonl", "train-labels.json"]
    prefix = str(local / "train")
    assert read_errors(prefix) == []
    records = read_records(prefix, read_label_map(prefix).num_attributes)
    assert assert_records_match_coco(prefix, json_path, records) == len(document["annotations"])


def test_image_only_glob_on_gcs(gcs, all_forms_dataset, tmp_path):
    _, image_dir = all_forms_dataset
    upload_tree(image_dir, f"{gcs}/photos")
    counters = run_make_records("--image_dir", f"{gcs}/photos/*.png",
                                "--output_file_prefix", f"{gcs}/predict/photos", "--num_shards", "1")
    num_png = len([n for n in os.listdir(image_dir) if n.endswith(".png")])
    assert counters["images_read"] == counters["images_written"] == num_png
    local = tmp_path / "dl"
    local.mkdir()
    download_matching(f"{gcs}/predict/photos-*", str(local))
    records = read_records(str(local / "photos"), num_attributes=0)
    assert sorted(r["filename"].decode() for r in records) == sorted(
        n for n in os.listdir(image_dir) if n.endswith(".png"))


def _names_below(prefix: str) -> list:
    return sorted(m.path[len(prefix):] for m in FileSystems.match([prefix + "**"])[0].metadata_list)


def test_a_used_prefix_on_gcs_is_refused_and_overwrite_clears_it(gcs, all_forms_dataset):
    from beam_pipelines.output_prefix import OutputError
    _, image_dir = all_forms_dataset
    upload_tree(image_dir, f"{gcs}/again")
    out = f"{gcs}/rerun/"
    flags = ["--image_dir", f"{gcs}/again/*.png", "--output_file_prefix", out + "r"]
    run_make_records(*flags, "--num_shards", "2")
    hex_id = "0123456789abcdef0123456789abcdef"
    planted = [f"beam-temp-r-{hex_id}/u1.r.tfrecord",  # a killed run's temp files (no dirs on GCS)
               f"beam-temp-r-errors-{hex_id}/u2.r-errors.jsonl",
               "r2-00000-of-00001.tfrecord", f"beam-temp-r2-{hex_id}/u3.r2.tfrecord",
               # (not -of-00001: Beam's sink deletes PREFIX-*-of-NNNNN.tfrecord before it renames)
               "r-extra-00000-of-00003.tfrecord"]
    for name in planted:
        with FileSystems.create(out + name) as stream:
            stream.write(b"planted")
    with pytest.raises(OutputError) as refused:
        run_make_records(*flags, "--num_shards", "1")
    assert str(refused.value) == (
        f"--output_file_prefix {out}r already holds output of an earlier run: "
        f"{out}r-00000-of-00002.tfrecord, {out}r-00001-of-00002.tfrecord, "
        f"{out}r-errors.jsonl, {out}beam-temp-r-{hex_id}/ and 1 more; "
        "pass --overwrite to delete it first, or choose another prefix")
    counters = run_make_records(*flags, "--num_shards", "1", "--overwrite")
    assert _names_below(out) == sorted(["r-00000-of-00001.tfrecord", "r-errors.jsonl",
                                        *planted[2:]])
    num_png = len([n for n in os.listdir(image_dir) if n.endswith(".png")])
    assert counters["images_written"] == num_png
