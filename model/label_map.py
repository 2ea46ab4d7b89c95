"""Dataset category/attribute ids <-> model classes, and their names.

Model classes are 1..N in ascending order of the dataset's category ids (0 is
background). Attribute ids are used as they are: attribute vectors have
``num_attributes = max attribute id + 1`` entries, so non-contiguous ids (as in
Fashionpedia, 294 attributes with ids 0..340) leave unused slots.

The label map is written as JSON next to the records (``PREFIX-labels.json``):
  {"categories": [{"id", "class", "name", "supercategory"}, ...],
   "attributes": [{"id", "name", "supercategory"}, ...],
   "num_classes": N + 1, "num_attributes": max attribute id + 1}
"""
import dataclasses
import json
from typing import Any, Dict, Mapping, Sequence


class LabelMapError(ValueError):
    """The categories or attributes of a dataset cannot form a label map."""


@dataclasses.dataclass(frozen=True)
class Category:
    id: int
    name: str
    supercategory: str = ""


@dataclasses.dataclass(frozen=True)
class Attribute:
    id: int
    name: str
    supercategory: str = ""


def _parse_entries(kind: str, entries: Any, cls):
    if not isinstance(entries, list):
        raise LabelMapError(f"'{kind}' must be a list, got {type(entries).__name__}")
    parsed = []
    seen = set()
    for position, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise LabelMapError(f"{kind}[{position}] is not an object")
        entry_id = entry.get("id")
        if isinstance(entry_id, bool) or not isinstance(entry_id, int) or entry_id < 0:
            raise LabelMapError(f"{kind}[{position}] has no non-negative integer 'id': {entry_id!r}")
        if entry_id in seen:
            raise LabelMapError(f"{kind} id {entry_id} appears more than once")
        seen.add(entry_id)
        parsed.append(cls(id=entry_id, name=str(entry.get("name", entry_id)),
                          supercategory=str(entry.get("supercategory", ""))))
    return sorted(parsed, key=lambda item: item.id)


@dataclasses.dataclass(frozen=True)
class LabelMap:
    categories: Sequence[Category]
    attributes: Sequence[Attribute] = ()

    def __post_init__(self):
        object.__setattr__(self, "_class_of", {c.id: i + 1 for i, c in enumerate(self.categories)})
        object.__setattr__(self, "_attribute_ids", frozenset(a.id for a in self.attributes))

    @classmethod
    def from_coco(cls, categories: Any, attributes: Any = None) -> "LabelMap":
        """Builds the map from a COCO JSON's ``categories`` and optional ``attributes``."""
        parsed_categories = _parse_entries("categories", categories, Category)
        if not parsed_categories:
            raise LabelMapError("'categories' is empty")
        parsed_attributes = _parse_entries("attributes", attributes or [], Attribute)
        return cls(tuple(parsed_categories), tuple(parsed_attributes))

    @property
    def num_classes(self) -> int:
        """Number of model classes including background."""
        return len(self.categories) + 1

    @property
    def num_attributes(self) -> int:
        """Length of attribute vectors: largest attribute id + 1 (0 without attributes)."""
        return max((a.id for a in self.attributes), default=-1) + 1

    def class_for_category(self, category_id: int) -> int:
        """Model class (1..N) of a dataset category id; KeyError when unknown."""
        return self._class_of[category_id]

    def has_category(self, category_id: Any) -> bool:
        return category_id in self._class_of

    def has_attribute(self, attribute_id: Any) -> bool:
        return attribute_id in self._attribute_ids

    def category_for_class(self, model_class: int) -> Category:
        if not 1 <= model_class <= len(self.categories):
            raise KeyError(f"model class {model_class} is outside 1..{len(self.categories)}")
        return self.categories[model_class - 1]

    def to_json(self) -> Dict[str, Any]:
        return {
            "categories": [
                {"id": c.id, "class": i + 1, "name": c.name, "supercategory": c.supercategory}
                for i, c in enumerate(self.categories)
            ],
            "attributes": [dataclasses.asdict(a) for a in self.attributes],
            "num_classes": self.num_classes,
            "num_attributes": self.num_attributes,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    @classmethod
    def loads(cls, text: str) -> "LabelMap":
        data = json.loads(text)
        label_map = cls.from_coco(data["categories"], data.get("attributes"))
        for entry in data["categories"]:
            if "class" in entry and entry["class"] != label_map.class_for_category(entry["id"]):
                raise LabelMapError(
                    f"category {entry['id']} has class {entry['class']}, expected "
                    f"{label_map.class_for_category(entry['id'])} (classes follow sorted ids)")
        return label_map
