"""Evaluation parts on hand-computed cases: attribute F1, matching rules, precision
interpolation, the official evaluator's quirks and the corrected mode, input checks."""
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from model.evaluation.attribute_f1 import binary_macro_f1, multi_hot
from model.evaluation.detections import check_detections, compact_detection, iter_prediction_objects
from model.evaluation.evaluator import evaluate
from model.evaluation.ground_truth import EvaluationInputError, load_ground_truth
from model.evaluation.instance_matching import BEST_IOU, OFFICIAL_ATTRIBUTE_RULE, match_detections
from model.evaluation.precision_recall import RECALL_THRESHOLDS, precision_at_recalls


def test_binary_macro_f1_hand_computed():
    slots = {7: 0, 9: 1, 20: 2, 33: 3}
    true = multi_hot([[7], [], [7, 9]], slots, 4)
    detected = multi_hot([[], [7, 9]], slots, 4)
    f1 = binary_macro_f1(detected, true)
    # [] vs [7]: present 0, absent 2*3/(3+4) -> 3/7; [] vs []: only "absent" occurs -> 1.
    assert f1[0, 0] == pytest.approx(3 / 7)
    assert f1[0, 1] == 1.0
    # [7, 9] vs [7, 9]: both labels perfect. [7, 9] vs [7]: present 2*1/(1+2);
    # absent: 2 agreeing of 3 true and 2 predicted -> 2*2/(3+2).
    assert f1[1, 2] == 1.0
    assert f1[1, 0] == pytest.approx((2 / 3 + 4 / 5) / 2)


def _loop_precision(tp, fp, num_gt):
    """COCOeval's accumulate for one row, written as its loops."""
    tp_sum, fp_sum = np.cumsum(tp).astype(float), np.cumsum(fp).astype(float)
    recall = tp_sum / num_gt
    precision = (tp_sum / (fp_sum + tp_sum + np.spacing(1))).tolist()
    for i in range(len(precision) - 1, 0, -1):
        precision[i - 1] = max(precision[i - 1], precision[i])
    out = np.zeros(len(RECALL_THRESHOLDS))
    for r, index in enumerate(np.searchsorted(recall, RECALL_THRESHOLDS, side="left")):
        if index >= len(precision):
            break
        out[r] = precision[index]
    return out, (recall[-1] if len(recall) else 0.0)


def test_precision_at_recalls_equals_the_loops():
    rng = np.random.default_rng(0)
    for num_gt, length in [(1, 1), (3, 7), (7, 40), (13, 60)]:
        hits = rng.random((5, length)) < 0.4
        ignored = rng.random((5, length)) < 0.1
        tp, fp = hits & ~ignored, ~hits & ~ignored
        precision, recall = precision_at_recalls(tp, fp, num_gt)
        for row in range(5):
            expected, expected_recall = _loop_precision(tp[row], fp[row], num_gt)
            np.testing.assert_array_equal(precision[row], expected)
            assert recall[row] == expected_recall


def test_matching_rules_differ_where_documented():
    # One detection, two instances: the first with IoU .6 and F1 1.0, the second IoU .9 and F1 .6.
    ious, f1s = np.array([[0.6, 0.9]]), np.array([[1.0, 0.6]])
    no_ignore, no_crowd = np.zeros((1, 2), bool), np.zeros(2, bool)
    thresholds = np.array([0.5])
    official = match_detections(ious, f1s, no_ignore, no_crowd, thresholds, thresholds, OFFICIAL_ATTRIBUTE_RULE)
    best = match_detections(ious, f1s, no_ignore, no_crowd, thresholds, thresholds, BEST_IOU)
    assert official[0, 0, 0, 0] == 0  # the second does not beat the first on F1
    assert best[0, 0, 0, 0] == 1      # the higher IoU wins
    # A regular instance is preferred over an ignored one with a higher IoU.
    ignore = np.array([[True, False]])
    picked = match_detections(np.array([[0.95, 0.6]]), None, ignore, no_crowd, thresholds, thresholds, BEST_IOU)
    assert picked[0, 0, 0, 0] == 1
    # A crowd region absorbs several detections under COCOeval's rule only.
    crowd = np.array([True])
    two = np.array([[0.8], [0.8]])
    assert match_detections(two, None, np.ones((1, 1), bool), crowd, thresholds, thresholds,
                            BEST_IOU)[0, 0, 0].tolist() == [0, 0]
    assert match_detections(two, np.ones((2, 1)), np.ones((1, 1), bool), crowd, thresholds, thresholds,
                            OFFICIAL_ATTRIBUTE_RULE)[0, 0, 0].tolist() == [0, -1]


