"""DoFns of the make_records pipeline.

Counters live in the ``make_records`` namespace: images_read / written / failed,
annotations_read / written / skipped, plus ``images_failed.<code>``,
``annotations_skipped.<code>``, ``images_converted`` and ``images_resized``.
"""
from typing import Any, Dict, Iterable, List, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import TaggedOutput

from beam_pipelines import dead_letters, image_paths
from beam_pipelines.coco_scan import ElementRange
from beam_pipelines.dead_letters import ERRORS
from beam_pipelines.file_reads import read_file
from beam_pipelines.matched_images import ReadMatchedImages
from beam_pipelines.pipeline_metrics import Counters
from model.dataset import rejections
from model.dataset.image_files import InvalidImage, max_file_bytes
from model.dataset.json_stream import JsonStreamError, read_elements
from model.dataset.record_builder import (
    BuiltRecord, build_annotated_record, build_image_only_record, parse_image_entry)
from model.label_map import LabelMap

NAMESPACE = "make_records"
COUNTERS = Counters(NAMESPACE)
IMAGES = "images"
ANNOTATIONS = "annotations"


def _valid_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _annotation_order(annotation: Dict) -> tuple:
    annotation_id = annotation.get("id")
    return (0, annotation_id, "") if _valid_id(annotation_id) else (1, 0, repr(annotation_id))


def _skipped(image_id: Any, filename: Optional[str], annotation_id: Any, code: str,
             reason: str) -> TaggedOutput:
    """Counts ``annotations_skipped`` (and ``.code``) and returns the annotation's dead letter."""
    COUNTERS.inc_coded("annotations_skipped", code)
    return TaggedOutput(ERRORS, rejections.skipped_annotation(image_id, filename, annotation_id,
                                                              code, reason))


def _count_written(built: BuiltRecord) -> None:
    COUNTERS.inc("images_written")
    COUNTERS.inc("images_converted", int(built.image.converted_from_mode is not None))
    COUNTERS.inc("images_resized", int(built.image.resized_from is not None))


class ReadCocoRange(beam.DoFn):
    """ElementRange of the annotation file -> (image_id, image entry) and (image_id, annotation).

    Reads only the range's bytes. Main output: none. Tagged outputs: ``images``,
    ``annotations`` and ``errors`` (entries without a usable id).
    """

    def __init__(self, path: str):
        self._path = path

    def process(self, element_range: ElementRange) -> Iterable[Any]:
        with FileSystems.open(self._path) as stream:
            elements = read_elements(stream, element_range.start, element_range.end)
        if len(elements) != element_range.count:
            raise JsonStreamError(
                f"{self._path} changed while the job ran: bytes {element_range.start}-"
                f"{element_range.end} hold {len(elements)} elements, {element_range.count} expected")
        route = self._image if element_range.key == IMAGES else self._annotation
        for element in elements:
            yield from route(element)

    @staticmethod
    def _image(entry: Any) -> Iterable[TaggedOutput]:
        image_id = entry.get("id") if isinstance(entry, dict) else None
        if _valid_id(image_id):
            yield TaggedOutput(IMAGES, (image_id, entry))
            return
        COUNTERS.inc("images_read")
        filename = entry.get("file_name") if isinstance(entry, dict) else None
        yield dead_letters.failed_image(COUNTERS, image_id, filename, rejections.Rejected(
            "malformed_image_entry", f"image id {image_id!r} is not an integer"))

    @staticmethod
    def _annotation(annotation: Any) -> Iterable[TaggedOutput]:
        image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
        if _valid_id(image_id):
            yield TaggedOutput(ANNOTATIONS, (image_id, annotation))
            return
        COUNTERS.inc("annotations_read")
        annotation_id = annotation.get("id") if isinstance(annotation, dict) else None
        yield _skipped(image_id, None, annotation_id, "malformed_annotation",
                       f"annotation image_id {image_id!r} is not an integer")


class BuildAnnotatedRecords(beam.DoFn):
    """(image_id, {'images': [(entry, path)], 'annotations': [...]}) -> serialized record.

    ``path`` is the image file (None when no file was found for the entry).
    Failed images and skipped annotations go to the ``errors`` output; so does
    an entry whose ``file_name`` or file leads outside ``image_root`` (the
    directory, or the glob's fixed part): ``image_paths.FILE_OUTSIDE_IMAGE_DIR``.
    """

    def __init__(self, label_map_json: str, include_masks: bool, image_root: str,
                 max_pixels: int):
        self._label_map_json = label_map_json
        self._include_masks = include_masks
        self._image_root = image_root
        self._max_pixels = max_pixels
        self._label_map = None

    def setup(self) -> None:
        self._label_map = LabelMap.loads(self._label_map_json)

    def process(self, element) -> Iterable[Any]:
        image_id, grouped = element
        located = list(grouped[IMAGES])
        # Grouping does not keep file order; sorting by id makes records reproducible.
        annotations = sorted(grouped[ANNOTATIONS], key=_annotation_order)
        COUNTERS.inc("annotations_read", len(annotations))
        if not located:
            for annotation in annotations:
                yield _skipped(image_id, None, annotation.get("id"), "unknown_image",
                               f"image_id {image_id} is not in 'images'")
            return
        for entry, path in located:
            yield from self._build(image_id, entry, path, annotations)

    def _build(self, image_id: int, raw_entry: Dict, path: Optional[str],
               annotations: List[Any]) -> Iterable[Any]:
        COUNTERS.inc("images_read")
        filename = raw_entry.get("file_name")
        try:
            entry = parse_image_entry(raw_entry, self._max_pixels)
            image_paths.confined_name(entry.file_name)
            if path is None:
                raise InvalidImage("missing_file", f"no file matched by --image_dir is named "
                                                   f"{entry.file_name}")
            image_paths.check_inside(path, self._image_root)
            data = read_file(path, max_file_bytes(self._max_pixels))
            built: BuiltRecord = build_annotated_record(
                entry, annotations, data, self._label_map, self._include_masks, self._max_pixels)
        except InvalidImage as exc:
            COUNTERS.inc_coded("annotations_skipped", "image_failed", len(annotations))
            yield dead_letters.failed_image(COUNTERS, image_id, filename, exc,
                                            num_annotations=len(annotations))
            return
        _count_written(built)
        COUNTERS.inc("annotations_written", built.num_instances)
        for skipped in built.skipped:
            yield _skipped(image_id, filename, skipped.annotation_id, skipped.code, skipped.reason)
        yield built.serialized


class BuildImageOnlyRecords(ReadMatchedImages):
    """Beam ``ReadableFile`` -> serialized image-only record (for prediction input).

    ``image/filename`` is the path relative to ``root``; ``image/source_id`` is
    ``image_id_from_path`` of it (see ``ReadMatchedImages``).
    """

    def __init__(self, root: str, max_pixels: int):
        super().__init__(root, COUNTERS)
        self._max_pixels = max_pixels

    def unreadable_name(self, path: str, relative: str) -> str:
        return path  # make_records' reasons name the matched path in full

    def accept(self, image_id: int, relative: str, data: bytes) -> bytes:
        built = build_image_only_record(relative, str(image_id), data, self._max_pixels)
        _count_written(built)
        return built.serialized
