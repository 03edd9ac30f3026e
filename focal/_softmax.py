"""Softmax focal loss (multi-class): the kernels (class indices, dense targets) and the public function."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Sequence

from . import _checks
from ._numerics import log1mexp, log_softmax, neg_log_over_one_minus, tiny
from ._plan import BoundKernel, Call, FromProbabilities, LossPlan, plans
from .backends._base import Array


@dataclass(frozen=True)
class SoftmaxFocalSpec:
    gamma: float
    axis: int
    num_classes: int
    alpha: float | None  # a scalar alpha; a per-class alpha vector comes as an array argument
    ignore_index: int | None
    label_smoothing: float


def _along_axis(xp: Any, v: Array, axis: int, ndim: int) -> Array:
    """A length-C vector reshaped to broadcast along ``axis`` of an ``ndim``-dimensional array."""
    shape = [1] * ndim
    shape[axis] = -1
    return xp.reshape(v, tuple(shape))


def _focal_terms(xp: Any, log_p: Array, log_1m_p: Array, gamma: float) -> tuple[Any, Any]:
    """``(1 − p)^γ`` and ``F = (1 − p)^γ (1 + γ p · (−log p)/(1 − p))``, the factor in the gradient.

    ``d/dz_j [−(1 − p_c)^γ log p_c] = F_c (p_j − δ_cj)``; the ratio form keeps F finite for γ < 1.
    """
    if gamma == 0.0:
        return 1.0, 1.0
    modulator = xp.exp(gamma * log_1m_p)
    clamped = xp.maximum(log_p, math.log(tiny(xp, log_p)))
    return modulator, modulator * (1.0 + gamma * xp.exp(clamped) * neg_log_over_one_minus(xp, clamped))


def softmax_focal_labels_kernel(
    xp: Any, z: Array, labels: Array, *rest: Any
) -> tuple[Array, Array]:
    """Per-row loss ``−α_t (1 − p_t)^γ log p_t`` for integer labels, and its gradient
    ``α_t F_t (p − onehot(t))``. Ignored rows give 0; labels outside [0, C) give NaN (under tracing,
    where they cannot be checked)."""
    *alpha_vec, spec = rest
    axis, classes = spec.axis, spec.num_classes
    valid = None if spec.ignore_index is None else labels != spec.ignore_index
    in_range = (labels >= 0) & (labels < classes)
    safe = xp.where(in_range, labels, 0)
    onehot = xp.expand_dims(safe, axis=axis) == _along_axis(xp, xp.arange(classes, dtype=safe.dtype), axis, z.ndim)
    log_p = log_softmax(xp, z, axis)
    p = xp.exp(log_p)
    if spec.label_smoothing:
        dense = xp.astype(onehot, z.dtype) * (1.0 - spec.label_smoothing) + spec.label_smoothing / classes
        loss, grad = _dense(xp, log_p, p, dense, alpha_vec, spec)
    else:
        log_pt = xp.sum(xp.where(onehot, log_p, 0.0), axis=axis)
        log_1m_pt = log1mexp(xp, log_pt)
        modulator, factor = _focal_terms(xp, log_pt, log_1m_pt, spec.gamma)
        if alpha_vec:
            alpha_t = xp.reshape(xp.take(alpha_vec[0], xp.reshape(safe, (-1,))), safe.shape)
        else:
            alpha_t = 1.0 if spec.alpha is None else spec.alpha
        loss = -(alpha_t * modulator) * log_pt
        # p − onehot, with p_t − 1 taken as −exp(log(1 − p_t)): no cancellation as p_t → 1
        p_minus_onehot = xp.where(onehot, -xp.expand_dims(xp.exp(log_1m_pt), axis=axis), p)
        grad = xp.expand_dims(alpha_t * factor * xp.ones_like(log_pt), axis=axis) * p_minus_onehot
    loss = xp.where(in_range, loss, math.nan)
    grad = xp.where(xp.expand_dims(in_range, axis=axis), grad, math.nan)
    if valid is not None:
        loss = xp.where(valid, loss, 0.0)
        grad = xp.where(xp.expand_dims(valid, axis=axis), grad, 0.0)
    return loss, grad


def softmax_focal_dense_kernel(xp: Any, z: Array, y: Array, *rest: Any) -> tuple[Array, Array]:
    """Per-row loss ``−Σ_c y_c α_c (1 − p_c)^γ log p_c`` for dense (soft or one-hot) targets."""
    *alpha_vec, spec = rest
    if spec.label_smoothing:
        y = y * (1.0 - spec.label_smoothing) + spec.label_smoothing / spec.num_classes
    log_p = log_softmax(xp, z, spec.axis)
    return _dense(xp, log_p, xp.exp(log_p), y, alpha_vec, spec)


def _dense(
    xp: Any, log_p: Array, p: Array, y: Array, alpha_vec: Sequence[Array], spec: SoftmaxFocalSpec
) -> tuple[Array, Array]:
    """``L = −Σ_c w_c (1 − p_c)^γ log p_c`` with ``w = y α``; with ``v = w F``,
    ``dL/dz = p Σ_c v_c − v = p (Σ_c v_c − v) − v (1 − p)``, the second form free of the
    cancellation of ``p_t − 1`` as ``p_t → 1``.

    Classes with ``y_c = 0`` contribute exactly 0, even where ``log p_c = −inf`` (masked logits).
    """
    axis = spec.axis
    if alpha_vec:
        y = y * _along_axis(xp, alpha_vec[0], axis, log_p.ndim)
    elif spec.alpha is not None:
        y = y * spec.alpha
    present = y != 0.0
    log_1m_p = log1mexp(xp, log_p)
    modulator, factor = _focal_terms(xp, log_p, log_1m_p, spec.gamma)
    loss = -xp.sum(xp.where(present, y * modulator * log_p, 0.0), axis=axis)
    v = xp.where(present, y * factor, 0.0)
    grad = p * (xp.sum(v, axis=axis, keepdims=True) - v) - v * xp.exp(log_1m_p)
    return loss, grad


def softmax_focal_loss(
    logits: Array,
    targets: Array,
    *,
    alpha: float | Sequence[float] | Array | None = None,
    gamma: float = 2.0,
    axis: int = -1,
    ignore_index: int | None = None,
    reduction: str = "mean",
    weight: Array | float | None = None,
    normalizer: Array | float | None = None,
    label_smoothing: float = 0.0,
    from_logits: bool = True,
) -> Array:
    r"""Softmax focal loss for multi-class classification (Lin et al., 2017).

    .. math::

        \log p_c = z_c - \operatorname{LSE}(z),\qquad
        \mathrm{FL}(z, t) = -\alpha_t\,(1-p_t)^\gamma \log p_t

    and for dense targets ``y`` (one-hot, soft or label-smoothed)
    ``FL(z, y) = −Σ_c y_c α_c (1 − p_c)^γ log p_c``. With ``γ = 0`` and no α it is the cross entropy.

    Args:
        logits: real floating array with the classes along ``axis``.
        targets: integer class indices of ``logits``' shape without ``axis``, values in [0, C) or
            ``ignore_index``; or floating class probabilities of ``logits``' shape.
        alpha: ``None`` (no weighting; the default), a scalar in [0, 1] that scales every class
            (Keras' semantics; kornia and MONAI instead read a scalar as ``[1 − α, α, …]``), or a
            per-class vector of length C (a sequence or an array of the logits' library).
        gamma: focusing parameter ``γ ≥ 0``. Default 2.
        axis: the class axis. Default -1 (``focal.torch`` criteria use 1, as ``nn.CrossEntropyLoss``).
        ignore_index: a label value whose rows are left out of the loss and of the mean's count.
        reduction: ``"none"`` (per row), ``"mean"`` (over rows that are not ignored) or ``"sum"``.
        weight: weights broadcastable to the per-row loss shape (logits' shape without ``axis``).
        normalizer: divide the sum by ``max(normalizer, eps)`` instead (mmdet's ``avg_factor``).
        label_smoothing: ``y ← y (1 − ls) + ls / C``, in [0, 1).
        from_logits: ``False`` takes probabilities, clipped to ``[eps, 1 − eps]`` and renormalised.

    Returns:
        An array of the input's library, device and dtype. The gradient w.r.t. ``logits`` is the
        analytic ``α_t F (p − onehot(t))`` with ``F = (1 − p_t)^γ (1 + γ p_t (−log p_t)/(1 − p_t))``,
        finite for every finite logit and ``γ ≥ 0``. Eagerly, labels outside [0, C) raise
        ``ValueError``; inside ``jax.jit`` or ``tf.function`` their rows are NaN.

    References:
        Lin, Goyal, Girshick, He, Dollár. Focal Loss for Dense Object Detection. ICCV 2017.
    """
    return _plan_softmax_focal(logits, targets, alpha=alpha, gamma=gamma, axis=axis, ignore_index=ignore_index,
                               reduction=reduction, weight=weight, normalizer=normalizer,
                               label_smoothing=label_smoothing, from_logits=from_logits).loss()


def _check_alpha(call: Call, alpha: Any, classes: int) -> tuple[float | None, tuple[Array, ...]]:
    """A scalar alpha, or a per-class vector as an array of the logits' library in the compute dtype."""
    if alpha is None or isinstance(alpha, numbers.Real):
        return (None if alpha is None else _checks.check_number("alpha", alpha, low=0.0, high=1.0)), ()
    xp = call.xp
    if isinstance(alpha, (list, tuple)):
        values = [_checks.check_number(f"alpha[{i}]", a, low=0.0, high=1.0) for i, a in enumerate(alpha)]
        vector = xp.asarray(values, dtype=call.dtype, device=_device(call.logits))
    else:
        vector = call.cast(alpha)
    if tuple(vector.shape) != (classes,):
        raise ValueError(f"alpha has shape {tuple(vector.shape)}, expected ({classes},): one weight per class")
    if call.known(xp.all((vector >= 0.0) & (vector <= 1.0))) is False:
        raise ValueError(f"alpha must be in [0, 1] for every class, got min {float(xp.min(vector))}, "
                         f"max {float(xp.max(vector))}")
    return None, (vector,)


def _device(x: Array) -> Any:
    import array_api_compat

    try:
        return array_api_compat.device(x)
    except Exception:  # libraries without a device notion (our TensorFlow shim ignores it)
        return None


@plans(softmax_focal_loss)
def _plan_softmax_focal(
    logits: Array, targets: Array, *, alpha: Any, gamma: Any, axis: Any, ignore_index: Any, reduction: str,
    weight: Any, normalizer: Any, label_smoothing: Any, from_logits: bool,
) -> LossPlan:
    call = Call(logits, targets, reduction=reduction, weight=weight, normalizer=normalizer, alpha=alpha)
    xp, shape = call.xp, call.shape
    if not shape:
        raise ValueError("logits must have a class axis, got a 0-d array")
    axis = _checks.check_axis(axis, len(shape))
    classes = int(shape[axis])
    row_shape = tuple(s for i, s in enumerate(shape) if i != axis)
    scalar_alpha, alpha_vec = _check_alpha(call, alpha, classes)
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral)):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    spec = SoftmaxFocalSpec(
        gamma=_checks.check_gamma(gamma), axis=axis, num_classes=classes, alpha=scalar_alpha,
        ignore_index=None if ignore_index is None else int(ignore_index),
        label_smoothing=_checks.check_number("label_smoothing", label_smoothing, low=0.0, high=1.0, high_open=True),
    )
    valid = None
    if xp.isdtype(targets.dtype, "integral"):
        _checks.check_shape("targets", targets.shape, row_shape,
                            f"integer class indices have the logits' shape without axis={axis}")
        if spec.ignore_index is not None:
            valid = targets != spec.ignore_index
        _check_labels(call, targets, valid, classes)
        fn, aux = softmax_focal_labels_kernel, (targets,)
    elif xp.isdtype(targets.dtype, "real floating"):
        _checks.check_shape("targets", targets.shape, shape, "class probabilities have the logits' shape")
        fn, aux = softmax_focal_dense_kernel, (call.cast(targets),)
    else:
        raise TypeError(f"targets must be integer class indices or floating class probabilities, got {targets.dtype}")
    kernel: Any = BoundKernel(fn, spec)
    if not from_logits:
        kernel = FromProbabilities(kernel, "softmax")
    return LossPlan(call, kernel, aux=aux + alpha_vec, expand_axis=axis, valid=valid)


def _check_labels(call: Call, labels: Array, valid: Array | None, classes: int) -> None:
    """Eagerly, every label not ignored must be in [0, C); under tracing the kernel marks them NaN."""
    xp = call.xp
    bad = (labels < 0) | (labels >= classes)
    if valid is not None:
        bad = bad & valid
    if call.known(xp.any(bad)):
        limits = xp.iinfo(labels.dtype)
        low = int(xp.min(xp.where(bad, labels, limits.max)))
        high = int(xp.max(xp.where(bad, labels, limits.min)))
        raise ValueError(
            f"targets holds class indices outside [0, {classes}) (from {low} to {high}); logits have "
            f"{classes} classes along the class axis" + ("" if valid is None else " and ignore_index is not one of them")
        )
