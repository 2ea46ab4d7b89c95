"""python -m beam_pipelines.visualize: a valid PNG of the image's size, mask colours where the masks are."""
import json

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from beam_pipelines import visualize
from model.label_map import LabelMap
from model.visualization import FILL_OPACITY, instance_colour

GREY = 100
WIDTH, HEIGHT = 320, 240
SIDE = 60


def _rle(top, left, height, width):
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[top:top + height, left:left + width] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [HEIGHT, WIDTH], "counts": rle["counts"].decode()}


def _detection(score, top, left, category, probabilities=None):
    entry = {"image_id": 1, "filename": "shots/a.jpg", "category_id": category, "score": score,
             "bbox": [left, top, SIDE, SIDE], "segmentation": _rle(top, left, SIDE, SIDE), "attribute_ids": [2, 0]}
    if probabilities is not None:
        entry["attribute_probabilities"] = probabilities
    return entry


def test_picture_has_the_image_size_and_each_mask_in_its_colour(tmp_path):
    (tmp_path / "images" / "shots").mkdir(parents=True)
    Image.new("RGB", (WIDTH, HEIGHT), (GREY, GREY, GREY)).save(tmp_path / "images" / "shots" / "a.jpg", quality=100)
    detections = [_detection(0.9, 150, 200, 3, [0.7, 0.1, 0.95]), _detection(0.6, 150, 20, 5),
                  _detection(0.2, 5, 45, 3)]  # below --min_score: not drawn
    (tmp_path / "pred-00000-of-00001.jsonl").write_text("".join(json.dumps(d) + "\n" for d in detections))
    labels = LabelMap.from_coco([{"id": 3, "name": "dress"}, {"id": 5, "name": "sleeve"}],
                                [{"id": 0, "name": "floral"}, {"id": 2, "name": "maxi"}])
    (tmp_path / "val-labels.json").write_text(labels.dumps())

    written = visualize.run(["--predictions", str(tmp_path / "pred-*.jsonl"), "--images", str(tmp_path / "images"),
                             "--out", str(tmp_path / "pictures"), "--labels", str(tmp_path / "val-labels.json")])

    assert written == [str(tmp_path / "pictures" / "shots__a.png")]
    with open(written[0], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    picture = np.array(Image.open(written[0]).convert("RGB")).astype(float)
    assert picture.shape == (HEIGHT, WIDTH, 3)
    for rank, (row, column) in enumerate([(180, 230), (180, 50)]):  # mask centres, best score first
        expected = (1 - FILL_OPACITY) * GREY + FILL_OPACITY * np.array(instance_colour(rank))
        np.testing.assert_allclose(picture[row, column], expected, atol=3)
    # Untouched where no mask, box or label is (the low-scoring detection's square included).
    np.testing.assert_allclose(picture[20, 60], [GREY] * 3, atol=3)


def test_top_attributes_follow_probabilities():
    assert visualize.top_attribute_ids({"attribute_ids": [0, 2], "attribute_probabilities": [0.7, 0.1, 0.95]}) == [2, 0]
    assert visualize.top_attribute_ids({"attribute_probabilities": [0.7, 0.1, 0.95]}) == [2, 0]
    assert visualize.top_attribute_ids({"attribute_ids": [5, 1]}) == [5, 1]
