"""Writes a synthetic Fashionpedia-format dataset: COCO JSON + images.

  python -m model.synthetic.generate --output_dir data/synth --splits train:400,val:100

writes ``OUTPUT_DIR/<split>.json`` and the images under ``OUTPUT_DIR/<split>/``.
The output depends only on the flags (seed included). ``--all_forms`` exercises
every corner of the format: polygons, multi-part polygons, compressed and
uncompressed RLE, crowd annotations, annotations without ``bbox``, JPEG and PNG.
"""
import argparse
import dataclasses
import json
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from model.synthetic import shapes, taxonomy

SEGMENTATION_FORMS = ("polygon", "rle", "uncompressed_rle")
IMAGE_FORMATS = ("jpeg", "png", "mixed")
SPLIT_ID_STRIDE = 1_000_000  # image ids of split k start at k * stride + 1


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    image_size: int = 128
    min_objects: int = 1
    max_objects: int = 4
    seed: int = 0
    image_format: str = "jpeg"
    segmentation_forms: Tuple[str, ...] = ("polygon",)
    crowd_fraction: float = 0.0
    no_bbox_fraction: float = 0.0
    small_radius: Tuple[float, float] = (0.07, 0.10)  # fractions of image_size
    large_radius: Tuple[float, float] = (0.15, 0.20)

    def __post_init__(self):
        unknown = set(self.segmentation_forms) - set(SEGMENTATION_FORMS)
        if unknown or not self.segmentation_forms:
            raise ValueError(f"segmentation_forms must be a non-empty subset of {SEGMENTATION_FORMS}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError("need 1 <= min_objects <= max_objects")


ALL_FORMS = dict(segmentation_forms=SEGMENTATION_FORMS, crowd_fraction=0.1,
                 no_bbox_fraction=0.25, image_format="mixed")


@dataclasses.dataclass
class _Placed:
    category: Tuple[int, str, str]
    colour: str
    pattern: str
    size: str
    cx: float
    cy: float
    radius: float
    angle: float


def _place(config: SyntheticConfig, rng: np.random.Generator) -> List[_Placed]:
    """Non-overlapping objects: each shape lies inside its circle and circles do not touch."""
    size = config.image_size
    placed: List[_Placed] = []
    wanted = int(rng.integers(config.min_objects, config.max_objects + 1))
    for _ in range(wanted * 30):
        if len(placed) == wanted:
            break
        size_name = "small" if rng.random() < 0.5 else "large"
        low, high = config.small_radius if size_name == "small" else config.large_radius
        radius = float(rng.uniform(low, high) * size)
        cx, cy = (float(v) for v in rng.uniform(radius + 1, size - radius - 1, 2))
        if any(math.hypot(cx - p.cx, cy - p.cy) < radius + p.radius + 2 for p in placed):
            continue
        placed.append(_Placed(
            category=taxonomy.CATEGORIES[int(rng.integers(len(taxonomy.CATEGORIES)))],
            colour=list(taxonomy.COLOURS)[int(rng.integers(len(taxonomy.COLOURS)))],
            pattern=list(taxonomy.PATTERNS)[int(rng.integers(len(taxonomy.PATTERNS)))],
            size=size_name, cx=cx, cy=cy, radius=radius,
            angle=float(rng.uniform(0, 2 * math.pi))))
    return placed


def _segmentation(form: str, polygons: Optional[List[List[float]]], mask: np.ndarray) -> object:
    if form == "polygon" and polygons is not None:
        return polygons
    rle = mask_utils.encode(np.asfortranarray(mask))
    if form == "uncompressed_rle":
        return {"size": list(mask.shape), "counts": _uncompressed_counts(mask)}
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _uncompressed_counts(mask: np.ndarray) -> List[int]:
    """COCO uncompressed RLE runs (column-major, starting with a run of zeros)."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    return runs if flat[0] == 0 else [0] + runs


def render_image(image_id: int, config: SyntheticConfig, rng: np.random.Generator,
                 first_annotation_id: int) -> Tuple[np.ndarray, List[Dict]]:
    """One image (uint8 [S, S, 3]) and its COCO annotations."""
    size = config.image_size
    pixels = shapes.background(size, size, rng)
    annotations = []
    for index, obj in enumerate(_place(config, rng)):
        category_id, name, _ = obj.category
        polygons = shapes.shape_polygons(name, obj.cx, obj.cy, obj.radius, obj.angle)
        mask = (shapes.polygons_to_mask(polygons, size, size) if polygons is not None
                else shapes.ring_mask(obj.cx, obj.cy, obj.radius, size, size))
        colour_id, colour_rgb = taxonomy.COLOURS[obj.colour]
        fill = shapes.texture(obj.pattern, colour_rgb, size, size, rng)
        pixels[mask > 0] = fill[mask > 0]

        is_crowd = int(rng.random() < config.crowd_fraction)
        forms = [f for f in config.segmentation_forms if polygons is not None or f != "polygon"]
        form = "uncompressed_rle" if is_crowd else str(rng.choice(forms or ["rle"]))
        annotation = {
            "id": first_annotation_id + index,
            "image_id": image_id,
            "category_id": category_id,
            "attribute_ids": sorted([colour_id, taxonomy.PATTERNS[obj.pattern],
                                     taxonomy.SIZES[obj.size]]),
            "segmentation": _segmentation(form, polygons, mask),
            "area": int(mask.sum()),
            "iscrowd": is_crowd,
        }
        if rng.random() >= config.no_bbox_fraction:
            rle = mask_utils.encode(np.asfortranarray(mask))
            annotation["bbox"] = [round(float(v), 2) for v in mask_utils.toBbox(rle)]
        annotations.append(annotation)
    return pixels, annotations


def generate_split(output_dir: str, split: str, num_images: int, config: SyntheticConfig,
                   split_index: int = 0) -> str:
    """Writes ``output_dir/<split>.json`` and ``output_dir/<split>/*``; returns the JSON path."""
    image_dir = os.path.join(output_dir, split)
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        image_id = split_index * SPLIT_ID_STRIDE + index + 1
        rng = np.random.default_rng([config.seed, split_index, index])
        pixels, image_annotations = render_image(
            image_id, config, rng, first_annotation_id=image_id * 100)
        use_png = config.image_format == "png" or (config.image_format == "mixed" and index % 2)
        file_name = f"{image_id:08d}.{'png' if use_png else 'jpg'}"
        Image.fromarray(pixels).save(os.path.join(image_dir, file_name),
                                     **({"format": "PNG"} if use_png else {"format": "JPEG", "quality": 95}))
        images.append({"id": image_id, "file_name": file_name, "height": config.image_size,
                       "width": config.image_size})
        annotations += image_annotations
    document = {
        "info": {"description": f"synthetic Fashionpedia-format dataset, split {split}",
                 "version": "1.0", "seed": config.seed},
        "images": images,
        "annotations": annotations,
        "categories": taxonomy.coco_categories(),
        "attributes": taxonomy.coco_attributes(),
    }
    json_path = os.path.join(output_dir, f"{split}.json")
    with open(json_path, "w") as stream:
        json.dump(document, stream)
    return json_path


def _parse_splits(text: str) -> List[Tuple[str, int]]:
    splits = []
    for item in text.split(","):
        name, _, count = item.partition(":")
        if not name or not count.isdigit():
            raise argparse.ArgumentTypeError(f"splits look like train:400,val:100, got {text!r}")
        splits.append((name, int(count)))
    return splits


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--splits", type=_parse_splits, default=_parse_splits("train:400,val:100"),
                        help="name:count pairs, e.g. train:400,val:100")
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--min_objects", type=int, default=1)
    parser.add_argument("--max_objects", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image_format", choices=IMAGE_FORMATS, default="jpeg")
    parser.add_argument("--segmentation_forms", default="polygon",
                        help=f"comma-separated subset of {','.join(SEGMENTATION_FORMS)}")
    parser.add_argument("--crowd_fraction", type=float, default=0.0)
    parser.add_argument("--no_bbox_fraction", type=float, default=0.0)
    parser.add_argument("--all_forms", action="store_true",
                        help="every segmentation form, crowd, missing bbox, JPEG and PNG")
    args = parser.parse_args(argv)
    settings = dict(image_size=args.image_size, min_objects=args.min_objects,
                    max_objects=args.max_objects, seed=args.seed, image_format=args.image_format,
                    segmentation_forms=tuple(args.segmentation_forms.split(",")),
                    crowd_fraction=args.crowd_fraction, no_bbox_fraction=args.no_bbox_fraction)
    if args.all_forms:
        settings.update(ALL_FORMS)
    config = SyntheticConfig(**settings)
    for split_index, (split, count) in enumerate(args.splits):
        path = generate_split(args.output_dir, split, count, config, split_index)
        print(f"{split}: {count} images in {os.path.join(args.output_dir, split)}, annotations {path}")


if __name__ == "__main__":
    main()
