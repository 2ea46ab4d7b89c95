"""Builds serialized records from an image and its annotations (no Beam here)."""
import dataclasses
from typing import Any, List, Mapping, Sequence

import numpy as np

from model.dataset.coco_annotations import InvalidAnnotation, Instance, parse_annotation
from model.dataset.image_files import (DEFAULT_MAX_PIXELS, InvalidImage, PreparedImage,
                                       check_annotated_size, prepare_image)
from model import record_schema
from model.label_map import LabelMap
from model.masks.png import encode_mask_png


@dataclasses.dataclass
class SkippedAnnotation:
    annotation_id: Any
    code: str
    reason: str


@dataclasses.dataclass
class BuiltRecord:
    serialized: bytes
    image: PreparedImage
    num_instances: int
    skipped: List[SkippedAnnotation]


@dataclasses.dataclass(frozen=True)
class ImageEntry:
    """A validated entry of the JSON's ``images`` list (sizes in pixels)."""
    image_id: int
    file_name: str
    height: int
    width: int


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def parse_image_entry(entry: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageEntry:
    """Raises InvalidImage unless id, file_name, height, width are valid.

    Codes: ``malformed_image_entry``, or ``image_too_large`` when height x width
    is over ``max_pixels`` (checked before the file is read: the record and its
    masks are made at this size).
    """
    if not isinstance(entry, Mapping):
        raise InvalidImage("malformed_image_entry", "image entry is not a JSON object")
    problems = []
    image_id = entry.get("id")
    if isinstance(image_id, bool) or not isinstance(image_id, int):
        problems.append(f"id {image_id!r} is not an integer")
    if not isinstance(entry.get("file_name"), str) or not entry.get("file_name"):
        problems.append("file_name is missing")
    for key in ("height", "width"):
        if not _positive_int(entry.get(key)):
            problems.append(f"{key} {entry.get(key)!r} is not a positive integer")
    if problems:
        raise InvalidImage("malformed_image_entry", "; ".join(problems))
    check_annotated_size(entry["height"], entry["width"], max_pixels)
    return ImageEntry(image_id, entry["file_name"], entry["height"], entry["width"])


def _attribute_matrix(instances: Sequence[Instance], num_attributes: int) -> np.ndarray:
    matrix = np.zeros([len(instances), num_attributes], bool)
    for row, instance in enumerate(instances):
        matrix[row, instance.attribute_ids] = True
    return matrix


def build_annotated_record(entry: ImageEntry, annotations: Sequence[Any], data: bytes,
                           label_map: LabelMap, include_masks: bool,
                           max_pixels: int = DEFAULT_MAX_PIXELS) -> BuiltRecord:
    """One record for an annotated image; invalid annotations are returned as skipped.

    Each instance's mask is encoded as soon as it is made, so at most one
    height x width mask is held at a time, however many annotations the image has.

    Raises:
      InvalidImage: the image bytes cannot be used (the whole image fails), or
        the file's size is over ``max_pixels`` or too far from the entry's.
    """
    image = prepare_image(data, (entry.height, entry.width), max_pixels)
    instances: List[Instance] = []
    mask_pngs: List[bytes] = []
    skipped: List[SkippedAnnotation] = []
    for annotation in annotations:
        try:
            instance = parse_annotation(annotation, entry.height, entry.width, label_map,
                                        include_masks)
            if include_masks:
                mask_pngs.append(encode_mask_png(instance.mask))
                instance.mask = None
            instances.append(instance)
        except InvalidAnnotation as exc:
            annotation_id = annotation.get("id") if isinstance(annotation, Mapping) else None
            skipped.append(SkippedAnnotation(annotation_id, exc.code, str(exc)))
    boxes = np.array([[i.box[1] / entry.height, i.box[0] / entry.width,
                       i.box[3] / entry.height, i.box[2] / entry.width] for i in instances],
                     np.float32).reshape(-1, 4)
    example = record_schema.encode_example(
        image_bytes=image.data,
        image_format=image.image_format,
        height=entry.height,
        width=entry.width,
        filename=entry.file_name,
        source_id=str(entry.image_id),
        boxes=boxes,
        classes=[i.model_class for i in instances],
        class_texts=[i.category_name for i in instances],
        is_crowd=[i.is_crowd for i in instances],
        areas=[i.area for i in instances],
        mask_pngs=mask_pngs if include_masks else None,
        attributes=_attribute_matrix(instances, label_map.num_attributes)
        if label_map.num_attributes else None,
    )
    return BuiltRecord(example.SerializeToString(), image, len(instances), skipped)


def build_image_only_record(filename: str, source_id: str, data: bytes,
                            max_pixels: int = DEFAULT_MAX_PIXELS) -> BuiltRecord:
    """A record without objects, for prediction input.

    Raises:
      InvalidImage: the bytes cannot be used, or the image is over ``max_pixels``.
    """
    image = prepare_image(data, max_pixels=max_pixels)
    example = record_schema.encode_example(
        image_bytes=image.data, image_format=image.image_format, height=image.height,
        width=image.width, filename=filename, source_id=source_id)
    return BuiltRecord(example.SerializeToString(), image, 0, [])

