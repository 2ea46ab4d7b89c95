"""predict's output volume: --attributes full|ids|top_k=K and --compression gzip.

Three pipeline runs on the same images (batch size 1, so every image meets the model
alone and the runs see the same floats): the default, ``ids`` gzip-compressed and
``top_k=5`` gzip-compressed. The compact modes are checked against the full vectors
of the default run, and evaluate must give the same numbers on all three.
"""
import copy
import gzip
import json
import os

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from beam_pipelines import evaluate, predict, predict_outputs
from beam_pipelines.prediction_files import matched_paths, open_text
from beam_pipelines.saved_model_check import ModelError
from beam_pipelines.visualize import top_attribute_ids
from model import detection_lines
from model.dataset.image_ids import image_id_from_path
from model.evaluation.detections import read_detections as read_for_evaluation
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.prediction_helpers import (NUM_ATTRIBUTES, check_detections, coco_ground_truth,
                                      image_sizes, read_detections, read_errors, run_predict,
                                      tiny_model)

_ = tiny_model  # a fixture used by name below
TODAYS_KEYS = ["image_id", "filename", "id", "category_id", "bbox", "score", "segmentation",
               "mask_mean_score", "mask_area_fraction", "area", "mask_pixel_mean_score",
               "attribute_probabilities", "attribute_ids"]
IDS_KEYS = TODAYS_KEYS[:-2] + ["attribute_ids"]
TOP_K_KEYS = IDS_KEYS + ["attribute_top_k_ids", "attribute_top_k_probabilities"]
K = 5


# --- one detection, no pipeline ---------------------------------------------------------

def _two_detections():
    return (7, "a/b.jpg"), {
        "slots": np.array([0, 3]),
        "boxes": np.array([[1.5, 2.25, 10.0, 20.5], [0, 0, 4, 4]], np.float32),
        "scores": np.array([0.91234567, 0.25], np.float32),
        "category_ids": np.array([2, 5]),
        "segmentation": [{"size": [24, 16], "counts": "abc1"}, {"size": [24, 16], "counts": "Z0"}],
        "mask_mean_score": np.array([0.7654321, 0.5]),
        "mask_area_fraction": np.array([0.5, 1.0]),
        "area": np.array([70, 16]),
        "mask_pixel_mean_score": np.array([0.71234567, 0.5]),
        "attribute_probabilities": np.array([[0.1, 0.87654, 0.5, 0.0],
                                             [0.49999, 0.25, 0.75, 0.0]], np.float32),
    }


def test_default_lines_are_byte_for_byte_the_full_schema():
    """The lines the pipeline wrote before --attributes existed (kept here verbatim), with
    the pixel scores that came later (area, mask_pixel_mean_score)."""
    expected = [
        '{"image_id":7,"filename":"a/b.jpg","id":7168,"category_id":2,"bbox":[1.5,2.25,8.5,18.25],'
        '"score":0.912346,"segmentation":{"size":[24,16],"counts":"abc1"},"mask_mean_score":0.765432,'
        '"mask_area_fraction":0.5,"area":70,"mask_pixel_mean_score":0.712346,"attribute_probabilities":[0.1,0.8765,0.5,0.0],"attribute_ids":[1,2]}',
        '{"image_id":7,"filename":"a/b.jpg","id":7171,"category_id":5,"bbox":[0.0,0.0,4.0,4.0],'
        '"score":0.25,"segmentation":{"size":[24,16],"counts":"Z0"},"mask_mean_score":0.5,'
        '"mask_area_fraction":1.0,"area":16,"mask_pixel_mean_score":0.5,"attribute_probabilities":[0.5,0.25,0.75,0.0],"attribute_ids":[2]}',
    ]
    assert predict_outputs.to_json_lines(_two_detections(), 0.5) == expected
    assert predict_outputs.to_json_lines(
        _two_detections(), 0.5, detection_lines.parse_attribute_output("full")) == expected
    args, _ = predict.parse_args(["--model", "m", "--images", "i", "--output", "o"])
    assert args.attributes == detection_lines.FULL and predict.detections_suffix(args) == ".jsonl"


def test_top_k_takes_defined_attributes_only():
    probabilities = np.array([0.3, 0.99, 0.3, 0.7, 0.0, 0.1], np.float32)
    # Slot 1 is no attribute of the label map: it is skipped however probable.
    assert detection_lines.top_attributes(probabilities, 3, (0, 2, 3, 5)) == (
        [3, 0, 2], [0.7, 0.3, 0.3])  # the tie at 0.3: smaller id first
    assert detection_lines.top_attributes(probabilities, 2) == ([1, 3], [0.99, 0.7])
    # K beyond the label map: every defined attribute, ids past the vector ignored.
    assert detection_lines.top_attributes(probabilities, 10, (5, 0, 40)) == ([0, 5], [0.3, 0.1])
    key, detections = _two_detections()
    output = detection_lines.AttributeOutput("top_k", 2, (0, 1, 2))
    first, second = detection_lines.detection_objects(key, detections, 0.5, output)
    assert list(first) == TOP_K_KEYS
    assert (first["attribute_top_k_ids"], first["attribute_top_k_probabilities"]) == ([1, 2], [0.8765, 0.5])
    assert (second["attribute_top_k_ids"], second["attribute_ids"]) == ([2, 0], [2])


