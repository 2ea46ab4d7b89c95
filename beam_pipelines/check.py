"""Regression check: does the model still find every expected mask?

  python -m beam_pipelines.check (--model SAVED_MODEL | --checkpoint PREFIX --config YAML
      [--label_map JSON]) --images DIR --expected_masks DIR \
      [--min_iou 0.9] [--min_score_threshold 0.05] --out_qual DIR

Expected masks are ``IMAGE_CATEGORY.png``, ``IMAGE_CATEGORY.npy`` or, for several
of one category, ``IMAGE_CATEGORY_N.(png|npy)``: IMAGE is an image's file name in
--images without its extension, CATEGORY the dataset category id; the array is
[H, W] of the image's size, nonzero on the mask. Each must be matched by a
detection of that category on that image whose mask IoU is > --min_iou. Prints
``NAME: OK`` (or ``NAME: MISSING ...``) per expected mask, writes
``expected_NAME.png`` and ``actual_NAME.png`` (the best detection of the
category) overlays to --out_qual, and exits non-zero naming every missing mask.

The older scripts' names are taken too: ``INDEX_CATEGORYNAME.(npy|png)`` (for
example ``15_coat.npy``, ``45_top|t-shirt|sweatshirt.npy``) for the only image
of --images. CATEGORYNAME is a category name of the model's label map
(``assets/labels.json``) with ", " written "|" and " " written "_"; INDEX
names the detection the mask was taken from and is not used to match. Such a
mask prints ``PATH: OK`` or ``NAME mask doesn't exist in the prediction.``, and
the image's every detection is drawn as ``actual_I_CATEGORYNAME.png`` (I its
position in score order) and saved as ``actual_masks/I_CATEGORYNAME.npy``,
files that can serve as expected masks.

Detections are the predict pipeline's: the same input check, the same
selection and the same RLE (``model.masks.rle.encode_masks_with_scores``), run in-process.
"""
import argparse
import dataclasses
import os
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from apache_beam.io.filesystems import FileSystems
from PIL import Image
from pycocotools import mask as coco_mask

from beam_pipelines import model_source
from beam_pipelines.predict_inputs import checked_image
from beam_pipelines.predict_outputs import LABEL_MAP_ASSET
from model.dataset.image_files import DEFAULT_MAX_PIXELS
from model.detection_lines import select_detections
from model.label_map import LabelMap, LabelMapError
from model.masks.rle import encode_masks_with_scores
from beam_pipelines.saved_model_check import IMAGE_INPUT, IMAGE_SIGNATURE, ModelError, check_signature

_EXPECTED_COLOUR = (0, 200, 0)
_ACTUAL_COLOUR = (230, 0, 0)
_DROP_IN = re.compile(r"(\d+)_(.+)")
ACTUAL_MASKS_DIR = "actual_masks"


@dataclasses.dataclass(frozen=True)
class ExpectedMask:
    name: str  # the file name without extension
    image: str  # the image file name in --images
    category_id: int
    path: str
    drop_in: bool = False  # named INDEX_CATEGORYNAME

    @property
    def file_name(self) -> str:
        return os.path.basename(self.path)


def file_name_of_category(name: str) -> str:
    """A label map category name as the older scripts wrote it in file names:
    "top, t-shirt, sweatshirt" -> "top|t-shirt|sweatshirt", "leg warmer" -> "leg_warmer"."""
    return name.replace(", ", "|").replace(",", "|").replace(" ", "_")


def category_names(label_map: LabelMap) -> Dict[int, str]:
    """Category id -> its name as written in INDEX_CATEGORYNAME file names."""
    return {category.id: file_name_of_category(category.name) for category in label_map.categories}


