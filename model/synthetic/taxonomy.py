"""Categories and attributes of the synthetic dataset.

Category ids start at 0 like Fashionpedia's; attribute ids are deliberately
non-contiguous (as Fashionpedia's 0..340 for 294 attributes) so that
``num_attributes = max id + 1`` leaves unused slots.
"""
from typing import Dict, List, Tuple

# (id, name, supercategory)
CATEGORIES: Tuple[Tuple[int, str, str], ...] = (
    (0, "disc", "round"),
    (1, "square", "angular"),
    (2, "triangle", "angular"),
    (3, "ring", "round"),      # has a hole: only expressible as RLE
    (4, "cross", "angular"),
    (5, "pair", "paired"),     # two separate parts: a multi-part polygon
)

COLOURS: Dict[str, Tuple[int, Tuple[int, int, int]]] = {
    "red": (1, (220, 40, 40)),
    "green": (4, (40, 190, 60)),
    "blue": (9, (40, 70, 220)),
    "yellow": (16, (235, 215, 40)),
}
PATTERNS: Dict[str, int] = {"solid": 25, "striped": 36, "dotted": 49}
SIZES: Dict[str, int] = {"small": 64, "large": 81}


def coco_categories() -> List[dict]:
    return [{"id": cid, "name": name, "supercategory": sup, "level": 2}
            for cid, name, sup in CATEGORIES]


def coco_attributes() -> List[dict]:
    entries = [{"id": aid, "name": name, "supercategory": "colour", "level": 1}
               for name, (aid, _) in COLOURS.items()]
    entries += [{"id": aid, "name": name, "supercategory": "pattern", "level": 1}
                for name, aid in PATTERNS.items()]
    entries += [{"id": aid, "name": name, "supercategory": "size", "level": 1}
                for name, aid in SIZES.items()]
    return sorted(entries, key=lambda entry: entry["id"])