def test_the_label_map_of_the_saved_model_names_the_defined_attributes(tmp_path):
    (tmp_path / "assets").mkdir()
    labels = tmp_path / "assets" / "labels.json"
    labels.write_text(json.dumps({"categories": [{"id": 1, "name": "shirt"}],
                                  "attributes": [{"id": 9, "name": "a"}, {"id": 2, "name": "b"}]}))
    assert predict_outputs.defined_attribute_ids(str(tmp_path)) == (2, 9)
    assert predict_outputs.defined_attribute_ids(str(tmp_path / "none")) is None
    args, _ = predict.parse_args(["--model", str(tmp_path), "--images", "i", "--output", "o",
                                  "--attributes", "top_k=3"])
    assert predict.attribute_output(args) == detection_lines.AttributeOutput("top_k", 3, (2, 9))
    labels.write_text("{not json")
    with pytest.raises(ModelError, match="label map cannot be read"):
        predict.attribute_output(args)


@pytest.mark.parametrize("flags, named", [
    (["--attributes", "top_k=0"], "top_k=0"), (["--attributes", "top_k=x"], "top_k=x"),
    (["--attributes", "top_k"], "'top_k'"), (["--attributes", "probabilities"], "probabilities"),
    (["--compression", "zip"], "zip")])
def test_bad_flag_values_exit_2_with_one_error_line(flags, named, capsys):
    with pytest.raises(SystemExit) as stopped:
        predict.parse_args(["--model", "m", "--images", "i", "--output", "o", *flags])
    assert stopped.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and flags[0] in errors[0] and named in errors[0]


