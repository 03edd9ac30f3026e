"""PyTorch's fused path (the kernel compiled by torch.compile, for large inputs): the same values and
gradients as the eager kernel, and a clean fallback where compiling fails."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import CROSS_RTOL, assert_close

import focal

torch = pytest.importorskip("torch")
from focal.backends import _torch_fused as fused  # noqa: E402

RNG = np.random.default_rng(5)
LOGITS = RNG.normal(size=(64, 6, 5)) * 4  # (N, C, d)
LABELS = RNG.integers(0, 6, size=(64, 5))
LABELS[0, :2] = -100
BINARY = (RNG.random((64, 6, 5)) < 0.2).astype(np.float64)
CASES = [
    ("sigmoid gamma=2", focal.sigmoid_focal_loss, BINARY, {"alpha": 0.25, "gamma": 2.0}),
    ("sigmoid gamma=0.5 split", focal.sigmoid_focal_loss, BINARY, {"gamma": 0.5, "form": "split"}),
    ("softmax labels", focal.softmax_focal_loss, LABELS, {"gamma": 2.0, "axis": 1, "ignore_index": -100}),
    ("focal tversky", focal.focal_tversky_loss, LABELS, {"axis": 1, "ignore_index": -100}),
]


def _value_and_grad(fn, x, t, params, reduction):
    leaf = x.detach().requires_grad_(True)
    value = fn(leaf, t, reduction=reduction, **params)
    (grad,) = torch.autograd.grad(value.sum(), leaf)
    with torch.no_grad():
        no_grad_value = fn(x, t, reduction=reduction, **params)
    return value.detach().numpy(), grad.numpy(), no_grad_value.numpy()


# every case in float32; float64 for the first (each case compiles two kernels, seconds each)
DTYPE_CASES = [(*case, "float32") for case in CASES] + [(*CASES[0], "float64")]


@pytest.mark.parametrize("name,fn,targets,params,dtype", DTYPE_CASES, ids=[f"{c[0]}-{c[4]}" for c in DTYPE_CASES])
def test_fused_equals_eager(monkeypatch, name, fn, targets, params, dtype):
    x = torch.as_tensor(LOGITS.astype(dtype))
    t = torch.as_tensor(targets.astype(dtype) if targets.dtype == np.float64 else targets)
    reduction = "none" if name == "focal tversky" else "mean"
    monkeypatch.setattr(fused, "_enabled", False)
    eager = _value_and_grad(fn, x, t, params, reduction)
    monkeypatch.setattr(fused, "_enabled", True)
    monkeypatch.setattr(fused, "MIN_ELEMENTS", 0)
    calls = []
    real_run = fused.run
    monkeypatch.setattr(fused, "run", lambda *a: calls.append(a[0]) or real_run(*a))
    fast = _value_and_grad(fn, x, t, params, reduction)
    assert calls == ["value", "backward", "value"], calls  # every path went through the compiled kernel
    for got, want, what in zip(fast, eager, ("value", "grad", "value without grad")):
        assert_close(got, want, CROSS_RTOL[dtype], f"{name} {what}")


def test_a_failing_compiler_warns_once_and_runs_eagerly(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(fused, "_enabled", True)
    monkeypatch.setattr(fused, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(fused, "_compiled", {})
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: broken)
    x, t = torch.as_tensor(LOGITS), torch.as_tensor(BINARY)
    with pytest.warns(RuntimeWarning, match="torch.compile of the loss kernel failed.*no C\\+\\+ compiler"):
        value = focal.sigmoid_focal_loss(x, t)
    assert fused._enabled is False
    expected = focal.value_and_grad(focal.sigmoid_focal_loss)(LOGITS, BINARY)[0]
    assert_close(value.numpy(), expected, 1e-12, "eager after the failure")
