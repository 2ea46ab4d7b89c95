"""Pictures of predictions: one PNG per image with every instance's mask, box,
category name, score and top attribute names.

  python -m beam_pipelines.visualize --predictions 'out/pred-*.jsonl' --images data/val \
      --out pictures/ --min_score 0.5 --labels out/records/val-labels.json

Predictions are the predict pipeline's JSON Lines (or a COCO results array); each
names its image by ``filename``, relative to --images. Names come from --labels:
make_records' PREFIX-labels.json and/or a COCO/Fashionpedia JSON (categories and
attributes); without them, ids are shown. Paths may be local or gs://.
"""
import argparse
import io
import os
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from apache_beam.io.filesystems import FileSystems
from PIL import Image

from beam_pipelines.prediction_files import exit_status, load_json, matched_paths, open_text
from model.evaluation.detections import iter_prediction_objects
from model.evaluation.ground_truth import EvaluationInputError
from model.label_map import LabelMap
from model.visualization import DrawnInstance, draw_instances


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", required=True, nargs="+", help="Glob(s) of prediction files.")
    parser.add_argument("--images", required=True, help="Directory the predictions' filenames are relative to.")
    parser.add_argument("--out", required=True, help="Directory for the PNGs.")
    parser.add_argument("--min_score", type=float, default=0.5, help="Draw detections scoring at least this.")
    parser.add_argument("--labels", nargs="*", default=[],
                        help="Label map(s) (PREFIX-labels.json) and/or COCO JSON(s) with category/attribute names.")
    parser.add_argument("--max_attributes", type=int, default=3, help="Attribute names shown per instance.")
    return parser.parse_args(argv)


def load_names(paths: Sequence[str]) -> Tuple[Dict[int, str], Dict[int, str]]:
    """(category id -> name, attribute id -> name) from label maps or COCO JSON files."""
    categories, attributes = {}, {}
    for path in paths:
        data = load_json(path)
        label_map = LabelMap.from_coco(data.get("categories"), data.get("attributes"))
        categories.update({c.id: c.name for c in label_map.categories})
        attributes.update({a.id: a.name for a in label_map.attributes})
    return categories, attributes


def top_attribute_ids(entry: dict) -> List[int]:
    """Predicted attribute ids, most probable first when probabilities are given
    (``attribute_probabilities``, or ``attribute_top_k_*`` for the ids among the top K,
    which then come first; the others keep their order)."""
    probabilities = entry.get("attribute_probabilities")
    ids = entry.get("attribute_ids")
    if probabilities is None:
        known = dict(zip(entry.get("attribute_top_k_ids") or [],
                         entry.get("attribute_top_k_probabilities") or []))
        return sorted((int(a) for a in ids or []), key=lambda a: -known.get(a, -1.0))
    probabilities = np.asarray(probabilities, dtype=float)
    if ids is None:
        ids = np.flatnonzero(probabilities >= 0.5).tolist()
    return sorted((int(a) for a in ids), key=lambda a: -probabilities[a])


def _instance(entry: dict, categories: Dict[int, str], attributes: Dict[int, str]) -> DrawnInstance:
    category = entry["category_id"]
    return DrawnInstance(
        category_name=categories.get(category, f"category {category}"),
        score=float(entry["score"]),
        bbox=entry.get("bbox"),
        segmentation=entry.get("segmentation"),
        attribute_names=[attributes.get(a, f"attribute {a}") for a in top_attribute_ids(entry)])


def picture_name(filename: str) -> str:
    stem, _ = os.path.splitext(filename.strip("/"))
    return stem.replace("/", "__") + ".png"


def read_instances(paths: Sequence[str], min_score: float, names) -> Dict[str, List[DrawnInstance]]:
    """filename -> instances scoring at least ``min_score``."""
    by_image = defaultdict(list)
    for path in paths:
        with open_text(path) as stream:
            for entry in iter_prediction_objects(stream, path):
                if not entry.get("filename"):
                    raise EvaluationInputError(f"{path}: a detection of image {entry['image_id']} has no 'filename'")
                if entry["score"] >= min_score:
                    by_image[entry["filename"]].append(_instance(entry, *names))
                else:
                    by_image.setdefault(entry["filename"], [])
    return by_image


def write_picture(image_path: str, instances: List[DrawnInstance], out_path: str, max_attributes: int) -> None:
    with FileSystems.open(image_path, compression_type="uncompressed") as stream:
        image = Image.open(io.BytesIO(stream.read()))
        image.load()
    buffer = io.BytesIO()
    draw_instances(image, instances, max_attributes).save(buffer, format="PNG")
    with FileSystems.create(out_path, mime_type="image/png") as stream:
        stream.write(buffer.getvalue())


def run(argv: Optional[Sequence[str]] = None) -> List[str]:
    """Writes the pictures; returns their paths."""
    args = parse_args(argv)
    names = load_names(args.labels)
    by_image = read_instances(matched_paths(args.predictions), args.min_score, names)
    if not FileSystems.exists(args.out) and "://" not in args.out:
        os.makedirs(args.out, exist_ok=True)
    written = []
    for filename, instances in sorted(by_image.items()):
        out_path = FileSystems.join(args.out, picture_name(filename))
        write_picture(FileSystems.join(args.images, filename), instances, out_path, args.max_attributes)
        written.append(out_path)
    print(f"{len(written)} picture(s) written to {args.out}")
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    return exit_status(run, argv)


if __name__ == "__main__":
    sys.exit(main())
