"""Warm start from another checkpoint (COCO, ImageNet, an earlier run), by variable name.

Names are compared below the model's own scope (``model.variable_names``). Every
model variable lands in exactly one list of the plan, so nothing is dropped
silently: restored, skipped by the regex, absent from the checkpoint, or
present with another shape.
"""
import dataclasses
import re
from typing import Dict, List, Sequence, Tuple

import tensorflow as tf

from model.variable_names import below_model_scope


@dataclasses.dataclass
class WarmStartPlan:
    assignments: Dict[str, tf.Variable]  # checkpoint tensor name -> model variable
    skipped_by_regex: List[str]
    not_in_checkpoint: List[str]
    shape_mismatch: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]]  # name, model, checkpoint


def plan(variables: Sequence[tf.Variable], checkpoint: str, skip_regex: str = "") -> WarmStartPlan:
    """Matches model variables to the tensors of ``checkpoint`` (a prefix or a directory)."""
    reader = tf.train.load_checkpoint(checkpoint)
    available = {below_model_scope(name): (name, tuple(shape))
                 for name, shape in reader.get_variable_to_shape_map().items()}
    skip = re.compile(skip_regex) if skip_regex else None
    result = WarmStartPlan({}, [], [], [])
    for variable in variables:
        name = below_model_scope(variable.name)
        if skip is not None and skip.search(name):
            result.skipped_by_regex.append(name)
            continue
        found = available.get(name)
        if found is None:
            result.not_in_checkpoint.append(name)
        elif found[1] != tuple(variable.shape.as_list()):
            result.shape_mismatch.append((name, tuple(variable.shape.as_list()), found[1]))
        else:
            result.assignments[found[0]] = variable
    return result


def describe(result: WarmStartPlan, checkpoint: str) -> List[str]:
    """Human-readable lines: one summary line, then every variable not restored."""
    lines = [f"warm start from {checkpoint}: {len(result.assignments)} variables restored, "
             f"{len(result.skipped_by_regex)} skipped by --skip_variables_regex, "
             f"{len(result.not_in_checkpoint)} not in the checkpoint, "
             f"{len(result.shape_mismatch)} with another shape (all but the restored keep "
             "their initial values)"]
    lines += [f"  skipped by regex: {name}" for name in result.skipped_by_regex]
    lines += [f"  not in checkpoint: {name}" for name in result.not_in_checkpoint]
    lines += [f"  shape mismatch: {name} model {list(mine)} checkpoint {list(theirs)}"
              for name, mine, theirs in result.shape_mismatch]
    return lines


def log_plan(result: WarmStartPlan, checkpoint: str) -> None:
    for line in describe(result, checkpoint):
        tf.get_logger().warning(line)


def scaffold_fn(result: WarmStartPlan, checkpoint: str):
    """A TPUEstimator scaffold_fn that initialises the planned variables from the checkpoint."""

    def build_scaffold():
        if result.assignments:
            tf.compat.v1.train.init_from_checkpoint(checkpoint, result.assignments)
        return tf.compat.v1.train.Scaffold()

    return build_scaffold
