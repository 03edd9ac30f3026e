"""Independent float64 references, written straight from the papers' and seeds' formulas.

These use the naive expressions (``p = 1/(1 + e^−x)``, ``(1 − p_t)**γ``, ``log`` of a softmax)
that the core avoids, so they are only used on inputs where those expressions are exact. They also
run on complex inputs, which gives their own derivative by the complex step
(``f'(x) = Im f(x + ih) / h``, exact to rounding for analytic ``f``), independent of the core's
analytic gradient and of any framework's autodiff. Piecewise choices (thresholds, FLSD-53's γ)
look at the real part only, so the complex step sees no gradient through them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

STEP = 1e-30
EPS64 = np.finfo(np.float64).eps


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _alpha_t(alpha: float | None, y: np.ndarray) -> Any:
    return 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)


def _probs(x: np.ndarray, from_logits: bool) -> np.ndarray:
    if from_logits:
        return _sigmoid(x)
    assert np.all((x.real >= EPS64) & (x.real <= 1 - EPS64))  # the tests keep probabilities unclipped
    return x


def _held(x: np.ndarray, detach_modulator: Any) -> np.ndarray:
    """What a modulating factor is computed from: ``x`` itself; with ``detach_modulator=True`` its real part, which the
    complex step sees no derivative through (the factor held constant); an array: that point, where the factor is
    frozen (its derivatives of every order w.r.t. ``x`` then 0, for the Hessian of a held factor)."""
    if detach_modulator is True:
        return x.real
    return x if detach_modulator is False else np.asarray(detach_modulator)


def _gamma(gamma: Any, p_t: np.ndarray) -> Any:
    if isinstance(gamma, str) and gamma == "flsd53":
        return np.where(p_t.real < 0.2, 5.0, 3.0)
    return np.asarray(gamma, dtype=np.float64) if isinstance(gamma, (list, tuple)) else gamma


def sigmoid_focal(x: np.ndarray, y: np.ndarray, *, alpha: float | None = 0.25, gamma: Any = 2.0,
                  label_smoothing: float = 0.0, from_logits: bool = True, form: str = "pt",
                  epsilon: float = 0.0, pos_weight: Any = None, ignore_index: float | None = None,
                  detach_modulator: Any = False) -> np.ndarray:
    kept = np.ones(y.shape) if ignore_index is None else (y != ignore_index).astype(np.float64)
    y = np.where(kept == 1, y, 0.0) * (1 - label_smoothing) + label_smoothing / 2
    w = 1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
    p = _probs(x, from_logits)
    p_t = y * p + (1 - y) * (1 - p)
    g = _gamma(gamma, p_t)
    f = _probs(_held(x, detach_modulator), from_logits)  # the factor's p
    if form == "split":
        a_pos, a_neg = (1.0, 1.0) if alpha is None else (alpha, 1 - alpha)
        return kept * (-a_pos * w * y * (1 - f) ** g * np.log(p) - a_neg * (1 - y) * f ** g * np.log(1 - p))
    bce = -(w * y * np.log(p) + (1 - y) * np.log(1 - p))
    f_t = y * f + (1 - y) * (1 - f)
    return kept * (_alpha_t(alpha, y) * (1 - f_t) ** g * bce + epsilon * (1 - p_t) ** (g + 1))


def focal_star(x: np.ndarray, y: np.ndarray, *, gamma: float = 2.0, beta: float = 1.0,
               alpha: float | None = None) -> np.ndarray:
    return -_alpha_t(alpha, y) * np.log(_sigmoid(gamma * x * (2 * y - 1) + beta)) / gamma


def hard_truncated_sigmoid(x: np.ndarray, y: np.ndarray, *, margin: float = 0.5) -> np.ndarray:
    p = _sigmoid(x)
    keep = ~(((y == 1) & (p.real > margin)) | ((y == 0) & (p.real < 1 - margin)))
    return keep * -(y * np.log(p) + (1 - y) * np.log(1 - p))


def soft_truncated_sigmoid(x: np.ndarray, y: np.ndarray, *, k: float = 1.0) -> np.ndarray:
    return -y * _sigmoid(-k * x) * np.log(_sigmoid(x)) - (1 - y) * _sigmoid(k * x) * np.log(_sigmoid(-x))


def asymmetric(x: np.ndarray, y: np.ndarray, *, gamma_pos: float = 0.0, gamma_neg: float = 4.0,
               clip: float = 0.05, detach_modulator: Any = False) -> np.ndarray:
    p = _sigmoid(x)
    f = _sigmoid(_held(x, detach_modulator))
    p_m = np.where(p.real > clip, p - clip, 0.0)
    f_m = np.where(p.real > clip, f - clip, 0.0)
    neg = np.where(p.real > clip, f_m ** gamma_neg * np.log(1 - p_m), 0.0)
    return -y * (1 - f) ** gamma_pos * np.log(p) - (1 - y) * neg


def softmax_asymmetric(z: np.ndarray, t: np.ndarray, *, gamma_pos: float = 0.0, gamma_neg: float = 4.0,
                       label_smoothing: float = 0.1, axis: int = -1, ignore_index: int | None = None) -> np.ndarray:
    """timm's AsymmetricLossSingleLabel as its source reads: per row ``−Σ_c ỹ_c w_c log p_c``, ``w`` the one-hot's
    ``(1 − p)^γ⁺`` and the others' ``p^γ⁻``, ``ỹ`` the smoothed one-hot; an ignored row 0."""
    kept = np.ones(t.shape) if ignore_index is None else (t != ignore_index).astype(np.float64)
    t = np.where(kept == 1, t, 0)
    z = np.moveaxis(z, axis, -1)
    e = np.exp(z)
    p = e / e.sum(axis=-1, keepdims=True)
    onehot = np.eye(p.shape[-1])[t]
    y = onehot * (1 - label_smoothing) + label_smoothing / p.shape[-1]
    w = np.where(onehot == 1, (1 - p) ** gamma_pos, p ** gamma_neg)
    return -np.sum(y * w * np.log(p), axis=-1) * kept


