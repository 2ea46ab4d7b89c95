"""A scaled-down run of the demo command: every stage runs, in its own process, and
the table and the files it names are there."""
import json
import math
import os

from beam_pipelines import demo


def test_scaled_down_demo_runs_every_stage(tmp_path, capsys):
    out = tmp_path / "demo"
    numbers = demo.run(["--output_dir", str(out), "--train_images", "8", "--val_images", "4",
                        "--override", "train.total_steps=6", "--override", "train.warmup_steps=2",
                        "--override", "train.decay_steps=[5]"])
    printed = capsys.readouterr().out
    assert "held-out val split: 4 images" in printed
    for name in ("box AP", "mask AP", "mask AP_IoU+F1", "attribute F1 (matched, IoU .5)",
                 "predict images/s (incl. start-up)"):
        assert name in numbers and name in printed
    for name in ("box AP", "mask AP", "box AP50", "mask AP50"):
        assert 0.0 <= numbers[name] <= 1.0
    assert numbers["predict images/s (incl. start-up)"] > 0
    with open(out / "metrics.json") as stream:
        metrics = json.load(stream)
    assert math.isclose(metrics["segm"]["AP"], numbers["mask AP"])
    assert os.path.exists(out / "records" / "train-labels.json")
    assert os.path.exists(out / "model" / "export" / "demo" / "saved_model.pb")
    assert os.path.exists(out / "model" / "config.yaml")
    assert sorted(os.listdir(out / "logs")) == sorted(
        f"{step}.log" for step in ("generate", "make_records_train", "make_records_val", "train",
                                   "export", "predict", "evaluate", "visualize"))
    with open(out / "logs" / "predict.log") as stream:
        last = [line for line in stream.read().splitlines() if line.strip()][-1]
    assert last.startswith("images_read=4 ") and "images_failed=0" in last
