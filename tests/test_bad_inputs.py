"""Each bad input of docs/bad-input.md on each entry point it applies to: the documented error eagerly
on every library, and under ``jax.jit`` / ``tf.function`` the same error or NaN exactly where documented; and NaN
where documented eagerly on every library where nothing is read back (as on an accelerator:
``focal.set_value_checks("nan")``), in the loss and in the analytic gradient."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
from bad_inputs import CASES, CLEAN_TARGETS, ELEMENT, LABELS, OTHER, Case, X, table
from helpers import import_or_skip
from libs import LIBS

import focal

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"


def _is(value, marker: str) -> bool:
    return isinstance(value, str) and value == marker


def _runs(traced: bool) -> list[tuple[Case, object, dict, object]]:
    out = []
    for case in CASES:
        if traced and case.libraries:
            continue
        for n, (fn, fixed) in enumerate(case.entries()):
            for lib in LIBS:
                # traced: every entry point under jax.jit, and under tf.function each case's first one
                if traced and not (lib.name == "jax" or lib.name == "tensorflow" and n == 0):
                    continue
                if case.libraries and lib.name not in case.libraries:
                    continue
                if _is(case.args.get("targets"), "other-library") and lib.name == "array_api_strict":
                    continue  # array_api_strict's targets are the other library for every other one
                name = f"{case.what}-{fn.__name__}{'-softmax' if fixed else ''}-{lib.id}"
                out.append(pytest.param(case, fn, fixed, lib, id=name))
    return out


def _array(lib, value):
    """The case's value as ``lib`` gets it: NumPy data become its arrays."""
    return lib.array(value) if isinstance(value, np.ndarray) else value


def _call_args(case: Case, fn, fixed: dict, lib) -> tuple[object, object, dict]:
    family = case.family_of(fn, fixed)
    args = {"logits": X, "targets": CLEAN_TARGETS[family], **fixed, **case.args}
    logits = _array(lib, args.pop("logits"))
    targets = args.pop("targets")
    if _is(targets, "other-library"):
        import array_api_strict

        targets = array_api_strict.asarray(CLEAN_TARGETS[family])
    elif _is(targets, "other-device"):
        targets = lib.array(CLEAN_TARGETS[family]).to("meta")
    else:
        targets = _array(lib, targets)
    return logits, targets, {k: _array(lib, v) for k, v in args.items()}


def _message(case: Case) -> str:
    return ".*".join(re.escape(s) for s in case.says)


@pytest.mark.parametrize("case,fn,fixed,lib", _runs(traced=False))
def test_eagerly_a_clear_error(case, fn, fixed, lib):
    logits, targets, params = _call_args(case, fn, fixed, lib)
    with pytest.raises(case.error, match=_message(case)):
        fn(logits, targets, **params)


def _affected(case: Case, fn, fixed: dict, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    dense = case.args.get("targets")
    if fn is focal.focal_tversky_loss and isinstance(dense, np.ndarray) and dense.shape == X.shape:
        mask[((dense < 0) | (dense > 1)).any(axis=0)] = True  # one loss per class: those classes
    elif case.affects == "used" and fn is focal.varifocal_loss:  # its alpha and gamma weigh the negatives only
        mask[CLEAN_TARGETS["sigmoid"] == 0.0] = True
    elif case.affects in ("all", "used") or fn is focal.focal_tversky_loss:  # one loss per class, summed over the batch
        mask[...] = True
    elif case.affects.startswith("class "):  # where that class's parameter is used
        k = int(case.affects.split()[1])
        if case.family_of(fn, fixed) == "sigmoid":
            mask[:, k] = True
        else:
            mask[LABELS == k] = True
    else:
        mask[ELEMENT[case.family_of(fn, fixed)]] = True
    return mask


@pytest.mark.parametrize("case,fn,fixed,lib", _runs(traced=True))
def test_traced_the_same_error_or_nan_where_documented(case, fn, fixed, lib):
    logits, targets, params = _call_args(case, fn, fixed, lib)
    arrays = {k: v for k, v in params.items() if lib.is_native(v)}
    static = {k: v for k, v in params.items() if k not in arrays}
    if case.traced == "error":
        foreign = targets  # a NumPy array passed to a jitted function would become the function's own
        with pytest.raises(case.error, match=_message(case)):
            lib.compile(lambda x, a: fn(x, foreign, **static, **a))(logits, arrays)
        return
    if "normalizer" not in params:
        static.setdefault("reduction", "none")
    loss = lib.numpy(lib.compile(lambda x, t, a: fn(x, t, **static, **a))(logits, targets, arrays))
    expected = _affected(case, fn, fixed, loss.shape)
    assert np.array_equal(np.isnan(loss), expected), loss
    if lib.name == "jax":  # and the gradient, by the framework's autodiff of the summed loss
        jax = lib.jax
        grad = np.asarray(jax.jit(jax.grad(lambda x, t, a: lib.jnp.sum(fn(x, t, **static, **a))))(
            logits, targets, arrays))
        _assert_nan_rows(grad, expected)


def _assert_nan_rows(grad: np.ndarray, expected: np.ndarray) -> None:
    """The gradient's rows NaN where a row of the loss is (every row where the loss is one for the whole batch)."""
    rows = np.isnan(grad).reshape(grad.shape[0], -1).any(axis=1)
    if expected.shape[:1] == grad.shape[:1]:
        nan_rows = expected.reshape(expected.shape[0], -1).any(axis=1)
    else:  # a loss summed over the batch: every row's gradient takes part
        nan_rows = np.full(grad.shape[0], expected.any())
    assert np.array_equal(rows, nan_rows), grad


def _nan_runs() -> list:
    """The cases that are NaN where traced; but NumPy's 0-d arrays, which are numbers (read, at no cost)."""
    def number(case: Case, lib) -> bool:
        return lib.name == "numpy" and any(isinstance(v, np.ndarray) and v.ndim == 0 for v in case.args.values())

    return [run for run in _runs(traced=False) if run.values[0].traced == "nan" and not number(*run.values[::3])]


@pytest.mark.parametrize("case,fn,fixed,lib", _nan_runs())
def test_where_nothing_is_read_nan_where_documented(case, fn, fixed, lib):
    """What a GPU call does by default (it reads nothing back), eagerly on every library: the loss NaN exactly in
    the affected elements, and the gradient (``focal.value_and_grad``, the kernels' own) NaN in their rows."""
    logits, targets, params = _call_args(case, fn, fixed, lib)
    if "normalizer" not in params:
        params.setdefault("reduction", "none")
    with focal.set_value_checks("nan"):
        loss = lib.numpy(fn(logits, targets, **params))
        params = {**params, "reduction": "sum"} if params.get("reduction") == "none" else params
        _, grad = focal.value_and_grad(fn)(logits, targets, **params)
    expected = _affected(case, fn, fixed, loss.shape)
    assert np.array_equal(np.isnan(loss), expected), loss
    _assert_nan_rows(lib.numpy(grad), expected)


@pytest.mark.parametrize("entry,what,error,says,call", OTHER, ids=[f"{o[0]}-{o[1]}" for o in OTHER])
def test_the_other_entry_points(entry, what, error, says, call):
    if "torch" in entry:
        import_or_skip("torch")
    if "keras" in entry:
        import_or_skip("keras")
    with pytest.raises(error, match=".*".join(re.escape(s) for s in says)):
        call()


def test_the_docs_table_is_the_cases():
    text = DOC.read_text()
    assert table() in text, "regenerate the table: python tests/bad_inputs.py"
