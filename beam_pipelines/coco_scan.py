"""Launcher-side pass over an annotation file, before any worker starts.

Streams the file once (bounded memory, see ``json_stream``) to fail fast on a
document that is not valid JSON or lacks the COCO lists, to refuse duplicate
image ids (their annotations could not be attributed), to read the small
``categories``/``attributes`` lists that form the label map, and to cut the
``images`` and ``annotations`` arrays into byte ranges of a few thousand
elements each, which workers read in parallel.
"""
import dataclasses
from typing import Any, Dict, List, Optional, Set

from apache_beam.io.filesystems import FileSystems

from model.dataset.json_stream import JsonStreamError, iter_top_level
from model.label_map import LabelMap, LabelMapError

STREAMED_KEYS = ("images", "annotations")
ELEMENTS_PER_RANGE = 5000


class AnnotationFileError(ValueError):
    """The annotation file cannot be used at all; the message names the problem."""


@dataclasses.dataclass(frozen=True)
class ElementRange:
    """``count`` consecutive elements of the top-level array ``key``, bytes [start, end)."""
    key: str
    start: int
    end: int
    count: int


@dataclasses.dataclass
class AnnotationSummary:
    label_map: LabelMap
    num_images: int
    num_annotations: int
    ranges: List[ElementRange]


class _RangeCutter:
    def __init__(self, elements_per_range: int):
        self._size = elements_per_range
        self.ranges: List[ElementRange] = []
        self._open: Optional[list] = None  # [key, start, end, count]

    def add(self, key: str, start: int, end: int) -> None:
        if self._open and self._open[0] == key and self._open[3] < self._size:
            self._open[2], self._open[3] = end, self._open[3] + 1
            return
        self.close()
        self._open = [key, start, end, 1]

    def close(self) -> None:
        if self._open:
            self.ranges.append(ElementRange(*self._open))
            self._open = None


def scan_annotations(path: str, elements_per_range: int = ELEMENTS_PER_RANGE) -> AnnotationSummary:
    """Validates ``path`` (local or any Beam filesystem); returns its label map, counts and ranges."""
    try:
        stream = FileSystems.open(path)
    except Exception as exc:
        raise AnnotationFileError(f"cannot open annotation file {path}: {exc}") from None
    seen_ids: Dict[int, int] = {}
    small_values: Dict[str, Any] = {}
    counts = {key: 0 for key in STREAMED_KEYS}
    present: Set[str] = set()
    cutter = _RangeCutter(elements_per_range)
    try:
        with stream:
            for item in iter_top_level(stream, STREAMED_KEYS, seen_keys=present):
                if item.key not in counts:
                    small_values[item.key] = item.value
                    continue
                if item.key == "images":
                    _check_unique(item.value, seen_ids, counts["images"], path)
                counts[item.key] += 1
                cutter.add(item.key, item.start, item.end)
    except JsonStreamError as exc:
        raise AnnotationFileError(f"{path} is not valid COCO JSON: {exc}") from None
    cutter.close()
    for required in ("images", "categories"):
        if required not in present:
            raise AnnotationFileError(f"{path} has no top-level '{required}' list")
    try:
        label_map = LabelMap.from_coco(small_values["categories"], small_values.get("attributes"))
    except LabelMapError as exc:
        raise AnnotationFileError(f"{path}: {exc}") from None
    return AnnotationSummary(label_map, counts["images"], counts["annotations"], cutter.ranges)


def _check_unique(entry: Any, seen_ids: Dict[int, int], position: int, path: str) -> None:
    image_id = entry.get("id") if isinstance(entry, dict) else None
    if not isinstance(image_id, int) or isinstance(image_id, bool):
        return  # reported per image by the pipeline
    if image_id in seen_ids:
        raise AnnotationFileError(f"{path}: image id {image_id} appears twice in 'images' "
                                  f"(entries {seen_ids[image_id]} and {position})")
    seen_ids[image_id] = position
