"""Reference checkpoint variable -> this package's model variable, for a whole model.

The reference names are split by stage: backbone and multilevel features
(``backbone_names.map_backbone``) and the heads (``head_names.map_heads``). Each stage
pairs its variables explicitly and reports what it could not pair; here the two are
joined and any leftover on either side is an error that names the variables, so an
import never fills a variable by guess or leaves one at its initial value.

Training-only tensors are dropped knowingly before pairing: ``global_step``, optimizer
slots (``.../Momentum``, Adam's ``m``/``v``) and exponential moving averages.
"""
import re
from typing import Dict, List, Mapping, Sequence, Tuple

from model.checkpoint_import.backbone_names import map_backbone
from model.checkpoint_import.head_names import (OUR_SCOPES, REFERENCE_SCOPES, is_head_variable,
                                                map_heads)
from model.config.schema import ModelConfig

Shape = Tuple[int, ...]

_TRAINING_ONLY = re.compile(
    r"(^global_step$|/Momentum$|/Adam(_1)?$|/ExponentialMovingAverage$|/RMSProp(_1)?$|^beta[12]_power)")


class UnmatchedVariables(ValueError):
    """Variables on either side that no pairing covers, or pairs whose shapes differ."""

    def __init__(self, ours: Sequence[str], theirs: Sequence[str],
                 shape_mismatches: Sequence[Tuple[str, str, Shape, Shape]] = ()):
        self.ours, self.theirs, self.shape_mismatches = list(ours), list(theirs), list(shape_mismatches)
        parts = []
        if shape_mismatches:
            parts.append(f"{len(shape_mismatches)} with other shapes ("
                         + ", ".join(f"{o} {list(a)} vs {t} {list(b)}"
                                     for o, t, a, b in shape_mismatches[:4]) + ")")
        if theirs:
            parts.append(f"{len(theirs)} checkpoint variables without a model variable ("
                         + _some(theirs) + ")")
        if ours:
            parts.append(f"{len(ours)} model variables without a checkpoint variable ("
                         + _some(ours) + ")")
        super().__init__("; ".join(parts))


def _some(names: Sequence[str], count: int = 4) -> str:
    shown = ", ".join(names[:count])
    return shown + (f", and {len(names) - count} more" if len(names) > count else "")


def trainable_state(reference: Mapping[str, Shape]) -> Dict[str, Shape]:
    """The checkpoint's model tensors: training-only ones (step, slots, EMA) dropped."""
    return {name: shape for name, shape in reference.items() if not _TRAINING_ONLY.search(name)}


def map_model(reference: Mapping[str, Shape], ours: Sequence[Tuple[str, Shape]],
              config: ModelConfig) -> Dict[str, str]:
    """{our variable name (below the model scope): reference tensor name}, covering both
    sides completely with equal shapes; raises UnmatchedVariables otherwise."""
    reference = trainable_state(reference)
    reference_heads = {n: s for n, s in reference.items() if is_head_variable(n, REFERENCE_SCOPES)}
    reference_backbone = {n: s for n, s in reference.items() if n not in reference_heads}
    our_heads = [(n, s) for n, s in ours if is_head_variable(n, OUR_SCOPES)]
    our_backbone = [(n, s) for n, s in ours if not is_head_variable(n, OUR_SCOPES)]

    pairs: Dict[str, str] = {}
    unmatched_ours: List[str] = []
    unmatched_theirs: List[str] = []
    for stage, theirs, mine in ((map_backbone, reference_backbone, our_backbone),
                                (map_heads, reference_heads, our_heads)):
        stage_pairs, stage_ours, stage_theirs = stage(theirs, mine, config)
        pairs.update(stage_pairs)
        unmatched_ours += stage_ours
        unmatched_theirs += stage_theirs
    our_shapes = dict(ours)
    used = {}
    mismatches = []
    for mine, theirs in pairs.items():
        if theirs in used:
            unmatched_theirs.append(f"{theirs} (paired twice: {used[theirs]}, {mine})")
        used[theirs] = mine
        if tuple(our_shapes[mine]) != tuple(reference[theirs]):
            mismatches.append((mine, theirs, tuple(our_shapes[mine]), tuple(reference[theirs])))
    unmatched_ours += [n for n in our_shapes if n not in pairs and n not in unmatched_ours]
    unmatched_theirs += [n for n in reference if n not in used and n not in unmatched_theirs]
    if unmatched_ours or unmatched_theirs or mismatches:
        raise UnmatchedVariables(sorted(set(unmatched_ours)), sorted(set(unmatched_theirs)),
                                 mismatches)
    return pairs

