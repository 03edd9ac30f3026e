"""Focal loss for gradient-boosted trees: per-example gradient and second derivative, and objectives
for XGBoost and LightGBM.

Boosting fits each tree by a Newton step on the raw margin ``x``, so it needs ``∂L/∂x`` and
``∂²L/∂x²`` per example. Both are written here once, in array-API calls, from the split form of
the sigmoid focal loss (equal to the default "pt" form for labels 0/1)::

    L = −α y q^γ log p − (1 − α)(1 − y) p^γ log q,    p = σ(x), q = 1 − p

as a function of ``u = log p`` and ``v = log q`` (so every power is an ``exp`` of a finite log and
``γ < 1`` stays finite): with ``du/dx = q`` and ``dv/dx = −p``,

    ∂L/∂x  = L_u q − L_v p
    ∂²L/∂x² = L_uu q² − 2 L_uv p q + L_vv p² − p q (L_u + L_v)

Neither XGBoost nor LightGBM is imported: the objectives are plain callables of NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _checks
from ._numerics import log_sigmoid_pair
from ._plan import Call
from .backends._base import Array

__all__ = ["lightgbm_objective", "sigmoid_focal_grad_hess", "xgboost_objective"]


def _alpha(alpha: Any) -> float | None:
    return None if alpha is None else _checks.check_number("alpha", alpha, low=0.0, high=1.0)


def sigmoid_focal_grad_hess(logits: Array, targets: Array, *, alpha: float | None = 0.25,
                            gamma: float = 2.0) -> tuple[Array, Array]:
    r"""Per-element first and second derivatives of :func:`focal.sigmoid_focal_loss` w.r.t. the logit.

    .. math::

        L = -\alpha y (1-p)^\gamma \log p - (1-\alpha)(1-y)\, p^\gamma \log(1-p),\qquad p = \sigma(x)

    (``form="split"``, the same loss as the default ``form="pt"`` for labels 0/1). With
    ``alpha=None`` both sides weigh 1; ``gamma=0, alpha=None`` gives the logistic loss's
    ``p − y`` and ``p (1 − p)``. The second derivative is negative where the focal term bends the
    loss (badly misclassified examples, ``γ > 0``); the objectives below floor it for Newton steps.

    Args:
        logits: real floating array of any supported library.
        targets: same shape, values in [0, 1].
        alpha: positive-class weight in [0, 1] or ``None``. Default 0.25.
        gamma: ``γ ≥ 0``. Default 2.

    Returns:
        ``(grad, hess)``, arrays of the logits' library, device, shape and dtype.

    References:
        Lin et al. Focal Loss for Dense Object Detection. ICCV 2017.
    """
    alpha = _alpha(alpha)
    gamma = _checks.check_gamma(gamma)
    call = Call(logits, targets, reduction="none", weight=None, normalizer=None)
    xp, logits = call.xp, call.logits
    _checks.check_shape("targets", targets.shape, call.shape, "one label per logit")
    y = call.within("targets", call.cast(call.targets), 0.0, 1.0, "labels in [0, 1] (hard 0/1 or soft)")
    u, v = log_sigmoid_pair(xp, logits)
    p, q = xp.exp(u), xp.exp(v)
    pos = y if alpha is None else alpha * y  # weight of the positive side
    neg = (1.0 - y) if alpha is None else (1.0 - alpha) * (1.0 - y)
    q_g, p_g = xp.exp(gamma * v), xp.exp(gamma * u)  # q^γ, p^γ
    # partial derivatives of L(u, v) = −pos e^{γv} u − neg e^{γu} v
    l_u = -pos * q_g - neg * gamma * p_g * v
    l_v = -pos * gamma * q_g * u - neg * p_g
    l_uu = -neg * gamma * gamma * p_g * v
    l_vv = -pos * gamma * gamma * q_g * u
    l_uv = -gamma * (pos * q_g + neg * p_g)
    grad = l_u * q - l_v * p
    hess = l_uu * q * q - 2.0 * l_uv * p * q + l_vv * p * p - p * q * (l_u + l_v)
    return call.out(grad, gradient=True), call.out(hess, gradient=True)


def _objective(alpha: float | None, gamma: float,
               min_hessian: float) -> Callable[[Any, Any], tuple[np.ndarray, np.ndarray]]:
    """XGBoost's DMatrix and LightGBM's Dataset both have ``get_label`` and ``get_weight``."""
    alpha = _alpha(alpha)
    gamma = _checks.check_gamma(gamma)
    min_hessian = _checks.check_number("min_hessian", min_hessian, low=0.0, high=np.inf, high_open=True)

    def objective(first: Any, second: Any) -> tuple[np.ndarray, np.ndarray]:
        # the native APIs call objective(margins, dataset); the scikit-learn wrappers (y_true, margins)
        if hasattr(second, "get_label"):
            margins, y, w = np.asarray(first, dtype=np.float64), second.get_label(), second.get_weight()
        else:
            margins, y, w = np.asarray(second, dtype=np.float64), np.asarray(first), None
        if margins.ndim != 1:
            raise ValueError(f"focal objectives are binary: expected one margin per example, got shape {margins.shape}")
        y = np.asarray(y, dtype=np.float64).reshape(margins.shape)
        grad, hess = sigmoid_focal_grad_hess(margins, y, alpha=alpha, gamma=gamma)
        hess = np.maximum(hess, min_hessian)
        if w is not None and np.size(w):
            w = np.asarray(w, dtype=np.float64).reshape(margins.shape)
            grad, hess = grad * w, hess * w
        return grad, hess

    objective.__name__ = f"focal_objective(alpha={alpha}, gamma={gamma})"
    return objective


def xgboost_objective(*, alpha: float | None = 0.25, gamma: float = 2.0,
                      min_hessian: float = 1e-6) -> Callable[[Any, Any], tuple[np.ndarray, np.ndarray]]:
    """A binary focal objective for XGBoost: ``xgb.train(params, dtrain, obj=xgboost_objective())``
    or ``XGBClassifier(objective=xgboost_objective())``.

    Gradient and second derivative are :func:`sigmoid_focal_grad_hess` of the raw margins
    (defaults ``alpha=0.25, gamma=2``), times the DMatrix weights when it has any; the second
    derivative is floored at ``min_hessian`` (default 1e-6) so Newton steps stay defined where the
    focal loss is concave. The model then predicts margins: ``1 / (1 + exp(−margin))`` is ``p``
    (pass ``output_margin=True`` to ``predict`` with ``xgb.train``; the scikit-learn wrapper applies
    the sigmoid itself in ``predict_proba``).

    Args:
        alpha: weight of the positive class in [0, 1], or None. Default 0.25.
        gamma: focusing parameter γ ≥ 0. Default 2.
        min_hessian: the floor of the second derivative, > 0. Default 1e-6.

    Returns:
        ``objective(preds, data) -> (grad, hess)``, as XGBoost calls it.

    References:
        Lin et al. Focal Loss for Dense Object Detection. ICCV 2017.
    """
    return _objective(alpha, gamma, min_hessian)


def lightgbm_objective(*, alpha: float | None = 0.25, gamma: float = 2.0,
                       min_hessian: float = 1e-6) -> Callable[[Any, Any], tuple[np.ndarray, np.ndarray]]:
    """A binary focal objective for LightGBM: ``lgb.train({"objective": lightgbm_objective(), ...}, data)``
    or ``LGBMClassifier(objective=lightgbm_objective())``.

    As :func:`xgboost_objective`, with LightGBM's Dataset labels and weights. Predictions of
    ``lgb.train`` are then raw margins; apply the sigmoid for probabilities.

    Args:
        alpha: weight of the positive class in [0, 1], or None. Default 0.25.
        gamma: focusing parameter γ ≥ 0. Default 2.
        min_hessian: the floor of the second derivative, > 0. Default 1e-6.

    Returns:
        ``objective(preds, data) -> (grad, hess)``, as LightGBM calls it.

    References:
        Lin et al. Focal Loss for Dense Object Detection. ICCV 2017.
    """
    return _objective(alpha, gamma, min_hessian)