def quality_focal(x: np.ndarray, y: np.ndarray, *, beta: float = 2.0) -> np.ndarray:
    p = _sigmoid(x)
    return ((y - p) ** 2) ** (beta / 2) * -(y * np.log(p) + (1 - y) * np.log(1 - p))


def varifocal(x: np.ndarray, y: np.ndarray, *, alpha: float = 0.75, gamma: float = 2.0,
              detach_modulator: Any = False) -> np.ndarray:
    p = _sigmoid(x)
    f = _sigmoid(_held(x, detach_modulator))
    return np.where(y > 0, -y * (y * np.log(p) + (1 - y) * np.log(1 - p)), -alpha * f ** gamma * np.log(1 - p))


def _rows(z: np.ndarray, t: np.ndarray, axis: int, ignore_index: Any, label_smoothing: float,
          from_logits: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Logits moved to the last axis, an explicit softmax, dense targets and the kept rows."""
    z = np.moveaxis(z, axis, -1)
    classes = z.shape[-1]
    if from_logits:
        e = np.exp(z)
        p = e / e.sum(axis=-1, keepdims=True)
    else:
        p = z / z.sum(axis=-1, keepdims=True)
    if np.issubdtype(t.dtype, np.integer):
        keep = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
        y = np.stack([(t == c) & keep for c in range(classes)], axis=-1).astype(np.float64)
    else:
        y = np.moveaxis(t, axis, -1).astype(np.float64)
        keep = np.ones(y.shape[:-1], bool)
    y = y * (1 - label_smoothing) + label_smoothing / classes * keep[..., None]
    return z, p, y, keep


def softmax_focal(z: np.ndarray, t: np.ndarray, *, alpha: Any = None, gamma: Any = 2.0, axis: int = -1,
                  ignore_index: int | None = None, label_smoothing: float = 0.0, from_logits: bool = True,
                  reduced_threshold: float | None = None, normalized: bool = False,
                  epsilon: float = 0.0, detach_modulator: Any = False) -> np.ndarray:
    """Per-row ``−Σ_c y_c α_c M_c log p_c (+ ε Σ_c y_c (1 − p_c)^(γ+1))``."""
    _, p, y, keep = _rows(z, t, axis, ignore_index, label_smoothing, from_logits)
    f = p if detach_modulator is False else _rows(_held(z, detach_modulator), t, axis, ignore_index, label_smoothing,
                                                  from_logits)[1]  # the modulator's p
    classes = p.shape[-1]
    a = np.ones(classes) if alpha is None else np.broadcast_to(np.asarray(alpha, dtype=np.float64), (classes,))
    g = _gamma(gamma, p)
    m = (1 - f) ** g
    if reduced_threshold is not None:
        m = np.where(p.real < reduced_threshold, 1.0, ((1 - f) / reduced_threshold) ** g)
    loss = -np.sum(y * a * m * np.log(p), axis=-1) + epsilon * np.sum(y * (1 - p) ** (g + 1), axis=-1)
    if normalized:
        loss = loss / np.sum(np.sum(y * m, axis=-1) * keep)
    return loss


def focal_with_negatives(z: np.ndarray, t: np.ndarray, *, alpha: float | None = 0.25, gamma: float = 2.0,
                         activation: str = "softmax", axis: int = -1, label_smoothing: float = 0.0) -> np.ndarray:
    """Seed 004's formula, without its ``+ eps`` inside the logs."""
    z, p, q, _ = _rows(z, t, axis, None, label_smoothing, True)
    if activation == "sigmoid":
        p = _sigmoid(z)
    a_pos, a_neg = (1.0, 1.0) if alpha is None else (alpha, 1 - alpha)
    return -np.sum(a_pos * (1 - p) ** gamma * np.log(p) * q + a_neg * p ** gamma * np.log(1 - p) * (1 - q), axis=-1)


def hard_truncated_softmax(z: np.ndarray, t: np.ndarray, *, margin: float = 0.5, axis: int = -1,
                           ignore_index: int | None = None) -> np.ndarray:
    _, p, y, _ = _rows(z, t, axis, ignore_index, 0.0, True)
    p_t = np.sum(y * p, axis=-1)
    return np.where(p_t.real > margin, 0.0, -np.sum(y * np.log(p), axis=-1))


def soft_truncated_softmax(z: np.ndarray, t: np.ndarray, *, k: float = 1.0, axis: int = -1,
                           ignore_index: int | None = None) -> np.ndarray:
    zl, p, y, _ = _rows(z, t, axis, ignore_index, 0.0, True)
    return -np.sum(y * _sigmoid(-k * zl) * np.log(p), axis=-1)


def distribution_focal(z: np.ndarray, d: np.ndarray, *, axis: int = -1) -> np.ndarray:
    zl = np.moveaxis(z, axis, -1)
    e = np.exp(zl)
    s = e / e.sum(axis=-1, keepdims=True)
    lo = np.floor(d).astype(int)
    hi = lo + 1
    log_lo = np.log(np.take_along_axis(s, lo[..., None], -1)[..., 0])
    s_hi = np.take_along_axis(s, np.minimum(hi, s.shape[-1] - 1)[..., None], -1)[..., 0]
    return -((hi - d) * log_lo + (d - lo) * np.log(s_hi))


def focal_tversky(z: np.ndarray, t: np.ndarray, *, a: float = 0.7, b: float = 0.3, gamma: float = 0.75,
                  smooth: float = 1.0, axis: int = -1, activation: str = "softmax",
                  ignore_index: int | None = None) -> np.ndarray:
    zl, p, y, keep = _rows(z, t, axis, ignore_index, 0.0, True)
    if activation == "sigmoid":
        p = _sigmoid(zl)
    k = keep[..., None]
    flat = lambda v: v.reshape(-1, v.shape[-1])  # noqa: E731
    tp = flat(p * y * k).sum(0)
    fn = flat((1 - p) * y * k).sum(0)
    fp = flat(p * (1 - y) * k).sum(0)
    ti = (tp + smooth) / (tp + a * fn + b * fp + smooth)
    return (1 - ti) ** gamma


def reduce(loss: np.ndarray, reduction: str, *, weight: Any = None, normalizer: Any = None,
           count: int | None = None) -> np.ndarray:
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    total = loss.sum()
    if normalizer is not None:
        return total / max(float(normalizer), EPS64)
    if reduction == "sum":
        return total
    n = loss.size if count is None else count
    return total / max(n, 1)


def gradient(f: Callable[[np.ndarray], Any], x: np.ndarray) -> np.ndarray:
    """``d f / d x`` of a real scalar function by the complex step, one element at a time."""
    grad = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        bump = np.zeros(x.shape, dtype=np.complex128)
        bump[index] = 1j * STEP
        grad[index] = np.imag(f(x + bump)) / STEP
    return grad
