"""A high-precision reference (mpmath, 150 digits) for logits far outside where the naive formula is exact."""

from __future__ import annotations

from collections.abc import Sequence

import mpmath

mpmath.mp.dps = 150


def _sigmoid_focal(x: mpmath.mpf, y: float, alpha: float | None, gamma: float) -> mpmath.mpf:
    p = 1 / (1 + mpmath.exp(-x))
    q = 1 / (1 + mpmath.exp(x))  # 1 - p without cancellation
    y = mpmath.mpf(y)
    one_minus_pt = y * q + (1 - y) * p
    bce = -(y * mpmath.log(p) + (1 - y) * mpmath.log(q))
    alpha_t = 1 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    return alpha_t * one_minus_pt**gamma * bce


def sigmoid_focal(x: float, y: float, alpha: float | None, gamma: float) -> tuple[float, float]:
    """Loss and its derivative w.r.t. ``x`` at one point."""
    f = lambda v: _sigmoid_focal(v, y, alpha, gamma)  # noqa: E731
    x = mpmath.mpf(x)
    return float(f(x)), float(mpmath.diff(f, x))


def _sigmoid_focal_split(x: mpmath.mpf, y: float, alpha: float | None, gamma: float) -> mpmath.mpf:
    p = 1 / (1 + mpmath.exp(-x))
    q = 1 / (1 + mpmath.exp(x))
    y = mpmath.mpf(y)
    a = 1 if alpha is None else alpha
    b = 1 if alpha is None else 1 - alpha
    return -a * y * q**gamma * mpmath.log(p) - b * (1 - y) * p**gamma * mpmath.log(q)


def sigmoid_focal_split_derivatives(x: float, y: float, alpha: float | None, gamma: float) -> tuple[float, float]:
    """First and second derivative w.r.t. ``x`` of the split-form sigmoid focal loss at one point."""
    f = lambda v: _sigmoid_focal_split(v, y, alpha, gamma)  # noqa: E731
    x = mpmath.mpf(x)
    return float(mpmath.diff(f, x, 1)), float(mpmath.diff(f, x, 2))


def _softmax_focal(z: Sequence[mpmath.mpf], t: int, gamma: float) -> mpmath.mpf:
    m = max(z)
    e = [mpmath.exp(v - m) for v in z]
    s = mpmath.fsum(e)
    p_t = e[t] / s
    rest = mpmath.fsum(e[:t] + e[t + 1:]) / s  # 1 - p_t without cancellation
    return -(rest**gamma) * mpmath.log(p_t)


def softmax_focal(z: Sequence[float], t: int, gamma: float) -> tuple[float, list[float]]:
    """Loss of one row and its gradient w.r.t. every logit of the row."""
    zs = [mpmath.mpf(v) for v in z]
    value = _softmax_focal(zs, t, gamma)
    grad = []
    for j in range(len(zs)):
        def along(h: mpmath.mpf, j: int = j) -> mpmath.mpf:
            return _softmax_focal([v + h if i == j else v for i, v in enumerate(zs)], t, gamma)
        grad.append(float(mpmath.diff(along, 0)))
    return float(value), grad
