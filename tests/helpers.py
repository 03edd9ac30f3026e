"""Comparison with tolerances by dtype, in the spirit of scipy's ``xp_assert_close``."""

from __future__ import annotations

from typing import Any

import numpy as np

# relative tolerance of a result against the float64 reference, by the dtype it was computed in
REFERENCE_RTOL = {"float64": 1e-11, "float32": 3e-5, "float16": 2e-2, "bfloat16": 2e-2}
# relative tolerance of one library against another on the same inputs (the targets)
CROSS_RTOL = {"float64": 1e-10, "float32": 1e-5}


def assert_close(actual: Any, expected: Any, rtol: float, what: str = "") -> None:
    """Elementwise ``|a − e| ≤ rtol·|e| + floor``, ``floor = rtol·max|e|`` below float64.

    Entries that come from a cancellation (a gradient ``p·W − w`` near 0) carry the rounding of
    the array's largest terms, so below float64 they are held to the array's scale; in float64
    the floor is 1000 times smaller.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    floor = rtol * scale * (1e-3 if rtol < 1e-8 else 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=floor + 1e-300, err_msg=what)
