"""PyTorch's fused path (the kernel compiled by torch.compile, for large inputs): the same values and
gradients as the eager kernel, and a clean fallback where compiling fails."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import CROSS_RTOL, assert_close, record_fused_runs, require_installed, run_command

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
    ("softmax smoothed labels", focal.softmax_focal_loss, LABELS,
     {"gamma": 2.0, "axis": 1, "ignore_index": -100, "label_smoothing": 0.1}),
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
    calls = record_fused_runs(monkeypatch)
    fast = _value_and_grad(fn, x, t, params, reduction)
    # every path went through the compiled kernel: the forward that stores the gradient, and the loss alone without
    # a gradient
    expected = ["forward", "value"]
    assert calls == expected, calls
    for got, want, what in zip(fast, eager, ("value", "grad", "value without grad")):
        assert_close(got, want, CROSS_RTOL[dtype], f"{name} {what}")


def test_the_first_calls_take_the_plain_path_and_later_ones_the_compiled_kernel(monkeypatch):
    """Compiling costs seconds: a process compiles only once it has made ``COMPILE_AFTER`` large calls; small
    inputs do not count towards them."""
    calls = record_fused_runs(monkeypatch, min_elements=LOGITS.size, compile_after=3)
    monkeypatch.setattr(fused, "_plain_calls", 0)
    x, t = torch.as_tensor(LOGITS), torch.as_tensor(BINARY)
    small = torch.as_tensor(LOGITS[:2]), torch.as_tensor(BINARY[:2])
    plain = [_value_and_grad(focal.sigmoid_focal_loss, *small, {}, "sum")]
    plain += [_value_and_grad(focal.sigmoid_focal_loss, x, t, {}, "sum")]  # two large calls: with and without grad
    assert calls == [] and fused._plain_calls == 2
    compiled = _value_and_grad(focal.sigmoid_focal_loss, x, t, {}, "sum")  # the third takes the plain path, then...
    assert calls == ["value"] and fused._plain_calls == 3  # ...the no-grad call after it the compiled kernel
    for got, want in zip(compiled, plain[1]):
        assert_close(got, want, CROSS_RTOL["float64"], "plain against compiled")


def test_a_failing_compiler_warns_once_and_runs_eagerly(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(fused, "_enabled", True)
    monkeypatch.setattr(fused, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(fused, "COMPILE_AFTER", 0)
    monkeypatch.setattr(fused, "_compiled", {})
    monkeypatch.setattr(fused, "COMPILE", lambda fn: broken)
    x, t = torch.as_tensor(LOGITS), torch.as_tensor(BINARY)
    with pytest.warns(RuntimeWarning, match="torch.compile of the loss kernel failed.*no C\\+\\+ compiler"):
        value = focal.sigmoid_focal_loss(x, t)
    assert fused._enabled is False
    expected = focal.value_and_grad(focal.sigmoid_focal_loss)(LOGITS, BINARY)[0]
    assert_close(value.numpy(), expected, 1e-12, "eager after the failure")


TF_FIRST = """
import warnings
import numpy as np, tensorflow, torch, focal
from focal.backends import _torch_fused
_torch_fused.COMPILE_AFTER = 0  # the first call would compile
rng = np.random.default_rng(0)
x, y = rng.normal(size=(1000, 80)) * 3, (rng.random((1000, 80)) < 0.05) * 1.0
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    leaf = torch.tensor(x, requires_grad=True)
    loss = focal.sigmoid_focal_loss(leaf, torch.tensor(y))   # 80000 elements: the fused path's size
    loss.backward()
print(sum("would crash this process" in str(w.message) for w in caught), "triton" in __import__("sys").modules,
      repr(float(loss)), repr(float(leaf.grad.abs().sum())))
"""


def test_tensorflow_imported_first_runs_eagerly_instead_of_crashing():
    """TensorFlow 2.20+ then triton (which torch.compile imports) is a segmentation fault: the fused path sees it
    coming, warns and runs the same kernel eagerly; the numbers are the paper's formula's."""
    require_installed("tensorflow", "triton")
    warned, triton_loaded, value, grad_l1 = run_command(["-c", TF_FIRST]).stdout.split()
    assert (warned, triton_loaded) == ("1", "False")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(1000, 80)) * 3, (rng.random((1000, 80)) < 0.05) * 1.0
    p = 1 / (1 + np.exp(-x))
    p_t, alpha_t = np.where(y == 1, p, 1 - p), np.where(y == 1, 0.25, 0.75)
    expected = -alpha_t * (1 - p_t) ** 2 * np.log(p_t)
    # d/dx: alpha_t (1 - p_t)^2 (2 p_t log p_t - (1 - p_t)) times d p_t/dx = ±p(1 - p), over the mean's count
    grad = alpha_t * (1 - p_t) ** 2 * (2 * p_t * np.log(p_t) - (1 - p_t)) * np.where(y == 1, 1.0, -1.0) / x.size
    assert float(value) == pytest.approx(expected.mean(), rel=1e-12)
    assert float(grad_l1) == pytest.approx(np.abs(grad).sum(), rel=1e-10)


def test_without_a_compiler_the_plain_path_runs(monkeypatch):
    """``TORCHDYNAMO_DISABLE=1`` makes torch.compile a no-op: the plain path, not the fused kernel run eagerly."""
    calls = record_fused_runs(monkeypatch)
    x, t = torch.as_tensor(LOGITS).requires_grad_(True), torch.as_tensor(BINARY)
    monkeypatch.setenv("TORCHDYNAMO_DISABLE", "1")
    value = focal.sigmoid_focal_loss(x, t)
    value.backward()
    assert calls == []
    expected, grad = focal.value_and_grad(focal.sigmoid_focal_loss)(LOGITS, BINARY)
    assert_close(value.detach().numpy(), expected, 1e-12, "value")
    assert_close(x.grad.numpy(), grad, 1e-12, "gradient")
    monkeypatch.delenv("TORCHDYNAMO_DISABLE")
    focal.sigmoid_focal_loss(x, t)
    assert calls == ["forward"]  # x requires a gradient
