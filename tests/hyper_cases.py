"""Which hyperparameters each loss case has, which of them have a gradient, and the reference's
derivative w.r.t. them (central differences of the independent float64 reference in ``reference.py``)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import numpy as np
import reference
from cases import LOSSES, REFERENCE_DEFAULTS, Case

import focal

# every real hyperparameter of the public losses
HYPERPARAMETERS = ("alpha", "gamma", "epsilon", "beta", "k", "margin", "a", "b", "smooth", "gamma_pos", "gamma_neg",
                   "clip", "label_smoothing", "reduced_threshold", "pos_weight")
# those without a gradient: asking for one is a TypeError naming them
NOT_DIFFERENTIABLE = {"margin"}
# the valid range of each (a finite difference must stay inside it)
RANGES = {"alpha": (0.0, 1.0), "gamma": (0.0, np.inf), "beta": (-np.inf, np.inf), "k": (0.0, np.inf),
          "epsilon": (-np.inf, np.inf), "margin": (0.0, 1.0), "a": (0.0, np.inf), "b": (0.0, np.inf),
          "smooth": (0.0, np.inf), "gamma_pos": (0.0, np.inf), "gamma_neg": (0.0, np.inf), "clip": (0.0, 1.0),
          "label_smoothing": (0.0, 1.0), "reduced_threshold": (0.0, 1.0), "pos_weight": (0.0, np.inf)}
STEP = 1e-6


def hyperparameters(case: Case) -> dict[str, Any]:
    """The case's hyperparameters with their values (the function's default where the case sets none):
    numbers and per-class lists. Label smoothing only where the case sets it (an array of 0 would still
    take the dense-target path, which ``normalized=True`` refuses)."""
    signature = inspect.signature(case.fn).parameters
    out = {}
    for name in HYPERPARAMETERS:
        if name not in signature or (name == "label_smoothing" and name not in case.params):
            continue
        value = case.params.get(name, signature[name].default)
        if isinstance(value, bool) or value is None or value is focal.flsd53:
            continue
        if isinstance(value, (int, float, list)):
            out[name] = value
    return out


def is_vector(value: Any) -> bool:
    return isinstance(value, list)


def reference_value(case: Case, x: np.ndarray, t: np.ndarray, weight: Any, params: dict[str, Any]) -> float:
    """The reduced reference loss (summed for ``"none"``) with ``params`` replacing the case's."""
    changed = dataclasses.replace(case, params={**case.params, **params})
    ref = LOSSES[case.loss][1]
    accepted = inspect.signature(ref).parameters
    merged = {**REFERENCE_DEFAULTS.get(case.loss, {}), **changed.params}
    merged = {k: v for k, v in merged.items() if k in accepted}
    if merged.get("gamma") is focal.flsd53:
        merged["gamma"] = "flsd53"
    reduction = "sum" if case.reduction == "none" else case.reduction
    return float(np.sum(reference.reduce(ref(x, t, **merged), reduction, weight=weight, normalizer=case.normalizer,
                                         count=case.count(t))))


def reference_gradient(case: Case, name: str, x: np.ndarray, t: np.ndarray, weight: Any) -> np.ndarray:
    """``d loss / d name`` (one entry per class for a vector) by central differences of the reference, or the
    one-sided three-point formula at the end of the parameter's range."""
    value = hyperparameters(case)[name]
    low, high = RANGES[name]
    entries = np.asarray(value, dtype=np.float64)
    grad = np.zeros(entries.shape)
    for index in np.ndindex(entries.shape):
        def at(shift: float) -> float:
            bumped = entries.copy()
            bumped[index] += shift
            v = bumped.tolist() if is_vector(value) else float(bumped)
            return reference_value(case, x, t, weight, {name: v})

        here = entries[index]
        if here - STEP < low:
            grad[index] = (-3 * at(0.0) + 4 * at(STEP) - at(2 * STEP)) / (2 * STEP)
        elif here + STEP > high:
            grad[index] = (3 * at(0.0) - 4 * at(-STEP) + at(-2 * STEP)) / (2 * STEP)
        else:
            grad[index] = (at(STEP) - at(-STEP)) / (2 * STEP)
    return grad
