"""Second derivatives of focal.keras's losses through the backend in KERAS_BACKEND, as its users take them:
``jax.hessian``, ``torch.autograd.functional.hessian`` and ``torch.func.hessian``, or TensorFlow's nested
``GradientTape``s, each against central differences of the same backend's first derivative (the loss's analytic
gradient) in float64. Never a silent zero: the reference is checked to be non-zero.

Run as a script by tests/test_keras.py, once per backend (fixed per process). Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys

import keras
import numpy as np

import focal.keras as fk

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keras_kinds import kind as kind_of  # noqa: E402

keras.config.set_floatx("float64")
BACKEND = keras.backend.backend()
rng = np.random.default_rng(3)
# saturated, tied (0) and moderate logits
logits = np.concatenate([rng.normal(size=(3, 3)) * 3, [[0.0, 0.0, 0.0], [30.0, -30.0, 0.5]]])
targets = {"sigmoid": (rng.random((5, 3)) > 0.5).astype("float64"), "labels": np.array([0, 2, 1, 1, 0]),
           "distances": rng.uniform(0.0, 2.0, (5, 1))}


def _gradient(loss, t):
    """The backend's first derivative: the loss's analytic gradient."""
    if BACKEND == "jax":
        import jax

        return lambda x: np.asarray(jax.grad(lambda v: loss(t, v))(x))
    if BACKEND == "torch":
        import torch

        def grad(x):
            leaf = torch.as_tensor(x).requires_grad_(True)
            return torch.autograd.grad(loss(torch.as_tensor(t), leaf), leaf)[0].numpy()

        return grad
    import tensorflow as tf

    def grad(x):
        v = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(v)
            value = loss(tf.constant(t), v)
        return tape.gradient(value, v).numpy()

    return grad


def _hessians(loss, t, logits: np.ndarray) -> dict[str, np.ndarray]:
    n = logits.size
    if BACKEND == "jax":
        import jax

        return {"jax.hessian": np.asarray(jax.hessian(lambda v: loss(t, v))(logits)).reshape(n, n)}
    if BACKEND == "torch":
        import torch

        x, y = torch.as_tensor(logits), torch.as_tensor(t)
        return {"autograd.functional.hessian": torch.autograd.functional.hessian(lambda v: loss(y, v), x)
                .reshape(n, n).numpy(),
                "torch.func.hessian": torch.func.hessian(lambda v: loss(y, v))(x).reshape(n, n).numpy()}
    import tensorflow as tf

    x = tf.constant(logits)
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            value = loss(tf.constant(t), x)
        g = inner.gradient(value, x)
    return {"nested GradientTape": outer.jacobian(g, x, experimental_use_pfor=False).numpy().reshape(n, n)}


def _central_differences(grad, x: np.ndarray, step: float = 1e-5) -> np.ndarray:
    n = x.size
    out = np.zeros((n, n))
    for i in range(n):
        bump = np.zeros(n)
        bump[i] = step
        out[:, i] = (grad(x + bump.reshape(x.shape)) - grad(x - bump.reshape(x.shape))).ravel() / (2 * step)
    return out


errors: dict[str, float] = {}
failures: list[str] = []
for name in fk.__all__:
    if name == "FocalLoss" or name.startswith("Linear"):
        continue
    loss = getattr(fk, name)(from_logits=True)
    t = targets[kind_of(name)]
    # the hard truncation's step at p_t = 0.5 (a logit of 0): moved off it, as tests/second_order.py does
    x = logits + 0.25 if name == "HardTruncatedLoss" else logits
    try:
        expected = _central_differences(_gradient(loss, t), x)
        scale = float(np.abs(expected).max())
        assert scale > 0, "a zero reference"
        for route, hessian in _hessians(loss, t, x).items():
            assert np.isfinite(hessian).all(), f"{route}: not finite"
            errors[f"{name} {route}"] = float(np.abs(hessian - expected).max() / scale)
    except Exception as error:  # noqa: BLE001 - reported with the class's name
        failures.append(f"{name}: {type(error).__name__}: {str(error)[:300]}")

sys.stdout.write(json.dumps({"backend": BACKEND, "errors": errors, "failures": failures}) + "\n")