def _square(top, left, side, size=64):
    mask = np.zeros((size, size), np.uint8)
    mask[top:top + side, left:left + side] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [size, size], "counts": rle["counts"].decode()}, [float(left), float(top), float(side), float(side)]


def _dataset(category_ids, instances):
    """instances: (category id, attribute ids); one image, one square each."""
    annotations = []
    for index, (category, attributes) in enumerate(instances):
        segmentation, box = _square(2 + 10 * index, 2, 8)
        annotations.append({"id": index + 1, "image_id": 1, "category_id": category, "segmentation": segmentation,
                            "bbox": box, "area": 64.0, "iscrowd": 0, "attribute_ids": attributes})
    return {"images": [{"id": 1, "height": 64, "width": 64}], "annotations": annotations,
            "categories": [{"id": c, "name": f"c{c}"} for c in category_ids],
            "attributes": [{"id": a, "name": f"a{a}"} for a in (3, 5, 8)]}


def _perfect(dataset):
    return [compact_detection({"image_id": 1, "category_id": a["category_id"], "segmentation": a["segmentation"],
                               "bbox": a["bbox"], "score": 0.9, "attribute_ids": a["attribute_ids"]})
            for a in dataset["annotations"]]


def test_official_weighting_and_corrected_mode():
    # Category 10 (with attributes) found perfectly; category 20 (without) missed.
    dataset = _dataset(range(46), [(10, [3, 5]), (20, [])])
    detections = _perfect(dataset)[:1]
    ground_truth = load_ground_truth(dataset)
    official = evaluate(ground_truth, detections, ("segm",), "official")["segm"]
    corrected = evaluate(ground_truth, detections, ("segm",), "corrected")["segm"]
    # Official: 10 F1 slices of 1.0 against one IoU-only slice of 0.
    assert official["AP_IoU_F1"] == pytest.approx(10 / 11)
    assert corrected["AP_IoU_F1"] == pytest.approx(0.5)
    assert official["AP_IoU_only"] == corrected["AP_IoU_only"] == pytest.approx(0.5)


def test_official_mode_refuses_where_positions_and_ids_disagree():
    # Ids 1, 5, 40: position 2 is on the official list, id 40 is not.
    dataset = _dataset([1, 5, 40], [(1, [3]), (40, [])])
    ground_truth = load_ground_truth(dataset)
    with pytest.raises(EvaluationInputError, match="corrected mode"):
        evaluate(ground_truth, _perfect(dataset), ("segm",), "official")
    corrected = evaluate(ground_truth, _perfect(dataset), ("segm",), "corrected")["segm"]
    assert corrected["AP_IoU_F1"] == pytest.approx(1.0)
    # Other taxonomies: categories with attributes are those whose instances carry some.
    assert set(corrected["per_category"]["1"]) >= {"AP_IoU_F1", "AP_F1_only"}
    assert "AP_IoU_F1" not in corrected["per_category"]["40"]


def test_wrong_attributes_fail_the_f1_threshold():
    dataset = _dataset(range(46), [(10, [3, 5])])
    detections = _perfect(dataset)
    detections[0]["attribute_ids"] = [8]
    result = evaluate(load_ground_truth(dataset), detections, ("segm", "bbox"))
    for metrics in result.values():
        assert metrics["AP"] == pytest.approx(1.0)
        assert metrics["AP_IoU_only"] == pytest.approx(1.0)
        assert metrics["AP_IoU_F1"] == 0.0


