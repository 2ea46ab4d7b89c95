"""The official Fashionpedia evaluator (``fashionpedia`` 1.1, ``fp_eval.FPEval``) as a test oracle.

It needs ``numpy.float``, removed from numpy 1.24+, so ``numpy.float = float`` is
set here. Its data module imports scikit-image and matplotlib for pictures only;
where those are not installed, empty stand-ins are registered so the evaluator
imports (evaluation never touches them). scikit-learn's ``f1_score`` is part of
its arithmetic and must be real: tests skip, saying so, when it is missing.
"""
import contextlib
import copy
import importlib.util
import io
import sys
import types

import numpy as np
import pytest

# Official table keys -> ours (group lines are named, not lettered).
GROUP_KEYS = {"APo": "AP_outerwear", "APa": "AP_accessory", "APp": "AP_part"}


def _register_stand_ins() -> None:
    for package, submodule in (("skimage", "io"), ("matplotlib", "pyplot")):
        if package in sys.modules or importlib.util.find_spec(package) is not None:
            continue
        parent = sys.modules.setdefault(package, types.ModuleType(package))
        child = sys.modules.setdefault(f"{package}.{submodule}", types.ModuleType(f"{package}.{submodule}"))
        setattr(parent, submodule, child)


def official_modules():
    """(fashionpedia.fp, fashionpedia.fp_eval), or skips the test with the reason."""
    pytest.importorskip("sklearn", reason="the official evaluator computes attribute F1 with scikit-learn")
    if importlib.util.find_spec("fashionpedia") is None:
        pytest.skip("the official evaluator (pip package fashionpedia==1.1, test extra) is not installed")
    np.float = float
    _register_stand_ins()
    from fashionpedia import fp, fp_eval
    return fp, fp_eval


def run_official(ground_truth: dict, results: list, iou_type: str, per_class: bool = False,
                 summarize: bool = True):
    """Runs FPEval on copies; returns the evaluator after evaluate() and accumulate(),
    then summarize() (unless told not to) and summarize_class() (if asked)."""
    fp, fp_eval = official_modules()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = fp.Fashionpedia()
        gt.dataset = copy.deepcopy(ground_truth)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))
        evaluator = fp_eval.FPEval(gt, dt, iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        if summarize:
            evaluator.summarize()
        if per_class:
            evaluator.summarize_class()
    return evaluator


def official_tables(evaluator) -> dict:
    """The official results as our {"iou_f1", "iou", "f1"} tables."""
    def renamed(table):
        return {GROUP_KEYS.get(key, key): value for key, value in table.items()}
    return {"iou_f1": renamed(evaluator.results), "iou": renamed(evaluator.resultDet),
            "f1": renamed(evaluator.resultF1)}
