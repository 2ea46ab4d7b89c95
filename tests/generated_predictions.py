"""Random ground truth over the 46-category Fashionpedia taxonomy and perturbed predictions.

Built to exercise every path of the evaluators: several instances of a category
per image (competing matches), all three area ranges, score ties, attributes
that agree partly (F1 values on and around the thresholds), empty attribute
lists, duplicate and spurious detections, and optionally crowd regions and an
annotation with id 0.
"""
import dataclasses

import numpy as np
from pycocotools import mask as mask_utils

NUM_CATEGORIES = 46
ATTRIBUTE_CATEGORIES = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 28, 29, 31, 32, 33)


@dataclasses.dataclass
class GeneratorConfig:
    num_images: int = 10
    image_size: int = 160
    max_instances: int = 7
    crowd_fraction: float = 0.0
    first_annotation_id: int = 1
    with_boxes: bool = True
    seed: int = 0


def _rectangle_mask(rng, height, width, size_range):
    h = int(rng.integers(*size_range))
    w = int(rng.integers(*size_range))
    top = int(rng.integers(0, max(1, height - h)))
    left = int(rng.integers(0, max(1, width - w)))
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[top:top + h, left:left + w] = 1
    if rng.random() < 0.5:  # a notch, so masks are not all boxes
        mask[top:top + h // 2, left:left + w // 3] = 0
    return mask


def _shifted(mask, rng, max_shift):
    dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
    return np.roll(np.roll(mask, dy, axis=0), dx, axis=1)


def _rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _perturbed_attributes(rng, attributes, pool):
    kept = [a for a in attributes if rng.random() < 0.8]
    if rng.random() < 0.3:
        kept.append(int(rng.choice(pool)))
    return sorted(set(kept))


def generate(config: GeneratorConfig):
    """Returns (ground-truth dict, list of detections in COCO results format)."""
    rng = np.random.default_rng(config.seed)
    attribute_ids = sorted(rng.choice(341, size=294, replace=False).tolist())
    pool = attribute_ids[:8]  # a small pool, so vectors overlap often
    categories = [{"id": c, "name": f"category {c}", "supercategory": "s"} for c in range(NUM_CATEGORIES)]
    images, annotations, detections = [], [], []
    next_id = config.first_annotation_id
    size = config.image_size
    for image_id in range(1, config.num_images + 1):
        images.append({"id": image_id * 7, "height": size, "width": size + 10, "file_name": f"{image_id}.jpg"})
        image_categories = rng.choice(NUM_CATEGORIES, size=3, replace=False)
        previous = None
        for _ in range(int(rng.integers(0, config.max_instances + 1))):
            if previous is not None and rng.random() < 0.35:
                # An overlapping twin of the previous instance: detections then
                # qualify for two instances and the matching rules differ.
                category, mask = previous[0], _shifted(previous[1], rng, 6)
            else:
                category = int(rng.choice(image_categories))
                mask = _rectangle_mask(rng, size, size + 10, (8, 120))
            if mask.sum() == 0:
                continue
            previous = (category, mask)
            has_attributes = category in ATTRIBUTE_CATEGORIES and rng.random() < 0.85
            attributes = sorted(set(rng.choice(pool, size=int(rng.integers(1, 4))).tolist())) \
                if has_attributes else []
            rle = mask_utils.encode(np.asfortranarray(mask))
            annotation = {"id": next_id, "image_id": image_id * 7, "category_id": category,
                          "segmentation": _rle(mask), "area": float(mask_utils.area(rle)),
                          "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                          "iscrowd": int(rng.random() < config.crowd_fraction), "attribute_ids": attributes}
            annotations.append(annotation)
            next_id += 1
            for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
                predicted = _shifted(mask, rng, 5)
                if predicted.sum() == 0:
                    continue
                detections.append(_detection(image_id * 7, category, predicted, rng,
                                             _perturbed_attributes(rng, attributes, pool), config))
        for _ in range(int(rng.integers(0, 3))):  # spurious detections
            mask = _rectangle_mask(rng, size, size + 10, (8, 90))
            detections.append(_detection(image_id * 7, int(rng.choice(image_categories)), mask, rng,
                                         sorted(set(rng.choice(pool, size=2).tolist())), config))
    ground_truth = {"images": images, "annotations": annotations, "categories": categories,
                    "attributes": [{"id": a, "name": f"attribute {a}"} for a in attribute_ids]}
    return ground_truth, detections


def _detection(image_id, category, mask, rng, attributes, config):
    rle = mask_utils.encode(np.asfortranarray(mask))
    detection = {"image_id": image_id, "category_id": category, "segmentation": _rle(mask),
                 "score": round(float(rng.random()), 1), "attribute_ids": attributes}
    if config.with_boxes:
        box = mask_utils.toBbox(rle)
        detection["bbox"] = [float(v) for v in box]
    return detection
