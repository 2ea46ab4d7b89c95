import hashlib
import json
import os

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from model.synthetic import taxonomy
from model.synthetic.generate import ALL_FORMS, SyntheticConfig, generate_split, main


def _digest(directory):
    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(directory)):
        for name in sorted(files):
            with open(os.path.join(root, name), "rb") as stream:
                digest.update(name.encode() + stream.read())
    return digest.hexdigest()


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        main(["--output_dir", str(tmp_path / name), "--splits", "train:6,val:2", "--seed", str(seed),
              "--all_forms"])
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_format_and_learnable_content(tmp_path):
    config = SyntheticConfig(image_size=64, max_objects=4, seed=5, **ALL_FORMS)
    json_path = generate_split(str(tmp_path), "train", 30, config)
    with open(json_path) as stream:
        document = json.load(stream)
    attribute_ids = [a["id"] for a in document["attributes"]]
    assert attribute_ids != list(range(len(attribute_ids)))  # non-contiguous, like Fashionpedia
    assert all("supercategory" in c for c in document["categories"])
    coco = COCO(json_path)
    colour_of = {aid: rgb for aid, rgb in taxonomy.COLOURS.values()}
    for annotation in document["annotations"]:
        assert len(annotation["attribute_ids"]) == 3
        mask = coco.annToMask(annotation)
        assert mask.sum() == annotation["area"] > 0
        image = coco.imgs[annotation["image_id"]]
        pixels = np.asarray(Image.open(os.path.join(tmp_path, "train", image["file_name"])), float)
        colour = [colour_of[a] for a in annotation["attribute_ids"] if a in colour_of][0]
        inside = pixels[mask > 0]
        # The instance is painted in its colour attribute: its brighter half is nearest to it.
        brightest = inside[inside.sum(axis=1) >= np.percentile(inside.sum(axis=1), 50)].mean(axis=0)
        nearest = min(colour_of.values(), key=lambda rgb: np.linalg.norm(brightest - rgb))
        assert nearest == colour
