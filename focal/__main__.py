"""``python -m focal``: the same losses and gradients, computed by every installed backend.

For each library that imports here (NumPy, array-api-strict, JAX, PyTorch, TensorFlow, CuPy) it
computes the sigmoid and softmax focal losses of one fixed batch in float64, their gradients
through that framework's own autodiff (``focal.value_and_grad`` where it has none), and the
largest difference from NumPy's numbers.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable

import numpy as np

import focal


def _jax_grad(loss: Callable[[Any], Any], x: Any) -> Any:
    import jax

    return jax.grad(loss)(x)


def _torch_grad(loss: Callable[[Any], Any], x: Any) -> Any:
    x = x.detach().requires_grad_(True)
    loss(x).backward()
    return x.grad


def _tf_grad(loss: Callable[[Any], Any], x: Any) -> Any:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(x)
    return tape.gradient(value, x)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    if hasattr(x, "get"):  # CuPy
        x = x.get()
    return np.asarray(x, dtype=np.float64)


# library: (how to make its array from NumPy, its framework gradient or None, how it is named)
def _libraries() -> dict[str, tuple[Callable[[np.ndarray], Any], Any]]:
    found: dict[str, tuple[Callable[[np.ndarray], Any], Any]] = {"numpy": (np.asarray, None)}
    for name, grad in [("array_api_strict", None), ("jax", _jax_grad), ("torch", _torch_grad),
                       ("tensorflow", _tf_grad), ("cupy", None)]:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if name == "jax":
            module.config.update("jax_enable_x64", True)
            found[name] = (module.numpy.asarray, grad)
        elif name == "torch":
            found[name] = (module.from_numpy, grad)
        elif name == "tensorflow":
            found[name] = (module.constant, grad)
        else:
            found[name] = (module.asarray, grad)
    return found


def main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides the table
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 5)) * 3.0
    binary = (rng.random((8, 5)) > 0.7).astype(np.float64)
    labels = rng.integers(0, 5, size=8)
    losses = {
        "sigmoid_focal_loss": (focal.sigmoid_focal_loss, binary, {"alpha": 0.25, "gamma": 2.0}),
        "softmax_focal_loss": (focal.softmax_focal_loss, labels, {"gamma": 2.0}),
    }
    print(f"focal {focal.__version__}: the same batch (8 x 5 logits, float64) on every installed backend")
    print(f"{'backend':<18}{'loss':<20}{'value':>22}{'|grad|_1':>22}  gradient from")
    reference: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    worst = 0.0
    for lib, (make, grad_fn) in _libraries().items():
        for name, (fn, targets, params) in losses.items():
            x, t = make(logits), make(targets)
            value, grad = focal.value_and_grad(fn)(x, t, **params)
            source = "focal.value_and_grad"
            if grad_fn is not None:
                grad = grad_fn(lambda v: fn(v, t, **params), x)
                source = f"{lib} autodiff"
            value, grad = _to_numpy(value), _to_numpy(grad)
            reference.setdefault(name, (value, grad))
            worst = max(worst, float(np.max(np.abs(value - reference[name][0]))),
                        float(np.max(np.abs(grad - reference[name][1]))))
            print(f"{lib:<18}{name:<20}{float(value):>22.16f}{float(np.abs(grad).sum()):>22.16f}  {source}")
    print(f"max difference from numpy: {worst:.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
