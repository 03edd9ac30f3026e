"""Kernels of the elementwise sigmoid losses, and the planner they share.

Each kernel is ``fn(xp, x, y, spec) -> (loss, dloss/dx, partials)``, elementwise in the logit
``x`` and the (hard or soft) target ``y``; ``partials[name]()`` is the elementwise derivative
w.r.t. the hyperparameter ``name``, and ``partials["targets"]()`` that w.r.t. ``y`` (each computed
only when its gradient is asked for). The spec's
hyperparameters are numbers or arrays (``focal._hyper``); a per-class array broadcasts along the
last axis. They share one ``log1p(exp(−|x|))`` per element (``log σ(±x)``), evaluate every power as
``exp(γ · log …)`` and write ``p − y`` as ``(1 − y)p − y(1 − p)``, so saturated logits and γ < 1
stay finite.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _checks
from ._gamma import check_gamma, flsd53, resolve_binary_gamma
from ._hyper import TARGETS, Partials, is_zero
from ._kernel import Elementwise, FromProbabilities
from ._numerics import (
    held,
    integer_power,
    log_sigmoid_pair,
    neg_log_over_one_minus,
    power,
    small_integer,
    stops_gradients,
    tiny,
)
from ._plan import Call, LossPlan
from .backends._base import Array

Result = tuple[Array, Array, Partials]


def sigmoid_parts(xp: Any, x: Array) -> tuple[Array, Array, Array]:
    """``log1p(exp(−|x|))``, ``p = σ(x)`` and ``1 − p``, each to full relative precision.

    Where the namespace has the framework's own ``sigmoid`` (ours for PyTorch: one vectorised pass
    each, ``1/(1 + exp(∓x))``), ``p`` and ``1 − p`` come from it; an eager ``where`` costs ten
    of those passes on PyTorch's CPU. Otherwise ``1/(1 + e)`` is the larger of ``p`` and ``1 − p``
    and ``e/(1 + e)`` the smaller, from the one ``exp``. Neither form has a ``1 − p`` cancellation.
    """
    minus_abs = xp.abs(x)
    minus_abs *= -1.0  # in place: one fresh array fewer (on PyTorch's CPU each costs its page faults)
    e = xp.exp(minus_abs)
    native = getattr(xp, "sigmoid", None)
    if native is not None:
        return xp.log1p(e), native(x), native(-x)
    larger = 1.0 / (1.0 + e)
    smaller = e * larger
    nonneg = x >= 0.0
    return xp.log1p(e), xp.where(nonneg, larger, smaller), xp.where(nonneg, smaller, larger)


def _parts(xp: Any, x: Array) -> tuple[Array, Array, Array, Array]:
    """``log p, log(1 − p), p, 1 − p`` for ``p = σ(x)``."""
    log_p, log_q = log_sigmoid_pair(xp, x)
    return log_p, log_q, xp.exp(log_p), xp.exp(log_q)


Parts = tuple[Array, Array, Array, Array]


def _held_parts(xp: Any, parts: Parts) -> Parts:
    """:func:`_parts` held constant (``detach_modulator``: what a modulating factor is computed from), each a
    function of the logits alone: ``stop_gradient`` of each where autodiff records the kernel (nothing computed
    again), else ``parts`` themselves."""
    return tuple(held(xp, a) for a in parts) if stops_gradients(xp) else parts


def _bce_value(y: Array, log_p: Array, log_q: Array) -> Array:
    return -(y * log_p + (1.0 - y) * log_q)


def _bce(y: Array, log_p: Array, log_q: Array, p: Array, q: Array) -> tuple[Array, Array]:
    """Binary cross entropy and its derivative ``p − y``, written without cancellation."""
    return _bce_value(y, log_p, log_q), (1.0 - y) * p - y * q


def _log_one_minus_pt(xp: Any, y: Array, log_p: Array, log_q: Array, p: Array, q: Array) -> Array:
    """``log(1 − p_t)``: exact ``log σ(∓x)`` for hard labels; for soft ``y``, ``y(1 − p) + (1 − y)p``
    is at least ``min(y, 1 − y)/2`` and never underflows."""
    soft = xp.log(xp.maximum(y * q + (1.0 - y) * p, tiny(xp, p)))
    return xp.where(y == 1.0, log_q, xp.where(y == 0.0, log_p, soft))


def _bce_parts(xp: Any, x: Array, y: Array, w: Any, *, grad: bool = True, slope: bool = True, hold: bool = False
               ) -> tuple[Array, Any, Array, Any, Any]:
    """``BCE(x, y)`` (``w`` scaling its positive term), its derivative ``p − y``, ``1 − p_t = y(1 − p) + (1 − y)p``,
    ``d(1 − p_t)/dx = (1 − 2y) p (1 − p)`` and, with ``w``, the positive term ``−y log p``.

    Made in an order that keeps few full-size arrays alive at once, each freed once used: on PyTorch's CPU, every
    array alive at the peak is memory the allocator gives back to the system after the call and faults in again on
    the next. In-place updates (an update costs a third of a fresh array there) only of arrays made here from every
    input their operands depend on, so that under ``torch.func.vmap`` the updated array is batched whenever an
    operand is (the caller may update ``dbce`` in place by that rule too). JAX and TensorFlow arrays have no
    in-place operators: there ``a += b`` is ``a = a + b``. Without ``grad`` (the loss alone) ``dbce`` and the
    slope are None; without ``slope`` (a modulator held constant) the slope is. With ``hold``, ``1 − p_t`` is made
    of ``p`` and ``1 − p`` held constant (``focal._numerics.held``; its dependence on ``y`` stays).
    """
    softplus, p, q = sigmoid_parts(xp, x)
    not_y = 1.0 - y
    bce = x * not_y  # x(1 − y) − min(x, 0) + log1p(e^−|x|): exact for 0/1 labels, as BCE-with-logits
    bce -= xp.minimum(x, 0.0)
    bce += softplus
    positive = None if w is None else y * (xp.maximum(-x, 0.0) + softplus)  # −y log p
    del softplus
    d_one_minus_pt: Any = None
    if grad and slope:
        d_one_minus_pt = (not_y - y) * p
        d_one_minus_pt *= q
    negative_p = not_y * p
    positive_q = y * q
    held_one_minus_pt = None
    if hold and stops_gradients(xp):
        held_one_minus_pt = not_y * held(xp, p) + y * held(xp, q)
    del p, q, not_y
    dbce: Any = None
    if grad:
        dbce = negative_p - positive_q  # p − y, without cancellation as p → 0 or 1
    if w is not None:
        bce = bce + (w - 1.0) * positive
        if grad:
            dbce = dbce - (w - 1.0) * positive_q
    if held_one_minus_pt is not None:
        return bce, dbce, held_one_minus_pt, d_one_minus_pt, positive
    one_minus_pt = negative_p  # no longer needed by itself; a sum of two terms >= 0: no cancellation
    one_minus_pt += positive_q
    return bce, dbce, one_minus_pt, d_one_minus_pt, positive


@dataclass(frozen=True)
class FocalSpec:
    alpha: Any  # None, a number or an array
    gamma: Any  # a number, an array (one or one per class) or FLSD53
    epsilon: Any = 0.0  # Poly-1: + ε (1 − p_t)^(γ+1)
    pos_weight: Any = None  # scales the positive term, as BCEWithLogitsLoss's pos_weight
    # the modulating factor computed from the logits held constant (RT-DETR's, timm's): its derivatives w.r.t. the
    # logits, of every order, are 0; w.r.t. γ and the targets they stay. Never with ε ≠ 0 (Poly-1 takes no such
    # option: its added term is a function of p_t alone)
    detach: bool = False


def focal_pt_kernel(xp: Any, x: Array, y: Array, spec: FocalSpec, *, grad: bool = True) -> Result:
    """``α_t (1 − p_t)^γ BCE(x, y) + ε (1 − p_t)^(γ+1)`` (Lin et al.; Poly-1 when ε ≠ 0).

    ``d(1 − p_t)/dx = (1 − 2y) p (1 − p)``. An integer γ (the common 1, 2, 3) given as a number
    raises ``1 − p_t = y(1 − p) + (1 − y)p`` to its power by multiplication: no log, no exp, and the
    sum of two non-negative terms has no cancellation. Any other γ (an array, per-class or adaptive
    γ) is ``exp(γ · log(1 − p_t))``, with ``1 − p_t`` (``σ(∓x)`` for hard labels, to full relative
    precision) floored at the smallest normal, so γ < 1 at saturated logits is finite. ``∂/∂γ`` is
    the loss times ``log(1 − p_t)``; ``∂/∂α = (2y − 1)`` times the unweighted loss; ``∂/∂ε = (1 − p_t)^(γ+1)``.
    ``pos_weight`` w scales BCE's positive term: ``BCE = −(w y log p + (1 − y) log(1 − p))``.
    With ``detach`` the modulator is computed from the logits held constant: the gradient w.r.t. them is
    ``α_t (1 − p_t)^γ dBCE/dx``. Without ``grad``, the loss alone (the gradient None, no partials).
    """
    w = spec.pos_weight
    detach = spec.detach
    bce, dbce, one_minus_pt, slope, positive = _bce_parts(xp, x, y, w, grad=grad, slope=not detach,
                                                          hold=detach and grad)
    gamma, epsilon = spec.gamma, spec.epsilon
    poly = not is_zero(epsilon)
    power = small_integer(gamma)
    log_1m_pt: Any = None
    modulator: Any = None
    focused, dfocused = bce, dbce
    if power:  # d[(1 − p_t)^γ BCE]/dx = (1 − p_t)^(γ−1) ((1 − p_t) dBCE + γ BCE d(1 − p_t)/dx)
        below = integer_power(one_minus_pt, power - 1)  # (1 − p_t)^(γ−1)
        if grad and not detach:
            bce_slope = bce * slope
            bce_slope *= float(power)
            dfocused *= one_minus_pt  # dbce, in place: see _bce_parts
            dfocused += bce_slope
            del bce_slope
            if power > 1:
                dfocused *= below
        modulator = below * one_minus_pt if power > 1 else one_minus_pt
        if grad and detach:
            dfocused *= modulator  # dbce, in place: see _bce_parts
        focused = modulator * bce
        del below
    elif power is None:
        # 1 − p_t floored at the smallest normal: only where it underflows, and there the loss and its gradient
        # carry a factor that underflows too (BCE ≈ 1 − p_t for hard labels), so they are 0 either way
        floored = xp.maximum(one_minus_pt, tiny(xp, x))
        log_1m_pt = xp.log(floored)
        gamma = resolve_binary_gamma(xp, gamma, log_1m_pt)
        modulator = xp.exp(gamma * log_1m_pt)
        if grad and detach:
            dfocused = modulator * dbce
        elif grad:
            # d(1 − p_t)^γ/dx = γ (1 − p_t)^γ · d(1 − p_t)/dx / (1 − p_t): no second exp, and no 0/0 once 1 − p_t
            # underflows (the slope, a product with 1 − p_t's factor, underflows with it)
            dmodulator = xp.divide(modulator * slope, floored)  # xp.divide: JAX's Hessian, _jax_namespace
            dmodulator *= gamma
            dfocused = modulator * dbce
            dfocused += bce * dmodulator
            del dmodulator
        del floored
        focused = modulator * bce
    del bce, dbce
    if not poly:
        del slope
    loss, dloss, alpha_t = focused, dfocused, 1.0
    if spec.alpha is not None:
        alpha_t = (2.0 * spec.alpha - 1.0) * y  # α y + (1 − α)(1 − y)
        alpha_t += 1.0 - spec.alpha
        if grad and isinstance(spec.alpha, (int, float)):  # α_t then depends on y only: in place
            dloss *= alpha_t
        elif grad:
            dloss = alpha_t * dfocused
        del dfocused
        loss = alpha_t * focused
    weighted: Any = 0.0
    if poly:  # Poly-1: ε (1 − p_t)^(γ+1), derivative ε (γ + 1)(1 − p_t)^γ d(1 − p_t)/dx
        weighted = one_minus_pt if modulator is None else modulator * one_minus_pt
        loss = loss + epsilon * weighted
        if grad:
            dloss = dloss + epsilon * (gamma + 1.0) * (slope if modulator is None else modulator * slope)
    if not grad:
        return loss, None, {}
    partials = {
        "alpha": lambda: (2.0 * y - 1.0) * focused,
        "gamma": lambda: (alpha_t * focused + epsilon * weighted) * log_1m_pt,  # γ an array: the exp path
        "epsilon": lambda: weighted,
        "pos_weight": lambda: alpha_t * (1.0 if modulator is None else modulator) * positive,
        TARGETS: lambda: _focal_pt_dy(xp, x, y, spec),
    }
    return loss, dloss, partials


def _focal_pt_dy(xp: Any, x: Array, y: Array, spec: FocalSpec) -> Array:
    """``∂/∂y`` of :func:`focal_pt_kernel`'s loss, recomputed from ``x`` and ``y`` (asked for rarely: the kernel
    keeps none of its arrays for it). With ``B = BCE``, ``∂B/∂y = log(1 − p) − w log p``, ``M = (1 − p_t)^γ`` and
    ``∂(1 − p_t)/∂y = (1 − p) − p``: ``α_t (∂M/∂y B + M ∂B/∂y) + (2α − 1) M B + ε (γ + 1) M ∂(1 − p_t)/∂y``
    (FLSD-53's choice of γ has no gradient, as w.r.t. the logits)."""
    parts = _parts(xp, x)
    log_p, log_q, p, q = _held_parts(xp, parts) if spec.detach else parts  # the modulator's
    w: Any = 1.0 if spec.pos_weight is None else spec.pos_weight
    bce = -(w * y * parts[0] + (1.0 - y) * parts[1])
    dbce = parts[1] - w * parts[0]
    one_minus_pt = y * q + (1.0 - y) * p
    slope = q - p
    gamma: Any = spec.gamma
    power = small_integer(gamma)
    if power is not None:
        modulator: Any = integer_power(one_minus_pt, power)
        dmodulator: Any = 0.0 if power == 0 else float(power) * integer_power(one_minus_pt, power - 1) * slope
    else:  # floored as in the kernel: where 1 − p_t underflows, B and ∂B/∂y's product with M underflow too
        floored = xp.maximum(one_minus_pt, tiny(xp, x))
        log_1m_pt = xp.log(floored)
        gamma = resolve_binary_gamma(xp, gamma, log_1m_pt)
        modulator = xp.exp(gamma * log_1m_pt)
        dmodulator = gamma * xp.divide(modulator * slope, floored)
    out = dmodulator * bce + modulator * dbce
    if spec.alpha is not None:
        out = (spec.alpha * y + (1.0 - spec.alpha) * (1.0 - y)) * out + (2.0 * spec.alpha - 1.0) * modulator * bce
    if not is_zero(spec.epsilon):
        out = out + spec.epsilon * (gamma + 1.0) * modulator * slope
    return out


def _weighted(y: Any, x: Array) -> Array:
    """``y x``, without a product where ``y`` is the number 1."""
    return x if isinstance(y, float) and y == 1.0 else y * x


def _positive_term(xp: Any, y: Any, gamma: Any, log_p: Array, log_q: Array, p: Array | None = None,
                   q: Array | None = None, *, grad: bool = True, factor: Parts | None = None) -> tuple[Array, Any]:
    """``−y (1 − p)^γ log p`` and its derivative ``−y (1 − p)^γ ((1 − p) − γ p log p)`` (None without ``grad``;
    with it, ``p`` and ``q = 1 − p`` as the caller has them: ``(1 − p)^γ`` by multiplication for a whole-number γ).
    With ``factor`` (:func:`_held_parts`) ``(1 − p)^γ`` is computed from it, a constant: the derivative is
    ``−y (1 − p)^γ (1 − p)``."""
    if factor is not None:
        modulated = _weighted(y, power(xp, factor[3], lambda: factor[1], gamma))
        loss = -(modulated * log_p)
        return loss, (-(modulated * q) if grad else None)
    modulated = _weighted(y, xp.exp(gamma * log_q) if q is None else power(xp, q, lambda: log_q, gamma))
    loss = -(modulated * log_p)
    if not grad:
        return loss, None
    return loss, -(modulated * (q - gamma * (p * log_p)))


def _negative_term(xp: Any, y: Any, gamma: Any, log_p: Array, log_q: Array, p: Array | None = None,
                   q: Array | None = None, *, grad: bool = True, factor: Parts | None = None) -> tuple[Array, Any]:
    """``−(1 − y) p^γ log(1 − p)`` and its derivative ``(1 − y) p^γ (p − γ (1 − p) log(1 − p))`` (None without
    ``grad``; with it, ``p`` and ``q = 1 − p``). With ``factor``, ``p^γ`` a constant computed from it: the
    derivative is ``(1 − y) p^γ p``."""
    if factor is not None:
        modulated = _weighted(1.0 - y, power(xp, factor[2], lambda: factor[0], gamma))
        loss = -(modulated * log_q)
        return loss, (modulated * p if grad else None)
    modulated = _weighted(1.0 - y, xp.exp(gamma * log_p) if p is None else power(xp, p, lambda: log_p, gamma))
    loss = -(modulated * log_q)
    if not grad:
        return loss, None
    return loss, modulated * (p - gamma * (q * log_q))


def focal_split_kernel(xp: Any, x: Array, y: Array, spec: FocalSpec, *, grad: bool = True) -> Result:
    """``−α y (1 − p)^γ log p − (1 − α)(1 − y) p^γ log(1 − p)`` (seed 003's L_fl, seed 004, kornia); without
    ``grad`` the loss alone. With ``detach`` both factors are computed from the logits held constant."""
    if grad or spec.gamma is flsd53:
        log_p, log_q, p, q = _parts(xp, x)
    else:  # p and 1 − p are the gradient's
        (log_p, log_q), p, q = log_sigmoid_pair(xp, x), None, None
    factor = _held_parts(xp, (log_p, log_q, p, q)) if spec.detach and grad else None
    gamma = spec.gamma
    if gamma is flsd53:  # only FLSD-53 reads log(1 − p_t), to choose γ
        gamma = resolve_binary_gamma(xp, gamma, _log_one_minus_pt(xp, y, log_p, log_q, p, q))
    pos, dpos = _positive_term(xp, y, gamma, log_p, log_q, p, q, grad=grad, factor=factor)
    neg, dneg = _negative_term(xp, y, gamma, log_p, log_q, p, q, grad=grad, factor=factor)
    f_log_p, f_log_q = (log_p, log_q) if factor is None else factor[:2]
    a_pos, a_neg = (1.0, 1.0) if spec.alpha is None else (spec.alpha, 1.0 - spec.alpha)
    if not grad:
        return a_pos * (pos if spec.pos_weight is None else spec.pos_weight * pos) + a_neg * neg, None, {}
    unweighted_pos = pos
    if spec.pos_weight is not None:
        pos, dpos = spec.pos_weight * pos, spec.pos_weight * dpos
    w = 1.0 if spec.pos_weight is None else spec.pos_weight
    partials = {"alpha": lambda: pos - neg, "gamma": lambda: a_pos * pos * f_log_q + a_neg * neg * f_log_p,
                "pos_weight": lambda: a_pos * unweighted_pos,
                # linear in y: the loss at y = 1 less that at y = 0
                TARGETS: lambda: (a_pos * w * _positive_term(xp, 1.0, gamma, log_p, log_q, grad=False,
                                                             factor=factor)[0]
                                  - a_neg * _negative_term(xp, 0.0, gamma, log_p, log_q, grad=False,
                                                           factor=factor)[0])}
    return a_pos * pos + a_neg * neg, a_pos * dpos + a_neg * dneg, partials


@dataclass(frozen=True)
class StarSpec:
    gamma: Any
    beta: Any
    alpha: Any


def focal_star_kernel(xp: Any, x: Array, y: Array, spec: StarSpec, *, grad: bool = True) -> Result:
    """FL* = ``−log σ(s) / γ`` with ``s = γ x_t + β``, ``x_t = x (2y − 1)``, times ``α_t`` if given.

    ``∂/∂β = −σ(−s)/γ``, ``∂/∂γ = log σ(s)/γ² − x_t σ(−s)/γ`` (times ``α_t``), ``∂/∂α = (2y − 1)`` times
    the unweighted loss, ``∂/∂y = −2 α_t x σ(−s) + (2α − 1)`` times the unweighted loss. Without ``grad``, the loss
    alone."""
    sign = 2.0 * y - 1.0
    gamma = spec.gamma
    log_s, log_not_s = log_sigmoid_pair(xp, gamma * x * sign + spec.beta)
    loss, alpha_t = -log_s / gamma, 1.0
    unweighted = loss
    if spec.alpha is not None:
        alpha_t = spec.alpha * y + (1.0 - spec.alpha) * (1.0 - y)
        loss = alpha_t * loss
    if not grad:
        return loss, None, {}
    not_s = xp.exp(log_not_s)
    dloss = _weighted(alpha_t, -sign * not_s)
    partials = {
        "alpha": lambda: sign * unweighted,
        "beta": lambda: -alpha_t * not_s / gamma,
        "gamma": lambda: alpha_t * (log_s / (gamma * gamma) - x * sign * not_s / gamma),
        # ∂s/∂y = 2γx; ∂α_t/∂y = 2α − 1
        TARGETS: lambda: -2.0 * alpha_t * x * not_s + (0.0 if spec.alpha is None else
                                                        (2.0 * spec.alpha - 1.0) * unweighted),
    }
    return loss, dloss, partials


@dataclass(frozen=True)
class MarginSpec:
    margin: Any


def hard_truncated_kernel(xp: Any, x: Array, y: Array, spec: MarginSpec, *, grad: bool = True) -> Result:
    """``λ · BCE`` with ``λ = 0`` where ``p_t > m`` (already right by the margin), else 1; no
    gradient through λ (seed 003's L*), neither w.r.t. x nor y, and none w.r.t. m (a step).
    ``∂BCE/∂y = −x``. Without ``grad``, the loss alone."""
    log_p, log_q, p, q = _parts(xp, x)
    drop = (y * p + (1.0 - y) * q) > spec.margin  # written so that a NaN keeps its element (NaN)
    if not grad:
        return xp.where(drop, 0.0, _bce_value(y, log_p, log_q)), None, {}
    loss, dloss = _bce(y, log_p, log_q, p, q)
    return xp.where(drop, 0.0, loss), xp.where(drop, 0.0, dloss), {TARGETS: lambda: xp.where(drop, 0.0, -x)}


@dataclass(frozen=True)
class SoftSpec:
    k: Any


def soft_truncated_kernel(xp: Any, x: Array, y: Array, spec: SoftSpec, *, grad: bool = True) -> Result:
    """``−y σ(−Kx) log σ(x) − (1 − y) σ(Kx) log σ(−x)`` (seed 003's L**);
    ``∂/∂K = x σ(Kx) σ(−Kx) (y log σ(x) − (1 − y) log σ(−x))``, ``∂/∂y = σ(Kx) log σ(−x) − σ(−Kx) log σ(x)``.
    Without ``grad``, the loss alone."""
    log_p, log_q = log_sigmoid_pair(xp, x)
    log_a, log_b = log_sigmoid_pair(xp, spec.k * x)  # a = σ(Kx), b = σ(−Kx)
    a, b = xp.exp(log_a), xp.exp(log_b)
    loss = -y * b * log_p - (1.0 - y) * a * log_q
    if not grad:
        return loss, None, {}
    p, q = xp.exp(log_p), xp.exp(log_q)
    ab = xp.exp(log_a + log_b)
    kab = spec.k * ab
    dloss = y * (kab * log_p - b * q) + (1.0 - y) * (a * p - kab * log_q)
    return loss, dloss, {"k": lambda: x * ab * (y * log_p - (1.0 - y) * log_q), TARGETS: lambda: a * log_q - b * log_p}


@dataclass(frozen=True)
class AsymmetricSpec:
    gamma_pos: Any
    gamma_neg: Any
    clip: Any
    detach: bool = False  # both focusing weights computed from the logits held constant (FocalSpec.detach)


def asymmetric_kernel(xp: Any, x: Array, y: Array, spec: AsymmetricSpec, *, grad: bool = True) -> Result:
    """ASL: ``−y (1 − p)^γ⁺ log p − (1 − y) p_m^γ⁻ log(1 − p_m)``, ``p_m = max(p − m, 0)``.

    The gradient flows through both focusing weights. ``p_m^(γ−1) log(1 − p_m)`` is evaluated as
    ``−p_m^γ · (−log(1 − p_m))/p_m``, finite as ``p_m → 0``. ``∂/∂γ⁺`` is the positive term times
    ``log(1 − p)``, ``∂/∂γ⁻`` the negative one times ``log p_m``, and ``∂/∂m = −∂/∂p_m`` where ``p_m > 0``.
    With ``detach`` both focusing weights are computed from the logits held constant (timm's
    ``disable_torch_grad_focal_loss``): the gradient is ``−y (1 − p)^γ⁺ (1 − p) + (1 − y) p_m^γ⁻ p (1 − p)/(1 − p_m)``.
    Without ``grad``, the loss alone.
    """
    log_p, log_q, p, q = _parts(xp, x)
    gamma_neg = spec.gamma_neg
    factor = _held_parts(xp, (log_p, log_q, p, q)) if spec.detach and grad else None
    pos, dpos = _positive_term(xp, y, spec.gamma_pos, log_p, log_q, p, q, grad=grad, factor=factor)
    m = spec.clip
    if is_zero(m):
        shifted, log_1m_shifted = p, log_q
        q_share: Any = 1.0  # q / (1 − p_m) = q / q, which is 0/0 once q underflows
    else:
        shifted = xp.maximum(p - m, 0.0)
        log_1m_shifted = xp.log(xp.minimum(q + m, 1.0))
        q_share = xp.where(q + m > 0.0, q / xp.maximum(q + m, tiny(xp, x)), 1.0)  # an array m may be 0
    base = shifted  # the weight's p_m: with detach, of the logits held constant (the same values)
    if factor is not None and factor[2] is not p:
        base = factor[2] if is_zero(m) else xp.maximum(factor[2] - m, 0.0)
    active = shifted > 0.0

    def log_safe() -> Array:  # log p_m where p_m > 0
        return xp.log(xp.where(active, base, 1.0))

    whole = small_integer(gamma_neg)
    # p_m^γ⁻, 0 where p_m = 0: a product for a whole γ⁻ >= 1 (timm's 4), which is 0 there by itself
    weight = integer_power(base, whole) if whole else xp.where(active, xp.exp(gamma_neg * log_safe()), 0.0)
    not_y_weight = (1.0 - y) * weight
    neg = -(not_y_weight * log_1m_shifted)
    if not grad:
        return pos + neg, None, {}

    def through_weight() -> Array:  # (1 − y) p_m^γ γ (−log(1 − p_m))/p_m, finite as p_m → 0
        ratio = neg_log_over_one_minus(xp, xp.where(active, log_1m_shifted, -1.0))
        if base is not shifted:  # the log the loss's, the p_m dividing it the weight's (the same values)
            ratio = ratio * xp.where(active, shifted / xp.where(active, base, 1.0), 1.0)
        return not_y_weight * (gamma_neg * ratio)

    # d neg / d p_m = (1 − y) p_m^γ (γ (−log(1 − p_m))/p_m + 1/(1 − p_m)), the first term the weight's (none with
    # detach), and dp_m/dx = p q: 0 where p_m = 0, as the weight is there (every factor finite)
    per_shift = through_weight() if factor is None else None
    dneg = p * _weighted(q_share, not_y_weight) if per_shift is None else \
        p * (per_shift * q + _weighted(q_share, not_y_weight))
    partials = {
        "gamma_pos": lambda: pos * (log_q if factor is None else factor[1]),
        "gamma_neg": lambda: neg * log_safe(),
        "clip": lambda: xp.where(active, -((through_weight() if per_shift is None else per_shift)
                                           + not_y_weight / xp.exp(log_1m_shifted)), 0.0),
        # linear in y: −(1 − p)^γ⁺ log p + p_m^γ⁻ log(1 − p_m)
        TARGETS: lambda: (_positive_term(xp, 1.0, spec.gamma_pos, log_p, log_q, grad=False, factor=factor)[0]
                          + weight * log_1m_shifted),
    }
    return pos + neg, dpos + dneg, partials


@dataclass(frozen=True)
class QualitySpec:
    beta: Any


def quality_focal_kernel(xp: Any, x: Array, y: Array, spec: QualitySpec, *, grad: bool = True) -> Result:
    """QFL: ``|y − σ(x)|^β · BCE(x, y)`` with soft (IoU) targets ``y``; ``∂/∂β`` is the loss times
    ``log |y − σ(x)|``, ``∂/∂y = β |y − p|^(β−1) sign(y − p) BCE − |y − p|^β x``. An integer β ≥ 2 given as a
    number (the paper's 2) is a product, whose derivatives stay exact where ``p = y``. Without ``grad``, the loss
    alone."""
    log_p, log_q, p, q = _parts(xp, x)
    bce, dbce = _bce(y, log_p, log_q, p, q)
    power = small_integer(spec.beta)
    if power is not None and power >= 2:  # β = 2, the paper's: (p − y)², by multiplication, smooth at p = y too
        below = integer_power(xp.abs(dbce), power - 2)  # |p − y|^(β−2)
        weight = below * dbce * dbce
        if not grad:
            return weight * bce, None, {}
        dweight = float(power) * below * dbce * xp.exp(log_p + log_q)
    log_gap = xp.log(xp.maximum(xp.abs(dbce), tiny(xp, x)))  # |y − p| = |p − y|
    if power is None or power < 2:
        weight = xp.exp(spec.beta * log_gap)
        if not grad:
            return weight * bce, None, {}
        dweight = spec.beta * xp.sign(dbce) * xp.exp((spec.beta - 1.0) * log_gap + log_p + log_q)
    loss = weight * bce
    partials = {"beta": lambda: loss * log_gap,
                TARGETS: lambda: -spec.beta * xp.sign(dbce) * xp.exp((spec.beta - 1.0) * log_gap) * bce - weight * x}
    return loss, weight * dbce + bce * dweight, partials


@dataclass(frozen=True)
class VarifocalSpec:
    alpha: Any
    gamma: Any
    detach: bool = False  # the negatives' weight α p^γ computed from the logits held constant (FocalSpec.detach)


def varifocal_kernel(xp: Any, x: Array, y: Array, spec: VarifocalSpec, *, grad: bool = True) -> Result:
    """VFL: ``q · BCE(x, q)`` where ``q > 0``; ``−α p^γ log(1 − p)`` where ``q = 0`` (whose ``∂/∂α`` is
    ``−p^γ log(1 − p)`` and ``∂/∂γ`` the term times ``log p``).

    ``∂/∂q = BCE(x, q) − q x``; at ``q = 0``, where the loss jumps between its two branches, it is that
    of the ``q > 0`` branch (its limit as ``q → 0+``, ``BCE(x, 0)``). With ``detach`` the negatives' weight is
    computed from the logits held constant (RT-DETR's, D-FINE's): their gradient is ``α p^γ p``. Without ``grad``, the
    loss alone."""
    negative = y == 0.0  # (not y > 0, which would send a NaN target to the finite negative term)
    if not grad:  # p and 1 − p are the gradient's
        log_p, log_q = log_sigmoid_pair(xp, x)
        neg = _negative_term(xp, 0.0, spec.gamma, log_p, log_q, grad=False)[0]
        return xp.where(negative, spec.alpha * neg, y * _bce_value(y, log_p, log_q)), None, {}
    log_p, log_q, p, q = _parts(xp, x)
    bce, dbce = _bce(y, log_p, log_q, p, q)
    factor = _held_parts(xp, (log_p, log_q, p, q)) if spec.detach else None
    neg, dneg = _negative_term(xp, 0.0, spec.gamma, log_p, log_q, p, q, factor=factor)
    f_log_p = log_p if factor is None else factor[0]
    partials = {"alpha": lambda: xp.where(negative, neg, 0.0),
                "gamma": lambda: xp.where(negative, spec.alpha * neg * f_log_p, 0.0),
                TARGETS: lambda: bce - y * x}
    return xp.where(negative, spec.alpha * neg, y * bce), xp.where(negative, spec.alpha * dneg, y * dbce), partials


def plan_binary(
    kernel_fn: Any, make_spec: Callable[[Call], Any], logits: Array, targets: Array, *, reduction: str, weight: Any,
    normalizer: Any, from_logits: bool = True, label_smoothing: Any = 0.0, ignore_index: Any = None,
) -> LossPlan:
    """The plan of an elementwise sigmoid loss: targets of the logits' shape, floating, integer or bool (integer
    ones hold 0/1 labels), read as floats of the compute dtype; float targets get a gradient (``Call.target_slot``).

    ``make_spec(call)`` checks the loss's hyperparameters against the call (numbers, or arrays of the
    logits' library: ``Call.hyper``) and gives the kernel's spec. Elements whose target equals
    ``ignore_index`` give 0 and are left out of the mean's count.
    """
    call = Call(logits, targets, reduction=reduction, weight=weight, normalizer=normalizer)
    xp = call.xp
    spec = make_spec(call)
    targets = call.targets
    _checks.check_shape("targets", targets.shape, call.shape, "sigmoid losses take one target per logit")
    if not xp.isdtype(targets.dtype, ("real floating", "integral", "bool")):
        raise TypeError(f"targets must be floating (hard 0/1 or soft labels in [0, 1]), integer or bool (0/1 labels), "
                        f"got {targets.dtype}")
    y = call.cast(targets)
    valid = None
    if ignore_index is not None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Real):
            raise TypeError(f"ignore_index must be a number or None, got {ignore_index!r}")
        valid = y != ignore_index
        y = xp.where(valid, y, 0.0)
    if not xp.isdtype(targets.dtype, "bool"):
        expected = ("labels in [0, 1] (hard 0/1 or soft)" if xp.isdtype(targets.dtype, "real floating")
                    else "0 or 1 (integer targets are hard labels; soft labels are floats)")
        if valid is not None:
            expected += f", or ignore_index={ignore_index!r}"
        y = call.within("targets", y, 0.0, 1.0, expected)
    # smooths the targets before the kernel: its gradient comes through the targets' (Call.target_slot)
    smoothing = call.hyper("label_smoothing", label_smoothing, low=0.0, high=1.0, high_open=True, kernel=False,
                           differentiable=True)
    if not is_zero(smoothing):
        y = y * (1.0 - smoothing) + smoothing / 2.0
    kernel: Any = Elementwise(kernel_fn, spec, masked=valid is not None, targets=call.target_slot(y))
    if not from_logits:
        kernel = FromProbabilities(kernel, "sigmoid")
    aux = () if valid is None else (valid,)
    return LossPlan(call, kernel, aux=aux, loss_shape=call.shape, valid=valid)


