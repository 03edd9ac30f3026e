"""Every library against NumPy on the same inputs: values and gradients, eager and compiled."""

from __future__ import annotations

import numpy as np
import pytest
from cases import CASES, Run
from helpers import CROSS_RTOL, assert_close
from libs import LIBS, Lib

NUMPY = Lib()
# compiling is slow (torch.compile most of all): a few cases per loss cover each compiled path
COMPILED_IDS = {"sig-default", "sig-gamma0.5-soft", "sig-weight-rows-none", "sm-default", "sm-alpha-vector",
                "sm-ignore", "sm-soft-gamma0.5", "sm-axis1", "sm-normalized", "neg-softmax", "asl", "dfl",
                "tversky", "sig-detach", "asl-detach", "vfl-detach", "sm-detach-soft"}
COMPILED_CASES = [case for case in CASES if case.id in COMPILED_IDS]


def _numpy_result(case, dtype):
    value, grad = Run(case, NUMPY, dtype).value_and_grad()
    return np.asarray(value, dtype=np.float64), np.asarray(grad, dtype=np.float64)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("lib", [lib for lib in LIBS if lib.id != "numpy-cpu"], ids=lambda lib: lib.id)
def test_same_as_numpy(lib, dtype, case):
    """NumPy itself is checked against the reference in test_values."""
    expected_value, expected_grad = _numpy_result(case, dtype)
    run = Run(case, lib, dtype)
    assert_close(lib.numpy(run.loss()), expected_value, CROSS_RTOL[dtype], f"{case.id} value")
    value, grad = run.value_and_grad()
    assert_close(lib.numpy(value), expected_value, CROSS_RTOL[dtype], f"{case.id} value_and_grad value")
    assert_close(lib.numpy(grad), expected_grad, CROSS_RTOL[dtype], f"{case.id} value_and_grad grad")
    if lib.autodiff:
        assert_close(lib.numpy(lib.grad(run.summed, run.x)), expected_grad, CROSS_RTOL[dtype], f"{case.id} autodiff")


# torch.compile in float32 only (about 9 s a case): its float64 graphs are test_frameworks.py's fullgraph tests
COMPILED_RUNS = [(lib, dtype) for lib in LIBS if lib.autodiff for dtype in ("float32", "float64")
                 if not (lib.name == "torch" and dtype == "float64")]


@pytest.mark.parametrize("case", COMPILED_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("lib,dtype", COMPILED_RUNS, ids=[f"{dtype}-{lib.id}" for lib, dtype in COMPILED_RUNS])
def test_compiled_same_as_numpy(lib, dtype, case):
    """Under ``jax.jit``, ``tf.function(jit_compile=True)`` and ``torch.compile``."""
    expected_value, expected_grad = _numpy_result(case, dtype)
    run = Run(case, lib, dtype)
    value = lib.compile(run.summed)(run.x)
    grad = lib.compile(lambda x: lib.grad(run.summed, x))(run.x)
    assert_close(lib.numpy(value), np.sum(expected_value), CROSS_RTOL[dtype], f"{case.id} compiled value")
    assert_close(lib.numpy(grad), expected_grad, CROSS_RTOL[dtype], f"{case.id} compiled grad")