def test_json_array_and_json_lines_read_alike():
    entries = [{"image_id": 1, "category_id": 2, "score": 0.5, "attribute_ids": [3]},
               {"image_id": 1, "category_id": 4, "score": 0.25, "attribute_probabilities": [0.1, 0.7, 0.2, 0.9]}]
    as_array = list(iter_prediction_objects(io.StringIO(json.dumps(entries, indent=1))))
    as_lines = list(iter_prediction_objects(io.StringIO("\n".join(json.dumps(e) for e in entries) + "\n\n")))
    assert as_array == as_lines == entries
    assert compact_detection(entries[1])["attribute_ids"] == [1, 3]
    assert compact_detection(entries[0], attribute_threshold=0.5)["attribute_ids"] == [3]
    assert compact_detection(entries[1], attribute_threshold=0.8)["attribute_ids"] == [3]
    with pytest.raises(EvaluationInputError, match=":2: not valid JSON"):
        list(iter_prediction_objects(io.StringIO('{"image_id": 1, "category_id": 1, "score": 1}\n{oops\n')))


def test_unknown_ids_are_named():
    ground_truth = load_ground_truth(_dataset([1, 2], [(1, [3])]))
    base = {"category_id": 1, "score": 0.5, "attribute_ids": []}
    with pytest.raises(EvaluationInputError, match=r"image id\(s\) that are not in the ground truth: 99"):
        check_detections(ground_truth, [dict(base, image_id=99)])
    with pytest.raises(EvaluationInputError, match=r"category id\(s\) .*: 7"):
        check_detections(ground_truth, [dict(base, image_id=1, category_id=7)])
    with pytest.raises(EvaluationInputError, match=r"attribute id\(s\) .*: 4"):
        check_detections(ground_truth, [dict(base, image_id=1, attribute_ids=[3, 4])])
    thresholded = [compact_detection({"image_id": 1, "category_id": 1, "score": 0.5,
                                      "attribute_probabilities": [0, 0, 0, 0.9, 0.9]})]
    check_detections(ground_truth, thresholded)
    assert thresholded[0]["attribute_ids"] == [3]  # slot 4 is no attribute of this ground truth


def test_other_taxonomy_groups_and_empty_predictions():
    from model.synthetic.taxonomy import coco_categories
    dataset = _dataset([c["id"] for c in coco_categories()], [(0, [3]), (1, [5]), (5, [])])
    dataset["categories"] = coco_categories()
    ground_truth = load_ground_truth(dataset)
    corrected = evaluate(ground_truth, _perfect(dataset), ("segm",), "corrected")["segm"]
    assert corrected["fashionpedia"]["iou"]["AP_round"] == pytest.approx(1.0)
    assert {"AP_round", "AP_angular"} <= set(corrected["fashionpedia"]["iou_f1"])
    assert "AP_paired" not in corrected["fashionpedia"]["iou_f1"]  # no instance of "pair" carries attributes
    official = evaluate(ground_truth, _perfect(dataset), ("segm",), "official")["segm"]
    assert official["fashionpedia"]["iou"]["AP_outerwear"] == pytest.approx(1.0)
    assert official["fashionpedia"]["iou"]["AP_part"] == -1.0  # no category at positions 27..45
    empty = evaluate(ground_truth, [], ("segm", "bbox"))
    for metrics in empty.values():
        assert metrics["AP"] == metrics["AP_IoU_F1"] == metrics["AR100"] == 0.0


def test_ground_truth_attribute_ids_must_be_listed():
    dataset = _dataset([1], [(1, [3, 4])])
    with pytest.raises(EvaluationInputError, match=r"attribute ids \[4\]"):
        load_ground_truth(dataset)
