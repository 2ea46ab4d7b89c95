"""predict reading images from gs:// and writing its outputs there, through a real GCS emulator."""
import os

from PIL import Image

from model.dataset.image_ids import image_id_from_path
from model.synthetic.generate import SyntheticConfig, generate_split
from tests.gcs_emulator import download_matching, running_emulator, upload_tree
from tests.prediction_helpers import check_detections, read_detections, read_errors, run_predict, tiny_model

_ = tiny_model  # a fixture used by name below
BUCKET = "fashion-predict-test"


def test_images_and_outputs_on_gcs(tiny_model, tmp_path):
    generate_split(str(tmp_path), "shop", 4, SyntheticConfig(image_size=80, seed=8, image_format="mixed"))
    image_dir = tmp_path / "shop"
    (image_dir / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    with running_emulator(BUCKET):
        upload_tree(str(image_dir), f"gs://{BUCKET}/in/day1")
        counters = run_predict("--model", tiny_model, "--images", f"gs://{BUCKET}/in/*/*.*",
                               "--output", f"gs://{BUCKET}/out/shop", "--min_score_threshold", "0",
                               "--num_shards", "1")
        local = tmp_path / "downloaded"
        local.mkdir()
        names = [os.path.basename(p) for p in download_matching(f"gs://{BUCKET}/out/*", str(local))]
    assert sorted(names) == ["shop-00000-of-00001.jsonl", "shop-errors.jsonl"]
    assert counters["images_read"] == 5
    assert counters["images_predicted"] == 4 and counters["images_failed"] == 1
    (error,) = read_errors(str(local / "shop"))
    assert error["filename"] == "day1/broken.jpg" and error["code"] == "undecodable_image"
    assert error["image_id"] == image_id_from_path("day1/broken.jpg")
    rows = read_detections(str(local / "shop"))
    assert counters["detections_written"] == len(rows) > 0
    sizes = {}
    for name in os.listdir(image_dir):
        if name != "broken.jpg":
            with Image.open(image_dir / name) as image:
                sizes[f"day1/{name}"] = image.size[::-1]
    check_detections(rows, sizes)
