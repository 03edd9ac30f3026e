"""float16 and bfloat16: computed in float32, returned in the input dtype, close to the float32 result."""

from __future__ import annotations

import numpy as np
import pytest
from bad_inputs import FAMILIES
from helpers import REFERENCE_RTOL, assert_close, import_or_skip
from libs import LIBS

import focal

HALF = [(lib, d) for lib in LIBS for d in lib.half_dtypes]


@pytest.mark.parametrize("kind", ["sigmoid", "softmax"])
@pytest.mark.parametrize("lib,half", HALF, ids=[f"{lib.id}-{d}" for lib, d in HALF])
def test_half_precision(lib, half, kind):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, 6)) * 4
    x[0, 0], x[1, 1] = 60.0, -60.0  # saturated, and representable in both half formats
    if kind == "sigmoid":
        fn, t = focal.sigmoid_focal_loss, (rng.random((8, 6)) > 0.7).astype(np.float64)
        targets = lib.array(t, half)
    else:
        fn, t = focal.softmax_focal_loss, rng.integers(0, 6, size=8)
        targets = lib.array(t)
    rounded = lib.numpy(lib.array(x, half))  # the half inputs, exactly, as float64
    value, grad = focal.value_and_grad(fn)(lib.array(x, half), targets, gamma=0.5)
    expected_value, expected_grad = focal.value_and_grad(fn)(rounded.astype(np.float32),
                                                              t.astype(np.float32) if kind == "sigmoid" else t,
                                                              gamma=0.5)
    assert value.dtype == lib.dtype(half) and grad.dtype == lib.dtype(half)
    assert np.isfinite(lib.numpy(grad)).all()
    assert_close(lib.numpy(value), expected_value, REFERENCE_RTOL[half], "value")
    assert_close(lib.numpy(grad), expected_grad, REFERENCE_RTOL[half], "grad")
    if lib.autodiff:
        auto = lib.grad(lambda v: fn(v, targets, gamma=0.5), lib.array(x, half))
        assert auto.dtype == lib.dtype(half)
        assert_close(lib.numpy(auto), expected_grad, REFERENCE_RTOL[half], "autodiff grad")


# the largest logit each half dtype holds whose losses float32 can still add up: float16's own
# maximum, and for bfloat16 half of float32's (beyond it a softmax row's spread, and so the true
# loss, exceeds float32 and bfloat16 alike)
EXTREME = {"float16": 65504.0, "bfloat16": 1.6e38}
ENTRIES = [(fn, fixed, family) for family, members in FAMILIES.items() for fn, fixed in members]


def _extreme_data(family: str, fn, big: float) -> tuple[np.ndarray, np.ndarray]:
    if family == "sigmoid":
        x = np.array([[big, -big, 1.0], [-big, big, 0.0]])
        t = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        return x, t * 0.5 if fn in (focal.quality_focal_loss, focal.varifocal_loss) else t
    if family == "softmax":
        return np.array([[big, -big, 1.0], [-big, big, 0.0], [0.0, 1.0, 2.0]]), np.array([0, 0, 2])
    return np.array([[big, -big, 1.0], [-big, big, 0.0]]), np.array([0.5, 1.5])


@pytest.mark.parametrize("fn,fixed,family", ENTRIES, ids=[f"{fn.__name__}{'-softmax' if fixed else ''}"
                                                         for fn, fixed, _ in ENTRIES])
@pytest.mark.parametrize("lib,half", HALF, ids=[f"{lib.id}-{d}" for lib, d in HALF])
def test_every_loss_is_finite_at_the_half_dtypes_extremes(lib, half, fn, fixed, family):
    x, t = _extreme_data(family, fn, EXTREME[half])
    logits = lib.array(x, half)
    targets = lib.array(t, half) if family == "sigmoid" else lib.array(t)
    value, grad = focal.value_and_grad(fn)(logits, targets, **fixed)
    if lib.autodiff:
        grad = lib.grad(lambda v: fn(v, targets, **fixed), logits)
    assert value.dtype == lib.dtype(half) and grad.dtype == lib.dtype(half)
    assert np.isfinite(lib.numpy(value)) and np.isfinite(lib.numpy(grad)).all(), (lib.numpy(value), lib.numpy(grad))


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_torch_autocast_gives_the_functions_a_float32_loss(half):
    torch = import_or_skip("torch")
    x, t = _extreme_data("softmax", focal.softmax_focal_loss, EXTREME[half])
    logits = torch.tensor(x, dtype=getattr(torch, half), requires_grad=True)
    with torch.autocast("cpu", dtype=getattr(torch, half)):
        value = focal.softmax_focal_loss(logits, torch.tensor(t), reduction="sum")
    value.backward()
    expected, expected_grad = focal.value_and_grad(focal.softmax_focal_loss)(
        logits.detach().double().numpy(), t, reduction="sum")
    assert value.dtype == torch.float32 and logits.grad.dtype == logits.dtype
    with torch.autocast("cpu", dtype=getattr(torch, half)):
        direct_value, direct_grad = focal.value_and_grad(focal.softmax_focal_loss)(logits, torch.tensor(t),
                                                                                   reduction="sum")
    assert direct_value.dtype == torch.float32 and direct_grad.dtype == logits.dtype
    assert torch.equal(direct_grad, logits.grad)
    assert_close(value.item(), expected, 1e-6, "float32 loss of the half logits")
    assert_close(logits.grad.double().numpy(), expected_grad, REFERENCE_RTOL[half], "gradient")
