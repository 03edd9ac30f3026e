"""Poly-1 losses (Leng et al., 2022): the first polynomial coefficient of CE or FL moved by ε."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._binary import FocalSpec, binary_gamma, check_alpha_scalar, focal_pt_kernel, plan_binary
from ._categorical import prepare_softmax
from ._docs import document
from ._plan import LossPlan, plans
from ._seed import _check_activation
from ._softmax import FocalTerms, focal_terms
from .backends._base import Array


def _epsilon(call: Any, epsilon: Any) -> Any:
    return call.hyper("epsilon", epsilon, low=-math.inf, high=math.inf, high_open=True, differentiable=True)


@document
def poly1_focal_loss(
    logits: Array, targets: Array, *, epsilon: float = 1.0, gamma: float | Sequence[float] | Array = 2.0,
    alpha: float | Sequence[float] | Array | None = 0.25, activation: str = "sigmoid", axis: int = -1,
    ignore_index: int | None = None, reduction: str = "mean", weight: Array | float | None = None,
    normalizer: Array | float | None = None, label_smoothing: float = 0.0, from_logits: bool = True,
    where: Array | None = None,
) -> Array:
    r"""Poly-1 focal loss: ``FL + ε (1 − p_t)^(γ+1)`` (PolyLoss, Leng et al. 2022, eq. 4).

    .. math::

        L_{\text{Poly-1}} = -\alpha_t (1 - p_t)^\gamma \log p_t + \epsilon\,(1 - p_t)^{\gamma + 1}

    ``activation="sigmoid"``: FL is :func:`sigmoid_focal_loss` (``α_t`` weights FL only, as in the
    paper's code). ``"softmax"``: FL is :func:`softmax_focal_loss` and dense targets add
    ``ε Σ_c y_c (1 − p_c)^(γ+1)``. ε = 1 by default; ε = −1 removes the leading term. ``gamma``
    and ``alpha`` are a number or one per class, as in those two functions.

    Args:
        epsilon: ε, any real. Default 1.
        gamma: γ ≥ 0, a number or one per class. Default 2.
        alpha: as in :func:`sigmoid_focal_loss` (sigmoid; default 0.25) or :func:`softmax_focal_loss`
            (softmax: a number scales every class, or one per class).

    References:
        Leng et al. PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions. ICLR 2022.
    """
    return _plan_poly1_focal(logits, targets, epsilon=epsilon, gamma=gamma, alpha=alpha, activation=activation,
                             axis=axis, ignore_index=ignore_index, reduction=reduction, weight=weight,
                             normalizer=normalizer, label_smoothing=label_smoothing, from_logits=from_logits,
                             where=where).loss()


@plans(poly1_focal_loss)
def _plan_poly1_focal(logits: Array, targets: Array, *, epsilon: Any, gamma: Any, alpha: Any, activation: Any,
                      axis: Any, ignore_index: Any, reduction: str, weight: Any, normalizer: Any,
                      label_smoothing: Any, from_logits: bool, where: Any) -> LossPlan:
    if _check_activation(activation) == "sigmoid":
        if where is not None:
            raise ValueError("where leaves classes out of a softmax: use it with activation='softmax'")
        def spec(call: Any) -> FocalSpec:
            return FocalSpec(alpha=check_alpha_scalar(call, alpha), gamma=binary_gamma(call, gamma),
                             epsilon=_epsilon(call, epsilon))

        return plan_binary(focal_pt_kernel, spec, logits, targets, reduction=reduction, weight=weight,
                           normalizer=normalizer, from_logits=from_logits, label_smoothing=label_smoothing,
                           ignore_index=ignore_index)
    sc = prepare_softmax(logits, targets, axis=axis, alpha=alpha, gamma=gamma, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, reduction=reduction, weight=weight, normalizer=normalizer,
                         where=where)
    return sc.plan(focal_terms, FocalTerms(epsilon=_epsilon(sc.call, epsilon)), from_logits=from_logits)


@document
def poly1_cross_entropy(
    logits: Array, targets: Array, *, epsilon: float = 1.0, axis: int = -1, ignore_index: int | None = None,
    alpha: float | Sequence[float] | Array | None = None, reduction: str = "mean",
    weight: Array | float | None = None, normalizer: Array | float | None = None, label_smoothing: float = 0.0,
    from_logits: bool = True, where: Array | None = None,
) -> Array:
    r"""Poly-1 cross entropy: ``CE + ε (1 − p_t)`` over a softmax (PolyLoss, eq. 3).

    .. math::

        L_{\text{Poly-1}} = -\log p_t + \epsilon\,(1 - p_t)

    For dense targets ``ε Σ_c y_c (1 − p_c)``, which is optax's ``poly_loss_cross_entropy``
    ``ε (1 − Σ_c y_c p_c)`` whenever the targets sum to 1. optax defaults to ε = 2; we default to
    the paper's ε = 1.

    Args:
        targets: integer class indices of the logits' shape without ``axis``, or class
            probabilities of the logits' shape.
        epsilon: ε, any real. Default 1.
        alpha: None (default), a number that scales every class, or one weight per class.

    References:
        Leng et al. PolyLoss. ICLR 2022.
    """
    return _plan_poly1_ce(logits, targets, epsilon=epsilon, axis=axis, ignore_index=ignore_index, alpha=alpha,
                          reduction=reduction, weight=weight, normalizer=normalizer, label_smoothing=label_smoothing,
                          from_logits=from_logits, where=where).loss()


@plans(poly1_cross_entropy)
def _plan_poly1_ce(logits: Array, targets: Array, *, epsilon: Any, axis: Any, ignore_index: Any, alpha: Any,
                   reduction: str, weight: Any, normalizer: Any, label_smoothing: Any, from_logits: bool,
                   where: Any) -> LossPlan:
    sc = prepare_softmax(logits, targets, axis=axis, alpha=alpha, gamma=0.0, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, reduction=reduction, weight=weight, normalizer=normalizer,
                         where=where)
    return sc.plan(focal_terms, FocalTerms(epsilon=_epsilon(sc.call, epsilon)), from_logits=from_logits)
