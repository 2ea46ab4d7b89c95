"""Ground truth for evaluation: a COCO / Fashionpedia annotation dict, completed.

pycocotools needs fields that Fashionpedia files leave out (``bbox`` and
``iscrowd`` on some, ``area`` on others). ``GroundTruth`` holds a copy of the
dict with those filled in from the masks, plus the lookups the metrics need.
The original dict is never modified.
"""
import contextlib
import copy
import dataclasses
import io
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO


class EvaluationInputError(ValueError):
    """Ground truth or predictions that cannot be evaluated; the message says which and why."""


def segmentation_to_rle(segmentation: Any, height: int, width: int) -> Dict[str, Any]:
    """Polygons, uncompressed RLE or compressed RLE -> one compressed RLE of an ``height x width`` image."""
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation, Mapping) and isinstance(segmentation.get("counts"), list):
        return mask_utils.frPyObjects(segmentation, height, width)
    if isinstance(segmentation, Mapping) and "counts" in segmentation:
        return dict(segmentation)
    raise EvaluationInputError(f"unsupported segmentation {type(segmentation).__name__}")


@dataclasses.dataclass
class GroundTruth:
    """A completed annotation dict and its lookups.

    Attributes:
      dataset: the completed copy (every annotation has ``bbox`` [x, y, w, h] in
        pixels, ``area`` in pixels, ``iscrowd`` and ``attribute_ids``).
      image_ids: sorted image ids, shape [num_images].
      category_ids: sorted category ids, shape [num_categories].
      category_names: category id -> name.
      category_supercategories: category id -> supercategory ('' when absent).
      attribute_ids: attribute ids in the file's order; position i is slot i of
        the multi-hot vectors (as the official evaluator numbers them).
      attribute_names: attribute id -> name.
    """
    dataset: Dict[str, Any]
    image_ids: np.ndarray
    category_ids: np.ndarray
    category_names: Dict[int, str]
    category_supercategories: Dict[int, str]
    attribute_ids: List[int]
    attribute_names: Dict[int, str]

    @property
    def annotations(self) -> List[Dict[str, Any]]:
        return self.dataset["annotations"]

    @property
    def image_sizes(self) -> Dict[int, tuple]:
        """image id -> (height, width) in pixels."""
        return {image["id"]: (image["height"], image["width"]) for image in self.dataset["images"]}

    def coco(self) -> COCO:
        """A fresh pycocotools index (COCOeval modifies the annotations it is given)."""
        api = COCO()
        api.dataset = copy.deepcopy(self.dataset)
        with contextlib.redirect_stdout(io.StringIO()):
            api.createIndex()
        return api


def _complete_annotation(annotation: Dict[str, Any], sizes: Mapping[int, tuple]) -> None:
    annotation.setdefault("iscrowd", 0)
    if annotation.get("attribute_ids") is None:
        annotation["attribute_ids"] = []
    if "bbox" in annotation and "area" in annotation:
        return
    height, width = sizes[annotation["image_id"]]
    if "segmentation" not in annotation:
        raise EvaluationInputError(
            f"annotation {annotation.get('id')} has neither 'bbox'+'area' nor 'segmentation'")
    rle = segmentation_to_rle(annotation["segmentation"], height, width)
    if "bbox" not in annotation:
        annotation["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]
    if "area" not in annotation:
        annotation["area"] = float(mask_utils.area(rle))


def _require_list(dataset: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = dataset.get(key)
    if not isinstance(value, list):
        raise EvaluationInputError(f"ground truth has no '{key}' list")
    return value


def load_ground_truth(dataset: Mapping[str, Any]) -> GroundTruth:
    """Completes a COCO / Fashionpedia annotation dict (left unmodified) for evaluation.

    Raises:
      EvaluationInputError: missing lists, or annotations naming an image,
        category or attribute that the file does not define.
    """
    for key in ("images", "annotations", "categories"):
        _require_list(dataset, key)
    completed = copy.deepcopy(dict(dataset))
    completed.setdefault("attributes", [])
    sizes = {image["id"]: (image["height"], image["width"]) for image in completed["images"]}
    category_ids = {category["id"] for category in completed["categories"]}
    attribute_ids = {attribute["id"] for attribute in completed["attributes"]}
    for annotation in completed["annotations"]:
        if annotation.get("image_id") not in sizes:
            raise EvaluationInputError(
                f"ground-truth annotation {annotation.get('id')} names image {annotation.get('image_id')!r}, "
                "which is not among the file's images")
        if annotation.get("category_id") not in category_ids:
            raise EvaluationInputError(
                f"ground-truth annotation {annotation.get('id')} has category {annotation.get('category_id')!r}, "
                "which is not among the file's categories")
        _complete_annotation(annotation, sizes)
        unknown = [a for a in annotation["attribute_ids"] if a not in attribute_ids]
        if unknown:
            raise EvaluationInputError(
                f"ground-truth annotation {annotation.get('id')} has attribute ids {unknown}, "
                "which are not among the file's attributes")
    return GroundTruth(
        dataset=completed,
        image_ids=np.array(sorted(sizes), dtype=np.int64),
        category_ids=np.array(sorted(category_ids), dtype=np.int64),
        category_names={c["id"]: str(c.get("name", c["id"])) for c in completed["categories"]},
        category_supercategories={c["id"]: str(c.get("supercategory", "")) for c in completed["categories"]},
        attribute_ids=list(dict.fromkeys(a["id"] for a in completed["attributes"])),
        attribute_names={a["id"]: str(a.get("name", a["id"])) for a in completed["attributes"]},
    )
