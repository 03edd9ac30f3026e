"""Comparison with tolerances by dtype, in the spirit of scipy's ``xp_assert_close``; scripts run apart."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
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


ROOT = pathlib.Path(__file__).resolve().parents[1]
# CI sets it: the published implementations and the examples' libraries must all be there
REQUIRE_OPTIONAL = os.environ.get("FOCAL_REQUIRE_ANCHORS") == "1"


def import_or_skip(name: str) -> Any:
    """The module; a skip where it is not installed, an error where CI requires it."""
    import importlib

    import pytest

    try:
        return importlib.import_module(name)
    except ImportError:
        if REQUIRE_OPTIONAL:
            raise
        pytest.skip(f"{name} is not installed", allow_module_level=True)  # a test or a module


def require_installed(*names: str) -> None:
    """Like :func:`import_or_skip` without importing (for what a subprocess will import)."""
    import importlib.util

    import pytest

    for name in names:
        if importlib.util.find_spec(name) is None:
            if REQUIRE_OPTIONAL:
                raise ImportError(f"{name} is required here (FOCAL_REQUIRE_ANCHORS=1)")
            pytest.skip(f"{name} is not installed")


def run_command(args: list[str], *, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``python args...`` in its own process from the repository root, the package importable; must exit 0."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": path, **env})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def run_script(script: str, *args: str, timeout: float = 300, **env: str) -> dict:
    """Run ``tests/<script>`` in its own process, for what must start fresh (a Keras backend, a JAX
    device count, a process group); returns its last line as JSON."""
    done = run_command([str(ROOT / "tests" / script), *args], timeout=timeout, **env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def record_fused_runs(monkeypatch: Any, *, min_elements: int = 0, compile_after: int = 0) -> list[str]:
    """PyTorch's fused path on, from ``min_elements`` and after ``compile_after`` large calls; the list it returns
    fills with the name of each compiled function run (``value``, ``forward``)."""
    from focal.backends import _torch_fused as fused

    monkeypatch.setattr(fused, "_enabled", True)
    monkeypatch.setattr(fused, "MIN_ELEMENTS", min_elements)
    monkeypatch.setattr(fused, "COMPILE_AFTER", compile_after)
    calls: list[str] = []
    real_run = fused.run
    monkeypatch.setattr(fused, "run", lambda *a: calls.append(a[0]) or real_run(*a))
    return calls
