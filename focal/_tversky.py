"""Focal Tversky loss (Abraham & Khan, 2019): a region loss over the whole batch, per class."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ._categorical import prepare_softmax
from ._docs import document
from ._hyper import TARGETS, Slot, bind, is_array
from ._kernel import FromProbabilities, Grads, Wanted
from ._numerics import log_sigmoid_pair, scale_in_place, softmax_parts, tiny
from ._plan import LossPlan, plans
from ._seed import _check_activation
from .backends._base import Array


@dataclass(frozen=True)
class TverskySpec:
    a: Any  # numbers or Slots
    b: Any
    gamma: Any
    smooth: Any
    axis: int
    activation: str


@dataclass(frozen=True)
class TverskyKernel:
    """``(1 − TI_c)^γ`` per class, every class's sums running over all the other axes.

    With ``R = a FN + b FP`` and ``D = TP + R + s``, ``1 − TI = R/D`` and
    ``d(1 − TI)^γ/dp = γ (R/D)^(γ−1) (dR/dp · (TP + s) − R y)/D²``; R is floored at ``tiny`` so the
    γ < 1 gradient at a perfect prediction (truly unbounded) stays finite. The hyperparameters'
    partials: ``∂/∂γ = (R/D)^γ log(R/D)``, ``∂/∂a = γ (R/D)^(γ−1) (TP + s) FN / D²`` (b: FP),
    ``∂/∂s = −γ (R/D)^γ / D``. The targets (its ``targets`` slot) enter TP, FN and FP linearly:
    ``∂L_c/∂y_i = γ (R/D)^(γ−1) ((TP + s)(a (1 − p_i) − b p_i) − R p_i) / D²`` for pixel i of class c.
    """

    spec: TverskySpec
    targets: Slot

    def forward(self, xp: Any, z: Array, aux: tuple[Array, ...], params: tuple[Array, ...],
                wanted: Wanted) -> tuple[Array, tuple[Array, ...]]:
        s = bind(self.spec, params)
        y, mask = params[self.targets.index], aux
        axis = s.axis
        if s.activation == "softmax":
            shifted, p, log_total = softmax_parts(xp, z, axis)
            del shifted
            p = scale_in_place(xp, p, xp.exp(-log_total))
            # 1 − p: a dominant class's is s/(1 + s), exact as p → 1; any other's is 1 − p >= 1/2, nothing cancels
            rest = xp.expm1(log_total)
            dominant = p > 0.5
            q = xp.where(dominant, rest / (1.0 + rest), 1.0 - p)
            chain = None
        else:
            log_p, log_q = log_sigmoid_pair(xp, z)
            chain = xp.exp(log_p + log_q)
            p, q = xp.exp(log_p), xp.exp(log_q)
        keep = mask[0] if mask else 1.0
        y_kept = y * keep if mask else y
        others = tuple(i for i in range(z.ndim) if i != axis)
        tp = xp.sum(p * y_kept, axis=others, keepdims=True)
        fn = xp.sum(q * y_kept, axis=others, keepdims=True)
        fp = xp.sum(p * (keep - y_kept), axis=others, keepdims=True)
        r = s.a * fn + s.b * fp
        n = tp + s.smooth
        d = xp.maximum(n + r, tiny(xp, z))  # 0 only when R = 0 too (smooth = 0, nothing counted): loss 0 below
        log_ratio = xp.log(xp.maximum(r, tiny(xp, z))) - xp.log(d)
        # R = 0 (a perfect prediction, or every pixel ignored) is exactly 0, not the floor's tiny^γ
        gamma = s.gamma
        at_zero: Any = (0.0 if gamma > 0.0 else 1.0) if not is_array(gamma) else xp.astype(gamma <= 0.0, z.dtype)
        loss = xp.where(r == 0.0, at_zero, xp.exp(gamma * log_ratio))  # NaN stays NaN
        dr = (s.b - (s.a + s.b) * y) * keep
        h = gamma * xp.exp((gamma - 1.0) * log_ratio) * (dr * n - r * y_kept) / (d * d)
        residuals = (h, p) if chain is None else (h, chain)

        def slope() -> Array:  # γ (R/D)^(γ−1) / D², the derivative of (R/D)^γ in R, over n
            return gamma * xp.exp((gamma - 1.0) * log_ratio) / (d * d)

        partials = {"gamma": lambda: xp.where(r == 0.0, 0.0, loss * log_ratio),
                    "a": lambda: slope() * n * fn, "b": lambda: slope() * n * fp,
                    "smooth": lambda: -slope() * r,
                    TARGETS: lambda: slope() * (n * (s.a * q - s.b * p) - r * p) * keep}
        classes = (z.shape[axis],)
        wanted_partials = tuple(partials[slot.name]() if slot.name == TARGETS else
                                xp.reshape(partials[slot.name](), classes) for slot in wanted if slot is not None)
        return xp.reshape(loss, classes), residuals + wanted_partials

    def vjp(self, xp: Any, residuals: tuple[Array, ...], cotangent: Array, wanted: Wanted, *,
            consume: bool = False) -> Grads:
        h, p_or_chain, *partials = residuals
        shape = [1] * h.ndim
        shape[self.spec.axis] = -1
        along = xp.reshape(cotangent, tuple(shape))  # one per class, on the class axis of the targets' partial
        grad_p = along * h
        remaining = iter(partials)
        grads = tuple(None if slot is None else slot.reduce(xp, (along if slot.name == TARGETS else cotangent)
                                                           * next(remaining)) for slot in wanted)
        if self.spec.activation == "sigmoid":
            return grad_p * p_or_chain, grads
        p = p_or_chain
        return p * (grad_p - xp.sum(p * grad_p, axis=self.spec.axis, keepdims=True)), grads


@document
def focal_tversky_loss(
    logits: Array, targets: Array, *, a: float = 0.7, b: float = 0.3, gamma: float = 0.75, smooth: float = 1.0,
    axis: int = -1, activation: str = "softmax", ignore_index: int | None = None, reduction: str = "mean",
    weight: Array | float | None = None, from_logits: bool = True,
) -> Array:
    r"""Focal Tversky loss for segmentation (Abraham & Khan, 2019).

    .. math::

        TI_c = \frac{TP_c + s}{TP_c + a\,FN_c + b\,FP_c + s},\qquad L = \sum_c (1 - TI_c)^\gamma

    with ``TP_c = Σ p y``, ``FN_c = Σ (1 − p) y``, ``FP_c = Σ p (1 − y)`` summed over every axis
    but the class axis (the whole batch, as segmentation_models_pytorch's ``dims=(0, 2)``), and
    ``p`` the softmax over ``axis`` or the elementwise sigmoid. ``reduction`` runs over classes:
    "none" gives the C per-class terms, "mean" (default) their mean, "sum" the paper's sum;
    ``weight`` broadcasts to the C classes. The paper writes the exponent as ``1/γ`` with γ = 4/3;
    ours is the exponent itself, 0.75. Defaults a = 0.7 (FN), b = 0.3 (FP), s = 1.

    Args:
        logits: real floating array with the classes along ``axis``.
        targets: integer class indices (shape without ``axis``; ``ignore_index`` pixels are left
            out of every sum) or floating per-class masks of the logits' shape.
        a: the weight of false negatives. Default 0.7.
        b: the weight of false positives. Default 0.3.
        gamma: the exponent γ > 0. Default 0.75.
        smooth: s ≥ 0, added to numerator and denominator. Default 1.
        reduction: over the classes: ``"none"`` (C terms), ``"mean"`` (default) or ``"sum"``.
        weight: per-class weights broadcastable to the C terms. Default None.

    References:
        Abraham & Khan. A Novel Focal Tversky Loss Function with Improved Attention U-Net for
        Lesion Segmentation. ISBI 2019.
    """
    return _plan_tversky(logits, targets, a=a, b=b, gamma=gamma, smooth=smooth, axis=axis, activation=activation,
                         ignore_index=ignore_index, reduction=reduction, weight=weight, from_logits=from_logits).loss()


@plans(focal_tversky_loss)
def _plan_tversky(logits: Array, targets: Array, *, a: Any, b: Any, gamma: Any, smooth: Any, axis: Any,
                  activation: Any, ignore_index: Any, reduction: str, weight: Any, from_logits: bool) -> LossPlan:
    activation = _check_activation(activation)
    sc = prepare_softmax(logits, targets, axis=axis, alpha=None, ignore_index=ignore_index, reduction=reduction,
                         weight=weight, normalizer=None, dense_labels=True)
    spec_args = {name: sc.call.hyper(name, value, low=0.0, high=math.inf, high_open=True, differentiable=True)
                 for name, value in (("a", a), ("b", b), ("gamma", gamma), ("smooth", smooth))}
    xp = sc.call.xp
    mask: tuple[Array, ...] = ()
    if sc.valid is not None:
        mask = (xp.expand_dims(xp.astype(sc.valid, sc.call.dtype), axis=sc.axis),)
    kernel: Any = TverskyKernel(TverskySpec(axis=sc.axis, activation=activation, **spec_args),
                                sc.call.target_slot(sc.dense))
    if not from_logits:
        kernel = FromProbabilities(kernel, activation)
    return LossPlan(sc.call, kernel, aux=mask, loss_shape=(sc.classes,))
