"""Which categories are judged on attributes, and the category groups reported apart.

The official Fashionpedia evaluator hard-codes both for the 46-category taxonomy
(ids 0..45): 18 categories carry attributes (the rest are judged on IoU alone)
and three groups, outerwear 0..12, accessory 13..26 and part 27..45. It applies
the attribute list to category *ids* when matching, but to category *positions*
(index in the sorted id list) when averaging, and the groups to positions too;
the two agree only when the ids are exactly 0..45.

Modes:
  official: exactly that, for any ground truth.
  corrected: ids everywhere. On the Fashionpedia taxonomy the official lists;
    on any other taxonomy the categories with attributes are those for which at
    least one ground-truth instance carries attributes, and the groups are the
    categories' ``supercategory`` names.
"""
import dataclasses
from typing import Tuple

import numpy as np

from model.evaluation.ground_truth import GroundTruth

OFFICIAL, CORRECTED = "official", "corrected"
MODES = (OFFICIAL, CORRECTED)

FASHIONPEDIA_ATTRIBUTE_CATEGORIES = frozenset(
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 28, 29, 31, 32, 33))
FASHIONPEDIA_GROUPS = (("outerwear", range(0, 13)), ("accessory", range(13, 27)), ("part", range(27, 46)))
FASHIONPEDIA_CATEGORY_IDS = tuple(range(46))


@dataclasses.dataclass(frozen=True)
class CategoryGroup:
    name: str
    members: np.ndarray          # int[...], positions into the sorted category ids
    in_attribute_tables: bool    # reported in the IoU+F1 and F1-only tables


@dataclasses.dataclass(frozen=True)
class CategoryRoles:
    """Per category (aligned with ``GroundTruth.category_ids``):

    match_with_attributes: bool[K], matching needs attribute F1 as well as IoU.
    average_with_attributes: bool[K], averages sweep the F1 thresholds.
    groups: the category groups, in report order.
    """
    match_with_attributes: np.ndarray
    average_with_attributes: np.ndarray
    groups: Tuple[CategoryGroup, ...]


def is_fashionpedia_taxonomy(ground_truth: GroundTruth) -> bool:
    return tuple(ground_truth.category_ids.tolist()) == FASHIONPEDIA_CATEGORY_IDS


def _official_roles(ground_truth: GroundTruth) -> CategoryRoles:
    ids = ground_truth.category_ids
    positions = np.arange(len(ids))
    groups = tuple(
        CategoryGroup(name, positions[np.isin(positions, list(members))], in_attribute_tables=name != "accessory")
        for name, members in FASHIONPEDIA_GROUPS)
    return CategoryRoles(
        match_with_attributes=np.isin(ids, list(FASHIONPEDIA_ATTRIBUTE_CATEGORIES)),
        average_with_attributes=np.isin(positions, list(FASHIONPEDIA_ATTRIBUTE_CATEGORIES)),
        groups=groups)


def _categories_with_attributes_in_data(ground_truth: GroundTruth) -> np.ndarray:
    carrying = {a["category_id"] for a in ground_truth.annotations if a["attribute_ids"]}
    return np.isin(ground_truth.category_ids, list(carrying))


def _corrected_roles(ground_truth: GroundTruth) -> CategoryRoles:
    ids = ground_truth.category_ids
    if is_fashionpedia_taxonomy(ground_truth):
        with_attributes = np.isin(ids, list(FASHIONPEDIA_ATTRIBUTE_CATEGORIES))
        named_members = [(name, np.flatnonzero(np.isin(ids, list(members))))
                         for name, members in FASHIONPEDIA_GROUPS]
    else:
        with_attributes = _categories_with_attributes_in_data(ground_truth)
        supercategories = [ground_truth.category_supercategories[int(i)] for i in ids]
        names = [n for n in dict.fromkeys(supercategories) if n]
        named_members = [(name, np.flatnonzero([s == name for s in supercategories])) for name in names]
    groups = tuple(CategoryGroup(name, members, in_attribute_tables=bool(with_attributes[members].any()))
                   for name, members in named_members)
    return CategoryRoles(with_attributes, with_attributes, groups)


def category_roles(ground_truth: GroundTruth, mode: str) -> CategoryRoles:
    if mode == OFFICIAL:
        return _official_roles(ground_truth)
    if mode == CORRECTED:
        return _corrected_roles(ground_truth)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
