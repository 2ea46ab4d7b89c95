"""make_records on DirectRunner: every written instance equals pycocotools' view of it."""
import json
import os

import numpy as np
import pytest
from pycocotools.coco import COCO

from tests.record_reading import (as_text, boxes_xywh, read_errors, read_label_map, read_records,
                                  run_make_records, sorted_by_id)


def assert_records_match_coco(prefix: str, json_path: str, records) -> int:
    """Compares each record with COCO's view of its image; returns the instances checked."""
    coco = COCO(json_path)
    label_map = read_label_map(prefix)
    checked = 0
    for record in records:
        image_id = int(as_text(record["source_id"]))
        image = coco.imgs[image_id]
        assert as_text(record["filename"]) == image["file_name"]
        assert (record["height"], record["width"]) == (image["height"], image["width"])
        assert record["image"].shape == (image["height"], image["width"], 3)
        annotations = sorted_by_id(coco.imgToAnns[image_id])
        assert len(record["groundtruth_classes"]) == len(annotations)
        xywh = boxes_xywh(record)
        for index, annotation in enumerate(annotations):
            expected_mask = coco.annToMask(annotation)
            np.testing.assert_array_equal(record["groundtruth_instance_masks"][index], expected_mask)
            expected_box = annotation.get("bbox")
            if expected_box is None:  # derived from the mask, as pycocotools does
                ys, xs = np.nonzero(expected_mask)
                expected_box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            np.testing.assert_allclose(xywh[index], expected_box, atol=1e-3)
            assert record["groundtruth_classes"][index] == label_map.class_for_category(
                annotation["category_id"])
            assert record["groundtruth_is_crowd"][index] == bool(annotation.get("iscrowd", 0))
            assert record["groundtruth_area"][index] == pytest.approx(annotation["area"])
            expected_attributes = np.zeros(label_map.num_attributes, bool)
            expected_attributes[annotation.get("attribute_ids", [])] = True
            np.testing.assert_array_equal(record["groundtruth_attributes"][index], expected_attributes)
            checked += 1
    return checked


def test_every_segmentation_form_round_trips(all_forms_dataset, tmp_path):
    json_path, image_dir = all_forms_dataset
    with open(json_path) as stream:
        document = json.load(stream)
    forms = {("crowd" if a["iscrowd"] else "") + type(a["segmentation"]).__name__
             + (type(a["segmentation"].get("counts")).__name__ if isinstance(a["segmentation"], dict) else "")
             + ("" if "bbox" in a else "-nobbox") for a in document["annotations"]}
    # The dataset really exercises each form the format allows.
    assert {"list", "dictstr", "dictlist", "crowddictlist"} <= {f.replace("-nobbox", "") for f in forms}
    assert any(f.endswith("-nobbox") for f in forms)
    assert any(isinstance(a["segmentation"], list) and len(a["segmentation"]) == 2
               for a in document["annotations"])
    assert {i["file_name"][-3:] for i in document["images"]} == {"jpg", "png"}

    prefix = str(tmp_path / "records" / "train")
    counters = run_make_records("--image_dir", image_dir, "--object_annotations_file", json_path,
                                "--output_file_prefix", prefix, "--num_shards", "3")
    assert counters["images_read"] == counters["images_written"] == len(document["images"])
    assert counters["annotations_written"] == len(document["annotations"])
    assert counters.get("annotations_skipped", 0) == 0
    assert read_errors(prefix) == []
    assert len([p for p in os.listdir(tmp_path / "records") if p.endswith(".tfrecord")]) == 3

    label_map = read_label_map(prefix)
    assert label_map.num_attributes == max(a["id"] for a in document["attributes"]) + 1
    records = read_records(prefix, label_map.num_attributes)
    assert len(records) == len(document["images"])
    assert assert_records_match_coco(prefix, json_path, records) == len(document["annotations"])


def test_image_bytes_pass_through_unchanged(all_forms_dataset, tmp_path):
    json_path, image_dir = all_forms_dataset
    prefix = str(tmp_path / "train")
    run_make_records("--image_dir", image_dir, "--object_annotations_file", json_path,
                     "--output_file_prefix", prefix, "--num_shards", "1", "--noinclude_masks")
    import tensorflow as tf
    from model import record_schema
    for serialized in tf.data.TFRecordDataset([prefix + "-00000-of-00001.tfrecord"]):
        example = tf.train.Example.FromString(serialized.numpy())
        features = example.features.feature
        filename = features[record_schema.FILENAME].bytes_list.value[0].decode()
        with open(os.path.join(image_dir, filename), "rb") as stream:
            assert features[record_schema.ENCODED].bytes_list.value[0] == stream.read()
        assert record_schema.MASK not in features


def test_fashionpedia_sample_round_trips(fashionpedia_sample, tmp_path):
    json_path = os.path.join(fashionpedia_sample, "sample.json")
    prefix = str(tmp_path / "sample")
    counters = run_make_records("--image_dir", os.path.join(fashionpedia_sample, "images"),
                                "--object_annotations_file", json_path,
                                "--output_file_prefix", prefix, "--num_shards", "1")
    assert counters["images_written"] == 2 and counters["annotations_written"] == 12
    label_map = read_label_map(prefix)
    assert label_map.num_attributes == 320 and label_map.num_classes == 49
    records = read_records(prefix, label_map.num_attributes)
    assert assert_records_match_coco(prefix, json_path, records) == 12


def test_multi_processing_workers(all_forms_dataset, tmp_path):
    """Workers in separate processes unpickle every DoFn, as Dataflow workers do."""
    json_path, image_dir = all_forms_dataset
    prefix = str(tmp_path / "mp")
    counters = run_make_records("--image_dir", image_dir, "--object_annotations_file", json_path,
                                "--output_file_prefix", prefix, "--num_shards", "2",
                                "--json_elements_per_range", "10",  # several ranges per array
                                "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    label_map = read_label_map(prefix)
    records = read_records(prefix, label_map.num_attributes)
    assert counters["images_written"] == len(records) == 24
    assert counters["annotations_written"] == sum(len(r["groundtruth_classes"]) for r in records)
    assert_records_match_coco(prefix, json_path, records)


def test_image_dir_glob_with_annotations(all_forms_dataset, tmp_path):
    """Entries are joined to the files a glob matches by path below the glob's fixed part."""
    json_path, image_dir = all_forms_dataset
    with open(json_path) as stream:
        document = json.load(stream)
    jpegs = [i for i in document["images"] if i["file_name"].endswith(".jpg")]
    pngs = [i for i in document["images"] if i["file_name"].endswith(".png")]
    prefix = str(tmp_path / "glob")
    counters = run_make_records("--image_dir", os.path.join(image_dir, "*.jpg"),
                                "--object_annotations_file", json_path,
                                "--output_file_prefix", prefix, "--num_shards", "1")
    assert counters["images_read"] == len(document["images"])
    assert counters["images_written"] == len(jpegs) and counters["images_failed"] == len(pngs)
    failed = {row["filename"]: row["code"] for row in read_errors(prefix)}
    assert failed == {i["file_name"]: "missing_file" for i in pngs}
    records = read_records(prefix, read_label_map(prefix).num_attributes)
    assert sorted(r["filename"].decode() for r in records) == sorted(i["file_name"] for i in jpegs)
    assert_records_match_coco(prefix, json_path, records)
