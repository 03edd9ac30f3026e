"""``python -m focal agree``: the same losses and gradients, computed by every installed backend.

For each library that imports here (NumPy, array-api-strict, JAX, PyTorch, TensorFlow, CuPy) it
computes the sigmoid and softmax focal losses of one fixed batch in float64, their gradients
through that framework's own autodiff (``focal.value_and_grad`` where it has none), and the
largest difference from NumPy's numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import focal

from .frameworks import installed, to_numpy, value_and_grad


def agree() -> float:
    """Print the table; return the largest difference from NumPy."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 5)) * 3.0
    binary = (rng.random((8, 5)) > 0.7).astype(np.float64)
    labels = rng.integers(0, 5, size=8)
    losses: dict[str, tuple[Callable[..., Any], np.ndarray, dict[str, Any]]] = {
        "sigmoid_focal_loss": (focal.sigmoid_focal_loss, binary, {"alpha": 0.25, "gamma": 2.0}),
        "softmax_focal_loss": (focal.softmax_focal_loss, labels, {"gamma": 2.0}),
    }
    print(f"focal {focal.__version__}: the same batch (8 x 5 logits, float64) on every installed backend")
    print(f"{'backend':<18}{'loss':<20}{'value':>22}{'|grad|_1':>22}  gradient from")
    reference: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    worst = 0.0
    for fw in installed():
        source = "focal.value_and_grad" if fw.value_and_grad is None else f"{fw.name} autodiff"
        for name, (fn, targets, params) in losses.items():
            value, grad = value_and_grad(fw, fn, fw.asarray(logits), fw.asarray(targets), **params)
            value, grad = to_numpy(value), to_numpy(grad)
            reference.setdefault(name, (value, grad))
            worst = max(worst, float(np.max(np.abs(value - reference[name][0]))),
                        float(np.max(np.abs(grad - reference[name][1]))))
            print(f"{fw.name:<18}{name:<20}{float(value):>22.16f}{float(np.abs(grad).sum()):>22.16f}  {source}")
    print(f"max difference from numpy: {worst:.3e}")
    return worst