def test_open_text_reads_gzip_and_plain_alike(tmp_path):
    lines = ['{"a":1}', '{"b":"\u00e9"}'] * 5000
    with gzip.open(tmp_path / "p.jsonl.gz", "wt", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in ("p.jsonl.gz", "p.jsonl"):
        with open_text(str(tmp_path / name)) as stream:
            assert stream.read().splitlines() == lines


def test_visualize_orders_ids_by_the_top_k_probabilities():
    assert top_attribute_ids({"attribute_ids": [1, 4, 7], "attribute_top_k_ids": [7, 9, 4],
                              "attribute_top_k_probabilities": [0.9, 0.8, 0.6]}) == [7, 4, 1]
    assert top_attribute_ids({"attribute_ids": [3, 1]}) == [3, 1]


# --- three pipeline runs ------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    """{mode: (prefix, counters, rows)} for full (default flags), ids + gzip, top_k=5 + gzip."""
    root = tmp_path_factory.mktemp("predict_volume")
    generate_split(str(root), "val", 4, SyntheticConfig(image_size=96, image_format="mixed", seed=9))
    image_dir = str(root / "val")
    common = ["--model", tiny_model, "--images", image_dir, "--min_score_threshold", "0",
              "--batch_size", "1", "--num_shards", "2"]
    found = {}
    for mode, flags, suffix in (("full", [], ".jsonl"),
                                ("ids", ["--attributes", "ids", "--compression", "gzip"], ".jsonl.gz"),
                                ("top_k", ["--attributes", f"top_k={K}", "--compression", "gzip"],
                                 ".jsonl.gz")):
        prefix = str(root / mode / "val")
        counters = run_predict(*common, "--output", prefix, *flags)
        found[mode] = prefix, counters, read_detections(prefix, suffix)
    return image_dir, found


def test_full_mode_is_the_default_schema(runs):
    image_dir, found = runs
    prefix, counters, rows = found["full"]
    assert sorted(os.listdir(os.path.dirname(prefix))) == [
        "val-00000-of-00002.jsonl", "val-00001-of-00002.jsonl", "val-errors.jsonl"]
    assert counters["images_read"] == counters["images_predicted"] == 4
    # Every slot of the tiny model (20 an image) but those whose mask is empty.
    assert 0 < counters["detections_written"] == len(rows) <= 4 * 20
    check_detections(rows, image_sizes(image_dir))
    assert all(list(row) == TODAYS_KEYS for row in rows)  # and in today's order


def test_compact_modes_agree_with_the_full_vectors(runs):
    _, found = runs
    full = {row["id"]: row for row in found["full"][2]}
    for mode, keys in (("ids", IDS_KEYS), ("top_k", TOP_K_KEYS)):
        prefix, counters, rows = found[mode]
        assert sorted(os.listdir(os.path.dirname(prefix))) == [
            "val-00000-of-00002.jsonl.gz", "val-00001-of-00002.jsonl.gz",
            "val-errors.jsonl"]  # the errors file is never compressed
        assert read_errors(prefix) == [] and counters["images_failed"] == 0
        assert counters["detections_written"] == len(rows) and {r["id"] for r in rows} == set(full)
        for row in rows:
            assert list(row) == keys
            reference = full[row["id"]]
            for key in IDS_KEYS:
                assert row[key] == reference[key], (mode, key)
            probabilities = np.asarray(reference["attribute_probabilities"])
            # attribute_ids: the full vector thresholded (4 decimals: 0.49996 shows as 0.5)
            assert set(row["attribute_ids"]) >= set(np.flatnonzero(probabilities >= 0.50005))
            assert set(row["attribute_ids"]) <= set(np.flatnonzero(probabilities >= 0.49995))
            if mode == "top_k":
                ids, values = row["attribute_top_k_ids"], row["attribute_top_k_probabilities"]
                assert len(ids) == len(set(ids)) == K and values == sorted(values, reverse=True)
                assert values == [probabilities[i] for i in ids]
                assert values == sorted(probabilities, reverse=True)[:K]
                assert all(0 <= i < NUM_ATTRIBUTES for i in ids)


def _ground_truth_from(rows, image_dir, path):
    """A ground truth whose instances are the three best detections of each image (with
    their attribute ids), so that box, mask and attribute numbers are all non-trivial."""
    sizes = image_sizes(image_dir)
    annotations = []
    for name in sizes:
        mine = sorted((r for r in rows if r["filename"] == name), key=lambda r: -r["score"])[:3]
        for row in mine:
            rle = dict(row["segmentation"], counts=row["segmentation"]["counts"].encode())
            annotations.append({"id": len(annotations) + 1, "image_id": row["image_id"],
                                "category_id": row["category_id"], "bbox": row["bbox"],
                                "segmentation": row["segmentation"], "iscrowd": 0,
                                "area": float(coco_mask.area(rle)),
                                "attribute_ids": row["attribute_ids"]})
    dataset = {
        "images": [{"id": image_id_from_path(name), "file_name": name, "height": h, "width": w}
                   for name, (h, w) in sizes.items()],
        "categories": [{"id": c, "name": f"class {c + 1}", "supercategory": "s"} for c in range(6)],
        "attributes": [{"id": a, "name": f"attribute {a}"} for a in range(NUM_ATTRIBUTES)],
        "annotations": annotations,
    }
    with open(path, "w") as stream:
        json.dump(dataset, stream)
    return sizes, dataset


def test_evaluate_gives_the_same_numbers_on_every_mode(runs, tmp_path, capsys):
    image_dir, found = runs
    annotations = str(tmp_path / "gt.json")
    _ground_truth_from(found["full"][2], image_dir, annotations)
    metrics, compacted = {}, {}
    for mode, suffix in (("full", ".jsonl"), ("ids", ".jsonl.gz"), ("top_k", ".jsonl.gz")):
        pattern = found[mode][0] + "-?????-of-?????" + suffix
        metrics[mode] = json.dumps(evaluate.run(["--predictions", pattern, "--annotations",
                                                 annotations, "--iou_type", "both"]), sort_keys=True)
        detections = []
        for path in matched_paths([pattern]):
            with open_text(path) as stream:
                detections += read_for_evaluation([stream], [path])
        compacted[mode] = sorted(detections, key=lambda d: (d["image_id"], -d["score"], d["bbox"]))
    assert len(compacted["full"]) == len(found["full"][2])
    assert compacted["ids"] == compacted["full"] and compacted["top_k"] == compacted["full"]
    assert metrics["ids"] == metrics["full"] and metrics["top_k"] == metrics["full"]
    numbers = json.loads(metrics["full"])
    assert numbers["segm"]["AP"] > 0.3 and numbers["bbox"]["AP"] > 0.3
    assert numbers["segm"]["AP_IoU_F1"] > 0  # attribute ids are taken into account


def test_gzip_output_loads_into_pycocotools_after_decompression(runs):
    image_dir, found = runs
    sizes = image_sizes(image_dir)
    ground_truth = coco_ground_truth(sizes, {n: image_id_from_path(n) for n in sizes}, range(6))
    for mode in ("ids", "top_k"):
        prefix, _, _ = found[mode]
        rows = []
        for path in sorted(matched_paths([prefix + "-?????-of-?????.jsonl.gz"])):
            with gzip.open(path, "rt", encoding="utf-8") as stream:
                rows += [json.loads(line) for line in stream]
        results = ground_truth.loadRes(copy.deepcopy(rows))
        loaded = results.loadAnns(results.getAnnIds())
        assert len(loaded) == len(rows) == len(found["full"][2])
        assert sorted(a["segmentation"]["counts"] for a in loaded) == sorted(
            r["segmentation"]["counts"] for r in rows)
        assert all(a["attribute_ids"] == r["attribute_ids"] for a, r in zip(loaded, rows))
