"""float16 and bfloat16: computed in float32, returned in the input dtype, close to the float32 result."""

from __future__ import annotations

import numpy as np
import pytest

import focal
from helpers import REFERENCE_RTOL, assert_close
from libs import LIBS

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
