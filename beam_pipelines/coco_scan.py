"""Launcher-side check of an annotation file, before any worker starts.

Streams the file once (bounded memory, see ``json_stream``) to fail fast on a
document that is not valid JSON or lacks the COCO lists, to refuse duplicate
image ids (their annotations could not be attributed), and to read the small
``categories``/``attributes`` lists that form the label map.
"""
import dataclasses
from typing import Any, Dict, Set

from apache_beam.io.filesystems import FileSystems

from beam_pipelines.json_stream import JsonStreamError, iter_top_level
from model.label_map import LabelMap, LabelMapError

STREAMED_KEYS = ("images", "annotations")


class AnnotationFileError(ValueError):
    """The annotation file cannot be used at all; the message names the problem."""


@dataclasses.dataclass
class AnnotationSummary:
    label_map: LabelMap
    num_images: int
    num_annotations: int


def _image_id(entry: Any) -> Any:
    return entry.get("id") if isinstance(entry, dict) else None


def scan_annotations(path: str) -> AnnotationSummary:
    """Validates ``path`` (local or any Beam filesystem) and returns its label map and counts."""
    try:
        stream = FileSystems.open(path)
    except Exception as exc:
        raise AnnotationFileError(f"cannot open annotation file {path}: {exc}") from None
    seen_ids: Dict[int, int] = {}
    small_values: Dict[str, Any] = {}
    counts = {key: 0 for key in STREAMED_KEYS}
    present: Set[str] = set()
    try:
        with stream:
            for key, value in iter_top_level(stream, STREAMED_KEYS, seen_keys=present):
                if key == "images":
                    image_id = _image_id(value)
                    if isinstance(image_id, int) and not isinstance(image_id, bool):
                        if image_id in seen_ids:
                            raise AnnotationFileError(
                                f"{path}: image id {image_id} appears twice in 'images' (entries "
                                f"{seen_ids[image_id]} and {counts['images']})")
                        seen_ids[image_id] = counts["images"]
                if key in counts:
                    counts[key] += 1
                else:
                    small_values[key] = value
    except JsonStreamError as exc:
        raise AnnotationFileError(f"{path} is not valid COCO JSON: {exc}") from None
    for required in ("images", "categories"):
        if required not in present:
            raise AnnotationFileError(f"{path} has no top-level '{required}' list")
    try:
        label_map = LabelMap.from_coco(small_values["categories"], small_values.get("attributes"))
    except LabelMapError as exc:
        raise AnnotationFileError(f"{path}: {exc}") from None
    return AnnotationSummary(label_map, counts["images"], counts["annotations"])
