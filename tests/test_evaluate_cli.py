"""python -m beam_pipelines.evaluate: shards and arrays alike, the output file, clear errors."""
import json

from beam_pipelines import evaluate as evaluate_cli
from model.evaluation.coco_metrics import COCO_STAT_NAMES
from tests.generated_predictions import GeneratorConfig, generate


def _write_inputs(tmp_path):
    ground_truth, detections = generate(GeneratorConfig(seed=11, num_images=6))
    (tmp_path / "gt.json").write_text(json.dumps(ground_truth))
    half = len(detections) // 2
    for shard, part in enumerate((detections[:half], detections[half:])):
        lines = "".join(json.dumps(dict(d, id=i)) + "\n" for i, d in enumerate(part))
        (tmp_path / f"pred-{shard:05d}-of-00002.jsonl").write_text(lines)
    (tmp_path / "results.json").write_text(json.dumps(detections))
    return ground_truth, detections


def test_shards_and_array_give_the_same_metrics(tmp_path, capsys):
    _write_inputs(tmp_path)
    gt = str(tmp_path / "gt.json")
    assert evaluate_cli.main(["--predictions", str(tmp_path / "pred-*.jsonl"), "--annotations", gt,
                              "--iou_type", "both", "--output", str(tmp_path / "m1.json")]) == 0
    assert evaluate_cli.main(["--predictions", str(tmp_path / "results.json"), "--annotations", gt,
                              "--iou_type", "both", "--output", str(tmp_path / "m2.json")]) == 0
    from_shards = json.loads((tmp_path / "m1.json").read_text())
    from_array = json.loads((tmp_path / "m2.json").read_text())
    assert from_shards == from_array
    assert set(from_shards) == {"bbox", "segm"}
    for metrics in from_shards.values():
        assert set(COCO_STAT_NAMES) | {"AP_IoU_F1", "AP_IoU_only", "AP_F1_only"} <= set(metrics)
        assert 0.0 < metrics["AP_IoU_F1"] < metrics["AP_F1_only"] <= 1.0
        assert metrics["fashionpedia"]["mode"] == "official"
        assert set(metrics["fashionpedia"]["iou_f1"]) >= {"AP_outerwear", "AP_part", "AP_IOU50_F175", "AR@100"}
    printed = capsys.readouterr().out
    assert "AP_IoU_F1" in printed and "segm" in printed


def test_corrected_mode_flag(tmp_path):
    _write_inputs(tmp_path)
    results = evaluate_cli.run(["--predictions", str(tmp_path / "results.json"),
                                "--annotations", str(tmp_path / "gt.json"), "--mode", "corrected"])
    assert results["segm"]["fashionpedia"]["mode"] == "corrected"
    assert results["segm"]["AP_IoU_only"] == results["segm"]["AP"]


def test_unknown_image_and_missing_files_are_clear_errors(tmp_path, capsys):
    _, detections = _write_inputs(tmp_path)
    (tmp_path / "bad.jsonl").write_text(json.dumps(dict(detections[0], image_id=123456)) + "\n")
    code = evaluate_cli.main(["--predictions", str(tmp_path / "bad.jsonl"),
                              "--annotations", str(tmp_path / "gt.json")])
    assert code == 2
    assert "image id(s) that are not in the ground truth: 123456" in capsys.readouterr().err
    code = evaluate_cli.main(["--predictions", str(tmp_path / "none-*.jsonl"),
                              "--annotations", str(tmp_path / "gt.json")])
    assert code == 2
    assert "no file matches" in capsys.readouterr().err