def binary_pos_weight(call: Call, pos_weight: Any) -> Any:
    """``pos_weight`` (as ``torch.nn.BCEWithLogitsLoss``): None, a number, or an array ``>= 0`` that
    broadcasts against the logits (one per class along the last axis: shape ``(C,)``), with a gradient."""
    if pos_weight is None:
        return None
    if isinstance(pos_weight, (list, tuple)):
        numbers_ = [_checks.check_number(f"pos_weight[{i}]", v, low=0.0, high=math.inf, high_open=True)
                    for i, v in enumerate(pos_weight)]
        pos_weight = call.from_host(numbers_, call.dtype)
    elif not hasattr(pos_weight, "shape") or len(pos_weight.shape) == 0:
        return call.hyper("pos_weight", pos_weight, low=0.0, high=math.inf, high_open=True, differentiable=True)
    return call.broadcast_param("pos_weight", pos_weight, differentiable=True)


def binary_gamma(call: Call, gamma: Any, *, differentiable: bool = True) -> Any:
    """γ of a sigmoid loss: a number, an array, ``flsd53`` or a per-class vector along the last axis."""
    classes = call.shape[-1] if call.shape else None
    return check_gamma(call, gamma, classes, axis=max(len(call.shape) - 1, 0), differentiable=differentiable)


def check_alpha_scalar(call: Call, alpha: Any, *, differentiable: bool = True) -> Any:
    return None if alpha is None else call.hyper("alpha", alpha, low=0.0, high=1.0, differentiable=differentiable)


@dataclass(frozen=True)
class RowSumSpec:
    """An elementwise kernel summed over the class axis: one loss per row (seed 004's per-sample sum)."""

    fn: Any
    inner: Any
    axis: int


def row_sum_kernel(xp: Any, x: Array, y: Array, spec: RowSumSpec, *, grad: bool = True) -> Result:
    loss, dloss, partials = spec.fn(xp, x, y, spec.inner, grad=grad)
    return xp.sum(loss, axis=spec.axis), dloss, partials
