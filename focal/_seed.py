"""The seeds' losses: focal loss with explicit negative terms (seed 004), the hard- and
soft-truncated losses (seed 003), and FL* (the RetinaNet paper's appendix)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ._binary import (
    FocalSpec,
    MarginSpec,
    RowSumSpec,
    SoftSpec,
    StarSpec,
    _weighted,
    check_alpha_scalar,
    focal_split_kernel,
    focal_star_kernel,
    hard_truncated_kernel,
    plan_binary,
    row_sum_kernel,
    soft_truncated_kernel,
)
from ._categorical import Lazy, Terms, TermsOut, prepare_softmax, target_is
from ._docs import document
from ._hyper import TARGETS
from ._kernel import Elementwise, FromProbabilities
from ._numerics import log_sigmoid_pair, power, tiny
from ._plan import LossPlan, plans
from ._softmax import FocalTerms, focal_terms
from .backends._base import Array

ACTIVATIONS = ("sigmoid", "softmax")


def _check_activation(activation: Any) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return activation


@dataclass(frozen=True)
class NegativesParams:
    alpha: Any
    gamma: Any



def negatives_terms(xp: Any, t: Terms, params: NegativesParams, *, grad: bool = True) -> TermsOut:
    """Per class: ``−α q (1 − p)^γ log p − (1 − α)(1 − q) p^γ log(1 − p)`` with ``p = softmax(z)``;
    ``∂/∂α`` is the positive term over α minus the negative one over ``1 − α``, ``∂/∂γ`` each term
    times the log of its own base, ``∂/∂q = −α (1 − p)^γ log p + (1 − α) p^γ log(1 − p)``. Without ``grad``, f
    alone. A target given as the number 0 or 1 (integer labels) computes its one term alone."""
    a_pos, a_neg = (1.0, 1.0) if params.alpha is None else (params.alpha, 1.0 - params.alpha)
    g, q = params.gamma, t.target
    u_safe = Lazy(lambda: xp.maximum(t.u, math.log(tiny(xp, t.u))))
    f: Any = None
    a: Any = None
    b: Any = None
    if not target_is(q, 0.0):  # the positive term: α q (1 − p)^γ
        m = power(xp, t.one_minus_p, t.log1m_p, g)
        wp_m = _weighted(q if params.alpha is None else a_pos * q, m)
        # a class of no positive weight adds exactly 0, even where log p = -inf (there M = 1: wp_m is 0 only with wp)
        if isinstance(wp_m, (int, float)):  # a target given as the number 1, γ = 0: the weight is a number too
            positive_u = t.u if wp_m != 0.0 else 0.0
        else:
            positive_u = xp.where(wp_m != 0.0, t.u, 0.0)
        f = -(wp_m * positive_u)
    if not target_is(q, 1.0):  # the negative term: (1 − α)(1 − q) p^γ
        not_q = 1.0 - q
        pg = power(xp, t.p, u_safe, g)
        wn_pg = _weighted(not_q if params.alpha is None else a_neg * not_q, pg)
        neg_v = wn_pg * t.v
        f = -neg_v if f is None else f - neg_v
    if not grad:
        return TermsOut(f, 0.0, 0.0, 0.0)
    if not target_is(q, 0.0):
        a, b = -wp_m, -((g * wp_m) * u_safe())
    if not target_is(q, 1.0):
        a = (-g) * neg_v if a is None else a - g * neg_v
        b = -wn_pg if b is None else b - wn_pg
    # E = B p/(1 − p), with p/(1 − p) <= 1 for every class but a dominant one (p > 1/2), whose E the kernel never
    # reads (it overflows there): 1 in the denominator there keeps the branch not taken finite (a where, not a clamp
    # at 1/2, which a class at p = 1/2 reaches: JAX's Hessian would halve its derivative there)
    odds = t.p / xp.where(t.p > 0.5, 1.0, t.one_minus_p)
    e = b * odds

    def alpha_partial() -> Array:
        if target_is(q, 0.0):
            pos: Any = 0.0
        else:
            pos = -_weighted(q, m) * (t.u if isinstance(q, float) else xp.where(q != 0.0, t.u, 0.0))
        return pos if target_is(q, 1.0) else pos + _weighted(not_q, pg) * t.v

    def gamma_partial() -> Array:
        pos = 0.0 if target_is(q, 0.0) else -(wp_m * positive_u * t.v)
        return pos if target_is(q, 1.0) else pos - neg_v * u_safe()

    partials = {"alpha": alpha_partial, "gamma": gamma_partial}
    if not isinstance(q, float):  # dense targets, which may want their own gradient (both terms computed)
        partials[TARGETS] = lambda: -a_pos * m * t.u + a_neg * pg * t.v
    return TermsOut(f, a, b, e, partials=partials)


# −(1 − α)(1 − q) p^γ log(1 − p) needs log(1 − p) of a dominant class past the smallest normal (ClassKernel)
negatives_terms.reads_log1m_p = True  # type: ignore[attr-defined]
negatives_terms.loss_only = True  # type: ignore[attr-defined]  # takes grad=False
# B does not vanish as p → 1, so E = B p/(1 − p) overflows at a dominant class: ClassKernel leaves it out of its sums
negatives_terms.dominant_e_unbounded = True  # type: ignore[attr-defined]


@document
def focal_loss_with_negatives(
    logits: Array, targets: Array, *, alpha: float | None = 0.25, gamma: float = 2.0, activation: str = "softmax",
    axis: int = -1, reduction: str = "mean", weight: Array | float | None = None,
    normalizer: Array | float | None = None, label_smoothing: float = 0.0, from_logits: bool = True,
) -> Array:
    r"""Focal loss with explicit negative terms (seed 004's "Modified CE + FocalLoss").

    .. math::

        L = -\Big[\alpha \sum_c q_c (1-\hat y_c)^\gamma \log \hat y_c
              + (1-\alpha) \sum_c (1-q_c)\,\hat y_c^\gamma \log(1-\hat y_c)\Big]

    per row, with ``ŷ = softmax(z)`` (``activation="softmax"``) or ``ŷ = σ(z)`` (``"sigmoid"``,
    which is :func:`sigmoid_focal_loss` with ``form="split"`` summed over the class axis and gave
    seed 004 its best mAP). ``q`` is the one-hot of integer labels or dense (soft, multi-label)
    targets of the logits' shape. Seed 004 adds ``eps = 1e-7`` inside its logs; we do not need to.

    Args:
        targets: integer class indices of the logits' shape without ``axis``, or dense (one-hot, soft or
            multi-label) targets in [0, 1] of the logits' shape.
        alpha: weight of the positive terms in [0, 1] (negatives get ``1 − α``); None: both 1. Default 0.25.
        gamma: ``γ ≥ 0``. Default 2.
        activation: ``"softmax"`` (default) or ``"sigmoid"``, giving ŷ.
        reduction: ``"none"`` (per row), ``"mean"`` (default, over rows) or ``"sum"``.

    References:
        Seed 004 (lvsolo, "Focal Loss在分类loss中的应用", 2024); Lin et al., ICCV 2017.
    """
    return _plan_negatives(logits, targets, alpha=alpha, gamma=gamma, activation=activation, axis=axis,
                           reduction=reduction, weight=weight, normalizer=normalizer,
                           label_smoothing=label_smoothing, from_logits=from_logits).loss()


@plans(focal_loss_with_negatives)
def _plan_negatives(logits: Array, targets: Array, *, alpha: Any, gamma: Any, activation: Any, axis: Any,
                    reduction: str, weight: Any, normalizer: Any, label_smoothing: Any, from_logits: bool) -> LossPlan:
    activation = _check_activation(activation)
    sc = prepare_softmax(logits, targets, axis=axis, alpha=None, label_smoothing=label_smoothing,
                         reduction=reduction, weight=weight, normalizer=normalizer,
                         every_class=activation == "softmax", dense_labels=activation == "sigmoid")
    alpha = check_alpha_scalar(sc.call, alpha)
    gamma = sc.call.hyper("gamma", gamma, low=0.0, high=math.inf, high_open=True, differentiable=True)
    if activation == "softmax":
        return sc.plan(negatives_terms, NegativesParams(alpha, gamma), from_logits=from_logits)
    spec = RowSumSpec(focal_split_kernel, FocalSpec(alpha=alpha, gamma=gamma), sc.axis)
    kernel: Any = Elementwise(row_sum_kernel, spec, axis=sc.axis, targets=sc.call.target_slot(sc.dense))
    if not from_logits:
        kernel = FromProbabilities(kernel, "sigmoid")
    shape = tuple(s for i, s in enumerate(sc.call.shape) if i != sc.axis)
    return LossPlan(sc.call, kernel, aux=(), loss_shape=shape)


@document
def hard_truncated_loss(
    logits: Array, targets: Array, *, margin: float = 0.5, activation: str = "sigmoid", axis: int = -1,
    ignore_index: int | None = None, reduction: str = "mean", weight: Array | float | None = None,
    normalizer: Array | float | None = None, from_logits: bool = True,
) -> Array:
    r"""Hard-truncated cross entropy (seed 003's L*): ``λ · CE`` with λ = 0 where the sample is
    already right by the margin, else 1, and no gradient through λ.

    .. math::

        L^*(x, y) = \lambda\,\mathrm{CE}(x, y),\qquad
        \lambda = \begin{cases} 0 & p_t > m \\ 1 & \text{otherwise} \end{cases}

    Sigmoid (elementwise): λ = 0 where ``y = 1, p > m`` or ``y = 0, p < 1 − m`` (generally
    ``p_t > m``). Softmax (per row): λ = 0 where ``p_t > m``. Default ``m = 0.5``: "a positive above
    0.5 or a negative below 0.5 is not updated". Seed 003 notes it trains slowly, since nothing
    tells the model to *keep* a sample above the margin; :func:`soft_truncated_loss` fixes that.

    Args:
        margin: m in [0, 1]. Default 0.5.

    References:
        Su Jianlin, "何恺明大神的「Focal Loss」，如何更好地理解？" (seed 003), 2017.
    """
    return _plan_hard_truncated(logits, targets, margin=margin, activation=activation, axis=axis,
                                ignore_index=ignore_index, reduction=reduction, weight=weight,
                                normalizer=normalizer, from_logits=from_logits).loss()


@plans(hard_truncated_loss)
def _plan_hard_truncated(logits: Array, targets: Array, *, margin: Any, activation: Any, axis: Any, ignore_index: Any,
                         reduction: str, weight: Any, normalizer: Any, from_logits: bool) -> LossPlan:
    def checked(call: Any) -> Any:
        return call.hyper("margin", margin, low=0.0, high=1.0)  # no gradient: λ is a step in m

    if _check_activation(activation) == "sigmoid":
        return plan_binary(hard_truncated_kernel, lambda call: MarginSpec(checked(call)), logits, targets,
                           reduction=reduction, weight=weight, normalizer=normalizer, from_logits=from_logits,
                           ignore_index=ignore_index)
    sc = prepare_softmax(logits, targets, axis=axis, alpha=None, ignore_index=ignore_index, reduction=reduction,
                         weight=weight, normalizer=normalizer)
    return sc.plan(focal_terms, FocalTerms(truncate_margin=checked(sc.call)), from_logits=from_logits)


@dataclass(frozen=True)
class SoftTruncatedParams:
    k: Any


def soft_truncated_terms(xp: Any, t: Terms, params: SoftTruncatedParams) -> TermsOut:
    """``−y σ(−K z) log p`` per class, with the direct ``∂/∂z`` of ``σ(−K z)``; ``∂/∂K = y z σ(Kz) σ(−Kz) log p``,
    ``∂/∂y = −σ(−K z) log p``."""
    log_a, log_b = log_sigmoid_pair(xp, params.k * t.z)  # a = σ(Kz), b = σ(−Kz)
    b, ab = xp.exp(log_b), xp.exp(log_a + log_b)
    y = t.weight
    u = t.u if isinstance(y, float) else xp.where(y != 0.0, t.u, 0.0)
    return TermsOut(-y * b * u, -y * b, 0.0, 0.0, params.k * y * ab * u,
                    {"k": lambda: y * t.z * ab * u, TARGETS: lambda: -b * t.u})


@document
def soft_truncated_loss(
    logits: Array, targets: Array, *, k: float = 1.0, activation: str = "sigmoid", axis: int = -1,
    ignore_index: int | None = None, reduction: str = "mean", weight: Array | float | None = None,
    normalizer: Array | float | None = None, from_logits: bool = True,
) -> Array:
    r"""Soft-truncated cross entropy (seed 003's L**): the hard truncation's step θ replaced by σ(K·).

    .. math::

        \text{sigmoid}: L = -y\,\sigma(-Kx)\log\sigma(x) - (1-y)\,\sigma(Kx)\log\sigma(-x)
        \qquad \text{softmax}: L = -\sigma(-K z_t)\log p_t

    ``z_t`` is the target's logit before the softmax. With ``K = 1`` the sigmoid form equals
    :func:`sigmoid_focal_loss` with ``form="split", gamma=1, alpha=None``.

    Args:
        k: steepness ``K > 0``. Default 1.

    References:
        Su Jianlin, seed 003, 2017.
    """
    return _plan_soft_truncated(logits, targets, k=k, activation=activation, axis=axis, ignore_index=ignore_index,
                                reduction=reduction, weight=weight, normalizer=normalizer,
                                from_logits=from_logits).loss()


@plans(soft_truncated_loss)
def _plan_soft_truncated(logits: Array, targets: Array, *, k: Any, activation: Any, axis: Any, ignore_index: Any,
                         reduction: str, weight: Any, normalizer: Any, from_logits: bool) -> LossPlan:
    def checked(call: Any) -> Any:
        return call.hyper("k", k, low=0.0, high=math.inf, high_open=True, differentiable=True)

    if _check_activation(activation) == "sigmoid":
        return plan_binary(soft_truncated_kernel, lambda call: SoftSpec(checked(call)), logits, targets,
                           reduction=reduction, weight=weight, normalizer=normalizer, from_logits=from_logits,
                           ignore_index=ignore_index)
    sc = prepare_softmax(logits, targets, axis=axis, alpha=None, ignore_index=ignore_index, reduction=reduction,
                         weight=weight, normalizer=normalizer)
    return sc.plan(soft_truncated_terms, SoftTruncatedParams(checked(sc.call)), from_logits=from_logits)


@document
def focal_loss_star(
    logits: Array, targets: Array, *, gamma: float = 2.0, beta: float = 1.0, alpha: float | None = None,
    reduction: str = "mean", weight: Array | float | None = None, normalizer: Array | float | None = None,
    from_logits: bool = True, ignore_index: float | None = None,
) -> Array:
    r"""FL* (Lin et al. 2017, appendix A): ``−log σ(γ x_t + β) / γ``, ``x_t = x (2y − 1)``, times α_t.

    .. math::

        x_t = x\,(2y - 1),\qquad \mathrm{FL}^*(x, y) = -\frac{\alpha_t}{\gamma}\,\log \sigma(\gamma x_t + \beta)

    Defaults γ = 2, β = 1 (the paper's best); fvcore's ``sigmoid_focal_loss_star`` defaults to
    γ = 1, β = 0 and ``alpha=-1`` (none): pass those for the same numbers. With γ = 1, β = 0 and no
    α it is the binary cross entropy.

    Args:
        targets: floats or bools in [0, 1] of the logits' shape (hard labels: ``x_t`` needs ``2y − 1 = ±1``).
        gamma: ``γ > 0``. Default 2.
        beta: any real shift. Default 1.
        alpha: None (the default: no weighting) or the positive class's weight in [0, 1].

    References:
        Lin, Goyal, Girshick, He, Dollár. Focal Loss for Dense Object Detection. ICCV 2017, appendix A.
    """
    return _plan_star(logits, targets, gamma=gamma, beta=beta, alpha=alpha, reduction=reduction, weight=weight,
                      normalizer=normalizer, from_logits=from_logits, ignore_index=ignore_index).loss()


@plans(focal_loss_star)
def _plan_star(logits: Array, targets: Array, *, gamma: Any, beta: Any, alpha: Any, reduction: str, weight: Any,
               normalizer: Any, from_logits: bool, ignore_index: Any) -> LossPlan:
    def spec(call: Any) -> StarSpec:
        # γ > 0: FL* divides by it
        return StarSpec(call.hyper("gamma", gamma, low=0.0, high=math.inf, low_open=True, high_open=True,
                                   differentiable=True),
                        call.hyper("beta", beta, low=-math.inf, high=math.inf, high_open=True, differentiable=True),
                        check_alpha_scalar(call, alpha))

    return plan_binary(focal_star_kernel, spec, logits, targets, reduction=reduction, weight=weight,
                       normalizer=normalizer, from_logits=from_logits, ignore_index=ignore_index)
