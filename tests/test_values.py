"""Values and gradients of every case, on every library, against the independent float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from cases import CASES, Run
from helpers import REFERENCE_RTOL, assert_close


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_value_matches_reference(lib, dtype, case):
    run = Run(case, lib, dtype)
    out = run.loss()
    expected, _ = run.expected()
    assert lib.is_native(out), f"result is a {type(out)}, not a {lib.name} array"
    assert lib.on_device(out)
    assert out.dtype == lib.dtype(dtype)
    assert_close(lib.numpy(out), expected, REFERENCE_RTOL[dtype], case.id)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_value_and_grad_matches_reference(lib, dtype, case):
    run = Run(case, lib, dtype)
    value, grad = run.value_and_grad()
    expected_value, expected_grad = run.expected()
    assert lib.is_native(grad) and lib.on_device(grad)
    assert grad.dtype == lib.dtype(dtype) and tuple(grad.shape) == case.shape
    assert_close(lib.numpy(value), expected_value, REFERENCE_RTOL[dtype], f"{case.id} value")
    assert_close(lib.numpy(grad), expected_grad, REFERENCE_RTOL[dtype], f"{case.id} grad")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_framework_autodiff_matches_reference(autodiff_lib, dtype, case):
    lib = autodiff_lib
    run = Run(case, lib, dtype)
    grad = lib.grad(run.summed, run.x)
    _, expected = run.expected()
    assert grad.dtype == lib.dtype(dtype) and lib.on_device(grad)
    assert_close(lib.numpy(grad), expected, REFERENCE_RTOL[dtype], case.id)


# a factor held constant (detach_modulator) makes a gradient that is not the loss's derivative: those cases meet the
# complex step through their reference, the factor computed from the real part (test_value_and_grad_matches_reference)
@pytest.mark.parametrize("case", [c for c in CASES if not c.params.get("detach_modulator")], ids=lambda c: c.id)
def test_gradient_matches_central_differences(case):
    """The analytic gradient against central differences of the loss itself (NumPy, float64)."""
    from libs import Lib

    run = Run(case, Lib(), "float64")
    _, grad = run.value_and_grad()
    step = 1e-6
    numeric = np.zeros(run.x64.shape)
    for index in np.ndindex(run.x64.shape):
        bump = np.zeros(run.x64.shape)
        bump[index] = step
        numeric[index] = (float(np.sum(run.loss(run.x64 + bump))) - float(np.sum(run.loss(run.x64 - bump)))) / (
            2 * step)
    assert_close(grad, numeric, 1e-6, case.id)