def read_label_map(model: str) -> Optional[LabelMap]:
    """The label map the SavedModel carries, or None when it carries none."""
    path = FileSystems.join(model, *LABEL_MAP_ASSET)
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path, compression_type="uncompressed") as stream:
        text = stream.read().decode("utf-8")
    try:
        return LabelMap.loads(text)
    except (LabelMapError, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a label map: {exc}") from None


def _own_name(parts: List[str], stems: Dict[str, str]) -> Optional[Tuple[str, int]]:
    # IMAGE_CATEGORY or IMAGE_CATEGORY_N; an image name may itself hold "_digits",
    # so the longer image name that exists wins.
    candidates = []
    if len(parts) >= 2 and parts[-1].isdigit():
        candidates.append(("_".join(parts[:-1]), int(parts[-1])))
    if len(parts) >= 3 and parts[-1].isdigit() and parts[-2].isdigit():
        candidates.append(("_".join(parts[:-2]), int(parts[-2])))
    return next(((stem, category) for stem, category in candidates if stem in stems), None)


def find_expected(expected_dir: str, image_names: Sequence[str],
                  label_map: Optional[LabelMap] = None) -> List[ExpectedMask]:
    """Expected mask files matched to images (and categories) by name; raises ValueError
    for a file that names no image or, named INDEX_CATEGORYNAME, no category of ``label_map``."""
    stems = {os.path.splitext(name)[0]: name for name in image_names}
    names = None if label_map is None else category_names(label_map)
    found = []
    for file_name in sorted(os.listdir(expected_dir)):
        if not file_name.endswith((".npy", ".png")):
            continue
        stem = os.path.splitext(file_name)[0]
        path = os.path.join(expected_dir, file_name)
        match = _own_name(stem.split("_"), stems)
        if match is not None:
            found.append(ExpectedMask(stem, stems[match[0]], match[1], path))
            continue
        drop_in = _DROP_IN.fullmatch(stem)
        if drop_in is None or drop_in.group(2).isdigit():
            raise ValueError(f"{file_name} names no image of --images "
                             "(expected IMAGE_CATEGORY[_N].png or .npy, or INDEX_CATEGORYNAME.npy)")
        if len(image_names) != 1:
            raise ValueError(f"{file_name}: an INDEX_CATEGORYNAME mask is of the only image of "
                             f"--images, and --images holds {len(image_names)} files")
        if names is None:
            raise ValueError(f"{file_name}: an INDEX_CATEGORYNAME mask needs the model's label map "
                             f"({'/'.join(LABEL_MAP_ASSET)}), and the model has none")
        wanted = drop_in.group(2).casefold()
        category = next((cid for cid, name in names.items() if name.casefold() == wanted), None)
        if category is None:
            raise ValueError(f"{file_name}: category {drop_in.group(2)!r} is not in the model's "
                             f"label map (its names: {', '.join(names.values())})")
        found.append(ExpectedMask(stem, image_names[0], category, path, drop_in=True))
    return found


def load_mask(path: str, size: Tuple[int, int]) -> np.ndarray:
    try:
        mask = np.load(path) if path.endswith(".npy") else np.asarray(Image.open(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a mask: {exc}") from None
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if mask.ndim != 2 or mask.shape != size:
        raise ValueError(f"{path} is {'x'.join(map(str, mask.shape))}, its image {size[0]}x{size[1]}")
    return (mask != 0).astype(np.uint8)


class Predictor:
    """Runs the SavedModel's image signature on one image -> the predict pipeline's detections."""

    def __init__(self, model: str, min_score: float):
        import tensorflow as tf
        self._tf = tf
        self._signature = tf.saved_model.load(model).signatures[IMAGE_SIGNATURE]
        self._min_score = min_score

    def detections(self, data: bytes) -> List[Dict]:
        image = checked_image(data, DEFAULT_MAX_PIXELS)
        outputs = {name: value.numpy()[0] for name, value in self._signature(
            **{IMAGE_INPUT: self._tf.constant([image.data])}).items()}
        selected = select_detections(outputs, self._min_score)
        height, width = selected["image_size"]
        encoded = encode_masks_with_scores(selected["mask_probabilities"], selected["boxes"],
                                           height, width)
        return [{"category_id": int(category), "score": float(score), "segmentation": item.rle}
                for category, score, item in zip(selected["category_ids"], selected["scores"], encoded)
                if item.area]


def decode(detection: Dict) -> np.ndarray:
    return coco_mask.decode(dict(detection["segmentation"],
                                 counts=detection["segmentation"]["counts"].encode()))


def best_match(expected: np.ndarray, category_id: int, detections: List[Dict]) -> Tuple[float, Optional[Dict]]:
    """(IoU, detection) of the detection of ``category_id`` overlapping ``expected`` most."""
    same = [d for d in detections if d["category_id"] == category_id]
    if not same:
        return 0.0, None
    target = coco_mask.encode(np.asfortranarray(expected))
    rles = [dict(d["segmentation"], counts=d["segmentation"]["counts"].encode()) for d in same]
    ious = coco_mask.iou(rles, [target], [0])[:, 0]
    best = int(np.argmax(ious))
    return float(ious[best]), same[best]


def overlay(image: Image.Image, mask: np.ndarray, colour) -> Image.Image:
    tint = Image.new("RGB", image.size, colour)
    alpha = Image.fromarray((mask * 128).astype(np.uint8), "L")
    return Image.composite(tint, image, alpha)


def write_every_detection(picture: Image.Image, detections: List[Dict], names: Dict[int, str],
                          out_dir: str) -> None:
    """``actual_I_CATEGORYNAME.png`` and ``actual_masks/I_CATEGORYNAME.npy`` per detection."""
    masks_dir = os.path.join(out_dir, ACTUAL_MASKS_DIR)
    os.makedirs(masks_dir, exist_ok=True)
    for index, detection in enumerate(detections):
        suffix = f"{index}_{names.get(detection['category_id'], detection['category_id'])}"
        mask = decode(detection)
        overlay(picture, mask, _ACTUAL_COLOUR).save(os.path.join(out_dir, f"actual_{suffix}.png"))
        np.save(os.path.join(masks_dir, f"{suffix}.npy"), mask)


def run(argv: Optional[Sequence[str]] = None) -> List[str]:
    """Checks every expected mask; returns the names of the missing ones."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    model_source.add_flags(parser)
    parser.add_argument("--images", required=True, help="directory of the images")
    parser.add_argument("--expected_masks", required=True, help="directory of expected masks")
    parser.add_argument("--min_iou", type=float, default=0.9)
    parser.add_argument("--min_score_threshold", type=float, default=0.05)
    parser.add_argument("--out_qual", required=True, help="directory for the overlay PNGs")
    args = parser.parse_args(argv)
    model_source.check_flags(parser, args)
    args.model = model_source.saved_model(args, [])
    check_signature(args.model, IMAGE_SIGNATURE, IMAGE_INPUT)
    label_map = read_label_map(args.model)
    expected = find_expected(args.expected_masks, sorted(os.listdir(args.images)), label_map)
    if not expected:
        raise ValueError(f"no expected masks (.npy or .png) in {args.expected_masks}")
    os.makedirs(args.out_qual, exist_ok=True)
    predictor = Predictor(args.model, args.min_score_threshold)
    cache: Dict[str, Tuple[Image.Image, List[Dict]]] = {}
    drawn = set()
    missing = []
    for item in expected:
        if item.image not in cache:
            with open(os.path.join(args.images, item.image), "rb") as stream:
                data = stream.read()
            cache[item.image] = (Image.open(os.path.join(args.images, item.image)).convert("RGB"),
                                 predictor.detections(data))
        picture, detections = cache[item.image]
        if item.drop_in and item.image not in drawn:
            write_every_detection(picture, detections, category_names(label_map), args.out_qual)
            drawn.add(item.image)
        mask = load_mask(item.path, (picture.height, picture.width))
        iou, detection = best_match(mask, item.category_id, detections)
        overlay(picture, mask, _EXPECTED_COLOUR).save(
            os.path.join(args.out_qual, f"expected_{item.name}.png"))
        if not item.drop_in:
            actual = np.zeros_like(mask) if detection is None else decode(detection)
            overlay(picture, actual, _ACTUAL_COLOUR).save(
                os.path.join(args.out_qual, f"actual_{item.name}.png"))
        if iou > args.min_iou:
            print(f"{item.path}: OK" if item.drop_in else f"{item.name}: OK (IoU {iou:.3f})")
        else:
            missing.append(item.name)
            print(f"{item.file_name} mask doesn't exist in the prediction." if item.drop_in else
                  f"{item.name}: MISSING (best IoU of category {item.category_id}: {iou:.3f}, "
                  f"needs > {args.min_iou})")
    return missing


def main() -> None:
    try:
        missing = run()
    except (ModelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if missing:
        raise SystemExit(f"missing {len(missing)} expected mask(s): {', '.join(missing)}")


if __name__ == "__main__":
    sys.exit(main())
