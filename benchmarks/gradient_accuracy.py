"""Accuracy of the second derivatives and of the targets' gradients, as tables (issue 20's figures).

- The targets' gradient: each framework's autodiff w.r.t. the targets (PyTorch, JAX, TensorFlow) against
  float64 central differences of the loss, for every case of ``tests/test_targets.py``, in float32 and float64.
- JAX's Hessian: ``jax.hessian`` (x64 off for float32, on for float64) against central differences of the
  analytic gradient, for every case of ``tests/test_hessians.py``.

Each figure is the largest error over the cases, relative to the largest entry of the expected array (the
scale ``tests/helpers.assert_close`` holds float32 results to). Run: ``python benchmarks/gradient_accuracy.py``.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-300))


def targets_table() -> list[str]:
    import jax
    import test_targets as tt
    from libs import AUTODIFF_LIBS

    rows = ["| framework | dtype | cases | largest error / scale | case |", "|---|---|---|---|---|"]
    for lib in AUTODIFF_LIBS:
        for dtype in ("float32", "float64"):
            jax.config.update("jax_enable_x64", dtype == "float64")
            worst, where = 0.0, ""
            for name, fn, params, t in tt.GRADIENT_CASES:
                x = tt._inputs(fn, params).astype(dtype).astype(np.float64)
                t = t.astype(dtype).astype(np.float64)
                error = _relative(tt.framework_gradient(lib, fn, params, x, t, dtype),
                                  tt.central_differences(fn, params, x, t))
                worst, where = max((worst, where), (error, name))
            rows.append(f"| {lib.name} | {dtype} | {len(tt.GRADIENT_CASES)} | {worst:.1e} | {where} |")
    jax.config.update("jax_enable_x64", False)
    return rows


def hessian_table() -> list[str]:
    import jax
    import jax.numpy as jnp
    import test_hessians as th

    rows = ["| dtype | x64 | cases x targets | finite | largest error / scale | case |", "|---|---|---|---|---|---|"]
    for dtype in ("float32", "float64"):
        jax.config.update("jax_enable_x64", dtype == "float64")
        worst, where, count, finite = 0.0, "", 0, True
        for case, fn, params, kind in th._losses():
            x = th.logits_for(fn)
            hessian_of = jax.jit(jax.hessian(lambda v, y, fn=fn, params=params: fn(v, y, **params)))
            for name, t in th.TARGETS[kind].items():
                got = np.asarray(hessian_of(jnp.asarray(x, dtype=dtype), th.targets_as(jnp, t, dtype)),
                                 dtype=np.float64).reshape(x.size, -1)
                finite = finite and bool(np.isfinite(got).all())
                error = _relative(got, th._central_differences(fn, params, x, t))
                worst, where = max((worst, where), (error, f"{case} {name}"))
                count += 1
        x64 = "on" if dtype == "float64" else "off"
        rows.append(f"| {dtype} | {x64} | {count} | {finite} | {worst:.1e} | {where} |")
    jax.config.update("jax_enable_x64", False)
    return rows


if __name__ == "__main__":
    print("## The targets' gradient against central differences\n")
    print("\n".join(targets_table()))
    print("\n## jax.hessian against central differences of the analytic gradient\n")
    print("\n".join(hessian_table()))
