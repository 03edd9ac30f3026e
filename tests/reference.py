"""Independent float64 references, written straight from the papers' formulas.

These use the naive expressions (``p = 1/(1 + e^−x)``, ``(1 − p_t)**γ``, ``log`` of a softmax)
that the core avoids, so they are only used on inputs where those expressions are exact. They also
run on complex inputs, which gives their own derivative by the complex step
(``f'(x) = Im f(x + ih) / h``, exact to rounding for analytic ``f``), independent of the core's
analytic gradient and of any framework's autodiff.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

STEP = 1e-30


def sigmoid_focal(x: np.ndarray, y: np.ndarray, *, alpha: float | None = 0.25, gamma: float = 2.0,
                  label_smoothing: float = 0.0, from_logits: bool = True) -> np.ndarray:
    y = y * (1 - label_smoothing) + label_smoothing / 2
    if from_logits:
        p = 1 / (1 + np.exp(-x))
    else:
        eps = np.finfo(np.float64).eps
        p = x  # the tests keep probabilities inside [eps, 1 - eps]
        assert np.all((p.real >= eps) & (p.real <= 1 - eps))
    p_t = y * p + (1 - y) * (1 - p)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    alpha_t = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    return alpha_t * (1 - p_t) ** gamma * bce


def softmax_focal(z: np.ndarray, t: np.ndarray, *, alpha: Any = None, gamma: float = 2.0, axis: int = -1,
                  ignore_index: int | None = None, label_smoothing: float = 0.0,
                  from_logits: bool = True) -> np.ndarray:
    """Per-row loss, from the one-hot expansion of the labels and an explicit softmax."""
    z = np.moveaxis(z, axis, -1)
    classes = z.shape[-1]
    if from_logits:
        e = np.exp(z)
        p = e / e.sum(axis=-1, keepdims=True)
    else:
        p = z / z.sum(axis=-1, keepdims=True)
    if np.issubdtype(t.dtype, np.integer):
        keep = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
        y = np.zeros(p.shape)
        for c in range(classes):
            y[..., c] = (t == c) & keep
    else:
        keep = np.ones(t.shape[:-1] if axis == -1 else np.moveaxis(t, axis, -1).shape[:-1], bool)
        y = np.moveaxis(t, axis, -1).astype(np.float64)
    y = y * (1 - label_smoothing) + label_smoothing / classes * keep[..., None]
    a = np.ones(classes) if alpha is None else np.broadcast_to(np.asarray(alpha, dtype=np.float64), (classes,))
    return -np.sum(y * a * (1 - p) ** gamma * np.log(p), axis=-1)


def reduce(loss: np.ndarray, reduction: str, *, weight: Any = None, normalizer: Any = None,
           count: int | None = None) -> np.ndarray:
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    total = loss.sum()
    if normalizer is not None:
        return total / max(float(normalizer), np.finfo(np.float64).eps)
    if reduction == "sum":
        return total
    n = loss.size if count is None else count
    return total / max(n, 1)


def elementwise_derivative(loss: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                           class_axis: int | None = None) -> np.ndarray:
    """``d loss_i / d x`` for a loss whose element i depends on x_i only (``class_axis=None``) or on
    row i along ``class_axis``: one complex-step evaluation per class."""
    if class_axis is None:
        return loss(x + 1j * STEP).imag / STEP
    grad = np.zeros(x.shape)
    class_axis %= x.ndim
    for c in range(x.shape[class_axis]):
        bump = np.zeros(x.shape)
        np.moveaxis(bump, class_axis, 0)[c] = STEP
        grad_c = loss(x + 1j * bump).imag / STEP
        np.moveaxis(grad, class_axis, 0)[c] = grad_c
    return grad
