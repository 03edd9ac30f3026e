"""A fuzz run: random entry points, shapes, dtypes and parameters, valid and not, on every library.

Each case is drawn from its own seed, run first on NumPy and then on every other library installed.
An outcome is a result or an exception. The run fails on a crash (an exception other than the
documented ``TypeError``/``ValueError``, or one whose message does not name an argument), and on a
disagreement: another library raising something else, or its loss or gradient differing from NumPy's.

``tests/test_fuzz.py`` runs a bounded number of cases in CI; for a longer run::

    python tests/fuzz.py --cases 5000 [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import inspect
import sys
import time
from typing import Any

import numpy as np
from bad_inputs import FAMILIES
from libs import LIBS

import focal

ENTRIES = [(fn, fixed, family) for family, members in FAMILIES.items() for fn, fixed in members]
RTOL = {"float64": 1e-9, "float32": 1e-4, "float16": 2e-2}
# parameters every entry point may be given, and what a wrong one must be named by
NAMES = ("logits", "targets", "weight", "normalizer", "reduction")


BAD_RATE = 0.05  # each choice is a bad one this often: about a third of the cases hold one


def _choice(rng: np.random.Generator, options: list[Any], bad: list[Any] | tuple = ()) -> Any:
    """One of ``options``, or (at ``BAD_RATE``) one of the ``bad`` ones."""
    pool = bad if bad and rng.random() < BAD_RATE else options
    return pool[int(rng.integers(len(pool)))]


def _param(rng: np.random.Generator, name: str, classes: int) -> Any:
    """A value for a keyword parameter: (valid values, bad values) by name."""
    table: dict[str, tuple[list[Any], list[Any]]] = {
        "gamma": ([0.0, 0.5, 2.0, 5.0, list(rng.uniform(0, 3, classes))], [-1.0, float("nan"), [2.0] * (classes + 1)]),
        "alpha": ([None, 0.25, 1.0, list(rng.uniform(0, 2, classes))], [1.5, [-0.5] * classes]),
        "label_smoothing": ([0.0, 0.1], [1.0]),
        "ignore_index": ([None, -100, 0], [0.5]),
        "margin": ([0.5, 0.9], [1.5]), "k": ([1.0, 2.0], [-1.0]), "beta": ([2.0, 0.5], [-1.0]),
        "gamma_pos": ([0.0, 1.0], [-1.0]), "gamma_neg": ([4.0, 0.5], [-2.0]), "clip": ([0.05, 0.0], [1.0]),
        "epsilon": ([1.0, -1.0, 2.0], []), "a": ([0.7, 0.0], [-1.0]), "b": ([0.3, 2.0], []),
        "smooth": ([1.0, 0.0], [-1.0]), "form": (["pt", "split"], ["logit"]), "normalized": ([False, True], []),
        "reduced_threshold": ([None, 0.5], [1.5]),
    }
    return _choice(rng, *table[name]) if name in table else None


def draw_case(seed: int) -> dict[str, Any]:
    """One call: the entry point, NumPy inputs, the dtype and the keyword arguments."""
    rng = np.random.default_rng(seed)
    fn, fixed, family = _choice(rng, ENTRIES)
    dtype = _choice(rng, ["float64", "float32", "float16"])
    rows, classes = _choice(rng, [0, 3]), _choice(rng, [2, 4])  # few shapes: JAX compiles each op per shape
    extra = _choice(rng, [(), (2,)])  # a spatial axis after the class axis
    shape = (rows, classes, *extra)
    x = rng.normal(size=shape) * _choice(rng, [1.0, 10.0, 100.0])
    row_shape = (rows, *extra)
    kwargs: dict[str, Any] = dict(fixed)
    params = inspect.signature(fn).parameters
    if "axis" in params:
        kwargs["axis"] = _choice(rng, [1], [3])
    if family == "sigmoid":
        kind = _choice(rng, ["hard", "soft"], ["outside", "int", "shape"])
        t = {"hard": lambda: (rng.random(shape) > 0.6).astype(np.float64), "soft": lambda: rng.random(shape),
             "outside": lambda: rng.random(shape) * 1.4 - 0.2, "int": lambda: rng.integers(0, 2, shape),
             "shape": lambda: rng.random((rows, classes + 1, *extra))}[kind]()
    elif family == "softmax":
        kind = _choice(rng, ["labels", "ignored", "onehot"], ["outside", "float-labels"])
        labels = rng.integers(0, classes, row_shape)
        t = {"labels": labels, "ignored": np.where(rng.random(row_shape) > 0.5, labels, -100),
             "outside": labels + rng.integers(0, 2, row_shape) * classes,
             "onehot": np.moveaxis(np.eye(classes)[labels], -1, 1), "float-labels": labels.astype(np.float64)}[kind]
        if kind == "ignored":
            kwargs["ignore_index"] = -100
    else:
        t = _choice(rng, [rng.uniform(0.0, classes - 1.0, row_shape)], [rng.uniform(-0.3, classes - 0.7, row_shape)])
    for name in params:
        if name in ("logits", "targets", "axis", "activation") or name in kwargs:
            continue
        if rng.random() < 0.3:
            value = _param(rng, name, classes)
            if value is not None:
                kwargs[name] = value
    kwargs["reduction"] = _choice(rng, ["mean", "sum", "none"], ["avg"])
    if "normalizer" in params and rng.random() < 0.2:
        kwargs["normalizer"] = _choice(rng, [3.0, "array"], [-1.0])
    if rng.random() < 0.2:
        kwargs["weight"] = _choice(rng, [2.0, "array"], ["bad-array"])
    if rng.random() < 0.15:  # probabilities instead of logits, or (bad) logits marked as probabilities
        kwargs["from_logits"] = False
        x = _choice(rng, [1.0 / (1.0 + np.exp(-x))], [x])
    return {"fn": fn, "x": x, "t": t, "dtype": dtype, "kwargs": kwargs, "seed": seed}


def _on(lib, case: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    x = lib.array(case["x"], case["dtype"])
    t = case["t"]
    targets = lib.array(t) if t.dtype.kind in "iub" else lib.array(t, case["dtype"])
    kwargs = dict(case["kwargs"])
    if kwargs.get("normalizer") == "array":
        kwargs["normalizer"] = lib.array(np.array(2.5), case["dtype"])
    if isinstance(kwargs.get("weight"), str):
        loss_shape = case["fn"](case["x"], case["t"], **{**case["kwargs"], "reduction": "none", "weight": None,
                                                         "normalizer": None}).shape if kwargs["weight"] == "array" \
            else (7,)
        kwargs["weight"] = lib.array(np.linspace(0.5, 2.0, int(np.prod(loss_shape))).reshape(loss_shape),
                                     case["dtype"])
    return x, targets, kwargs


def run(lib, case: dict[str, Any]) -> tuple[str, Any]:
    """("ok", (value, grad)) or ("error", (type, message)); a crash raises."""
    try:
        x, targets, kwargs = _on(lib, case)
    except (TypeError, ValueError) as err:  # the weight's shape could not be found: the call is bad anyway
        return "error", (type(err), str(err))
    try:
        value, grad = focal.value_and_grad(case["fn"])(x, targets, **kwargs)
    except (TypeError, ValueError) as err:
        message = str(err)
        named = [n for n in (*NAMES, *kwargs) if n in message]
        assert named, f"an error that names no argument: {type(err).__name__}: {message}"
        return "error", (type(err), message)
    return "ok", (lib.numpy(value), lib.numpy(grad))


def check(case: dict[str, Any], stats: collections.Counter) -> None:
    reference = None
    for lib in LIBS:
        if case["dtype"] == "float16" and "float16" not in lib.half_dtypes:
            continue
        outcome, result = run(lib, case)
        stats[f"{lib.id} {outcome}"] += 1
        if reference is None:
            reference = (lib.id, outcome, result)
            stats[f"cases {outcome}"] += 1
            if outcome == "error":
                stats[f"error {result[0].__name__}"] += 1
            continue
        ref_id, ref_outcome, ref_result = reference
        where = f"seed {case['seed']}: {lib.id} vs {ref_id}"
        assert outcome == ref_outcome, f"{where}: {outcome} {result} vs {ref_outcome} {ref_result}"
        if outcome == "error":
            assert result[0] is ref_result[0], f"{where}: {result} vs {ref_result}"
            continue
        compute = np.finfo("float32" if case["dtype"] == "float16" else case["dtype"])
        loss_scale = float(np.max(np.abs(ref_result[0][np.isfinite(ref_result[0])]), initial=0.0))
        # absolute tolerances below which a difference is rounding, not disagreement: XLA on CPU flushes
        # subnormals to zero (a flushed probability times a large factor: tiny^0.75, 1e-29 in float32),
        # and a softmax gradient p (g − Σ p g) cancels terms of about the loss's size (10 eps |loss|)
        floors = (float(compute.tiny) ** 0.75, max(float(compute.tiny) ** 0.75, 10 * float(compute.eps) * loss_scale))
        for got, expected, what, floor in zip(result, ref_result, ("loss", "gradient"), floors):
            assert np.array_equal(np.isnan(got), np.isnan(expected)), f"{where}: NaN in the {what} differ"
            finite = np.isfinite(expected)
            assert np.array_equal(np.isfinite(got), finite), f"{where}: inf in the {what} differ"
            got, expected = got[finite], expected[finite]
            scale = float(np.max(np.abs(expected), initial=0.0))
            rtol = RTOL[case["dtype"]]
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=max(floor, rtol * scale),
                                       err_msg=f"{where}: {what}")


def fuzz(cases: int, seed: int = 0, seconds: float = float("inf")) -> collections.Counter:
    stats: collections.Counter = collections.Counter()
    start = time.perf_counter()
    for i in range(cases):
        if time.perf_counter() - start > seconds:
            break
        check(draw_case(seed * 1_000_003 + i), stats)
        stats["cases"] += 1
    stats["seconds"] = round(time.perf_counter() - start)
    return stats


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = fuzz(args.cases, args.seed)
    for key, count in sorted(result.items()):
        sys.stdout.write(f"{key:40s} {count}\n")
