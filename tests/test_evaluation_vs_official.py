"""Our evaluator against the official Fashionpedia evaluator and pycocotools, number for number."""
import json
import os

import numpy as np
import pytest

from model.evaluation.detections import compact_detection
from model.evaluation.evaluator import evaluate
from model.evaluation.ground_truth import load_ground_truth
from tests.generated_predictions import GeneratorConfig, generate
from tests.official_fashionpedia import official_tables, run_official

TOLERANCE = 1e-6


def _ours(ground_truth, results, iou_type, mode="official"):
    detections = [compact_detection(r) for r in results]
    return evaluate(load_ground_truth(ground_truth), detections, (iou_type,), mode)[iou_type]


def _max_difference(ours, official):
    assert set(ours) == set(official)
    return max(abs(ours[key] - official[key]) for key in official)


def _assert_tables_equal(ours, official):
    for table in ("iou_f1", "iou", "f1"):
        assert _max_difference(ours["fashionpedia"][table], official[table]) <= TOLERANCE, table


def test_fixture_sample_matches_official(fashionpedia_sample):
    with open(os.path.join(fashionpedia_sample, "sample.json")) as f:
        ground_truth = json.load(f)
    with open(os.path.join(fashionpedia_sample, "fake_results.json")) as f:
        results = json.load(f)
    ours = _ours(ground_truth, results, "segm")
    official = official_tables(run_official(ground_truth, results, "segm"))
    _assert_tables_equal(ours, official)
    assert ours["AP_IoU_F1"] == pytest.approx(0.5897, abs=5e-5)


@pytest.mark.parametrize("config, iou_type", [
    (GeneratorConfig(seed=1), "segm"),
    (GeneratorConfig(seed=2, with_boxes=False, crowd_fraction=0.15, first_annotation_id=0), "segm"),
    (GeneratorConfig(seed=3, num_images=8), "bbox"),
])
def test_generated_sets_match_official(config, iou_type):
    ground_truth, results = generate(config)
    ours = _ours(ground_truth, results, iou_type)
    evaluator = run_official(ground_truth, results, iou_type, per_class=config.seed == 1)
    _assert_tables_equal(ours, official_tables(evaluator))
    if config.seed == 1:
        for category in evaluator.cats:
            official = evaluator.results_per_class[category["name"]]
            entry = ours["per_category"][str(category["id"])]
            assert entry["AP_IoU_only"] == pytest.approx(official["iou"]["AP"], abs=TOLERANCE)
            if "iou_f1" in official:
                assert entry["AP_IoU_F1"] == pytest.approx(official["iou_f1"]["AP"], abs=TOLERANCE)
                assert entry["AP_F1_only"] == pytest.approx(official["f1"]["AP"], abs=TOLERANCE)


def test_position_indexing_reproduced_where_the_official_evaluator_runs():
    """Without category 13, ids and positions part from 13 on; the official evaluator
    still accumulates (its group lines then fail), and the overall numbers mix the two."""
    ground_truth, results = generate(GeneratorConfig(seed=21, num_images=14))
    dropped = {13, 30, 34}  # 30 and 34 would sit at positions the list marks, and fail
    ground_truth["categories"] = [c for c in ground_truth["categories"] if c["id"] != 13]
    ground_truth["annotations"] = [a for a in ground_truth["annotations"] if a["category_id"] not in dropped]
    results = [r for r in results if r["category_id"] not in dropped]
    ours = _ours(ground_truth, results, "segm")
    official = run_official(ground_truth, results, "segm", summarize=False)
    for table, constraints in (("iou_f1", {}), ("iou", {"f1": False}), ("f1", {"iou": False})):
        assert ours["fashionpedia"][table]["AP"] == pytest.approx(official._summarize("ap", **constraints),
                                                                   abs=TOLERANCE)
        assert ours["fashionpedia"][table]["AR@100"] == pytest.approx(official._summarize("ar", **constraints),
                                                                       abs=TOLERANCE)
    corrected = _ours(ground_truth, results, "segm", mode="corrected")
    assert corrected["AP_IoU_F1"] != pytest.approx(ours["AP_IoU_F1"], abs=1e-3)


def test_coco_numbers_are_pycocotools():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    import contextlib
    import copy
    import io
    ground_truth, results = generate(GeneratorConfig(seed=4, num_images=6))
    ours = _ours(ground_truth, results, "bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(ground_truth)
        coco_gt.createIndex()
        reference = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "bbox")
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
    assert [ours[n] for n in names] == list(reference.stats)


def test_corrected_iou_only_equals_coco_ap():
    """Corrected matching is COCOeval's rule, so with F1 lifted it must give COCO's AP."""
    ground_truth, results = generate(GeneratorConfig(seed=5, crowd_fraction=0.1))
    corrected = _ours(ground_truth, results, "segm", mode="corrected")
    assert corrected["AP_IoU_only"] == pytest.approx(corrected["AP"], abs=1e-12)
    assert corrected["fashionpedia"]["iou"]["AP_IOU50"] == pytest.approx(corrected["AP50"], abs=1e-12)
    official = _ours(ground_truth, results, "segm")
    assert not np.isclose(official["AP_IoU_F1"], corrected["AP_IoU_F1"])
