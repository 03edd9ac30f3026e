"""Print, per loss function, the largest difference between libraries on the conformance cases.

    python benchmarks/agreement.py

Every case of ``tests/cases.py`` runs on every importable library (values eagerly, through
``value_and_grad`` and through the framework's autodiff); each result is compared with NumPy's in
the same dtype, as ``max|a − b| / max|b|`` over the array.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cases import CASES, Run  # noqa: E402
from libs import LIBS, Lib  # noqa: E402


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def _jax_x64(on: bool) -> None:
    if any(lib.name == "jax" for lib in LIBS):
        import jax

        jax.config.update("jax_enable_x64", on)


def main() -> None:
    numpy_lib = Lib()
    worst: dict[tuple[str, str], tuple[float, str]] = defaultdict(lambda: (0.0, ""))
    for dtype in ("float64", "float32"):
        # JAX as its users run it: x64 off (its default) in float32, on for float64 (tests/conftest.py does the same)
        _jax_x64(dtype == "float64")
        for case in CASES:
            value, grad = (np.asarray(a, dtype=np.float64) for a in Run(case, numpy_lib, dtype).value_and_grad())
            for lib in LIBS:
                if lib.id == "numpy-cpu":
                    continue
                run = Run(case, lib, dtype)
                v, g = run.value_and_grad()
                diffs = [_rel(lib.numpy(run.loss()), value), _rel(lib.numpy(v), value), _rel(lib.numpy(g), grad)]
                if lib.autodiff:
                    diffs.append(_rel(lib.numpy(lib.grad(run.summed, run.x)), grad))
                key = (case.fn.__name__, dtype)
                if max(diffs) >= worst[key][0]:
                    worst[key] = (max(diffs), f"{lib.id}/{case.id}")
    print(f"libraries: {', '.join(lib.id for lib in LIBS)}; compared with numpy-cpu in the same dtype")
    print(f"{'function':<28}{'float64':>12}{'float32':>12}  worst (float32)")
    for name in sorted({k[0] for k in worst}):
        print(f"{name:<28}{worst[(name, 'float64')][0]:>12.1e}{worst[(name, 'float32')][0]:>12.1e}  "
              f"{worst[(name, 'float32')][1]}")


if __name__ == "__main__":
    main()
