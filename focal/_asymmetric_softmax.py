"""Asymmetric loss for single-label classification (ASL's softmax form, Ridnik et al. 2021): the per-class terms."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._categorical import Terms, TermsOut, prepare_softmax, target_is
from ._docs import document
from ._numerics import power
from ._plan import LossPlan, plans
from ._softmax import FocalTerms, focal_terms
from .backends._base import Array


@dataclass(frozen=True)
class AsymmetricTerms:
    """The parameters of the softmax ASL's terms (numbers or Slots) and the class count its smoothing divides by."""

    gamma_pos: Any
    gamma_neg: Any
    smoothing: Any
    classes: int


def asymmetric_softmax_terms(xp: Any, t: Terms, params: AsymmetricTerms, *, grad: bool = True) -> TermsOut:
    """The target class's ``−(1 − ε + ε/C)(1 − p)^γ⁺ log p`` (the focal terms' with that weight) and every other
    class's ``−(ε/C) p^γ⁻ log p`` (``A = −(ε/C) p^γ⁻ (1 + γ⁻ log p)``, and no ``B``, ``E``: the term has no
    ``log(1 − p)``). ``t.target`` is 1 or 0 (integer labels: the target's row, the other classes) or a 0/1 one-hot
    array (labels made dense by ``ignore_index``), which weighs both terms. ``log p`` is finite for every finite logit
    (``z − LSE(z)``), so ``p^γ⁻`` is ``exp(γ⁻ log p)`` without a floor. The partials: ``∂/∂γ⁺``, ``∂/∂γ⁻`` and
    ``∂/∂ε`` (each term over its own weight times that weight's derivative, ``1/C − 1`` or ``1/C``). Without
    ``grad``, f alone."""
    eps, classes = params.smoothing, float(params.classes)
    q = t.target
    parts: list[TermsOut] = []
    if not target_is(q, 0.0):
        weight = (1.0 - eps + eps / classes) * q
        out = focal_terms(xp, t._replace(weight=weight, gamma=params.gamma_pos), FocalTerms(), grad=grad)
        if grad:
            alpha_partial = out.partials["alpha"]  # −q M log p: the weight's derivative in ε over its 1/C − 1
            out = out._replace(partials={"gamma_pos": out.partials["gamma"], "gamma_neg": lambda: xp.zeros_like(t.u),
                                         "label_smoothing": lambda: (1.0 / classes - 1.0) * alpha_partial()})
        parts.append(out)
    if not target_is(q, 1.0):
        share = eps / classes * (1.0 - q)
        pg = power(xp, t.p, lambda: t.u, params.gamma_neg)
        f = -(share * pg) * t.u
        if grad:
            pg_u = pg * t.u  # (a product before γ⁻ multiplies: γ⁻ log p may overflow where p^γ⁻ is 0)
            a = -share * (pg + params.gamma_neg * pg_u)
            parts.append(TermsOut(f, a, 0.0, 0.0, partials={
                "gamma_pos": lambda: xp.zeros_like(t.u), "gamma_neg": lambda: f * t.u,
                "label_smoothing": lambda: -(1.0 - q) * pg_u / classes}))
        else:
            parts.append(TermsOut(f, 0.0, 0.0, 0.0))
    if len(parts) == 1:
        return parts[0]
    pos, neg = parts
    if not grad:
        return TermsOut(pos.f + neg.f, 0.0, 0.0, 0.0)

    def summed(name: str) -> Callable[[], Array]:
        return lambda: pos.partials[name]() + neg.partials[name]()

    return TermsOut(pos.f + neg.f, pos.a + neg.a, pos.b, pos.e, partials={name: summed(name) for name in pos.partials})



asymmetric_softmax_terms.loss_only = True  # type: ignore[attr-defined]  # takes grad=False


@document
def softmax_asymmetric_loss(
    logits: Array, targets: Array, *, gamma_pos: float = 0.0, gamma_neg: float = 4.0, label_smoothing: float = 0.1,
    axis: int = -1, ignore_index: int | None = None, reduction: str = "mean", weight: Array | float | None = None,
    normalizer: Array | float | None = None, from_logits: bool = True,
) -> Array:
    r"""Asymmetric loss (ASL) for single-label classification: its softmax form, with label smoothing.

    .. math::

        p = \operatorname{softmax}(z),\quad \tilde y_c = (1-\varepsilon)[c = t] + \varepsilon / C

        L = -\tilde y_t\,(1-p_t)^{\gamma^+}\log p_t - \sum_{c \ne t} \tilde y_c\, p_c^{\gamma^-}\log p_c

    The target class is focused as the focal loss focuses it, every other class by ``p_c^γ⁻``: the smoothing's
    share of a confidently wrong class weighs more than that of one already near 0. With ``ε = 0`` it is
    :func:`softmax_focal_loss` with ``γ = γ⁺``. The gradient flows through both focusing weights (the loss's own).

    Args:
        logits: real floating array with the classes along ``axis``.
        targets: integer class indices of ``logits``' shape without ``axis``, in [0, C).
        gamma_pos: γ⁺ ≥ 0, the target class's focusing parameter. Default 0 (the authors' ``ASLSingleLabel``).
        gamma_neg: γ⁻ ≥ 0, the other classes'. Default 4.
        label_smoothing: ε in [0, 1). Default 0.1 (the authors' ``eps``).
        axis: the class axis. Default -1.
        ignore_index: a label value whose rows give 0 and are left out of the mean's count (e.g. 255). Default None.
        reduction: ``"none"`` (per row), ``"mean"`` (default, over the rows not ignored) or ``"sum"``.
        weight: weights broadcastable to the per-row loss shape.
        normalizer: divide the sum by ``max(normalizer, eps)`` instead.
        from_logits: ``False`` takes probabilities (clipped to ``[eps, 1 − eps]`` and renormalised).

    Returns:
        An array of the input's library, device and dtype; gradients (analytic, every order) w.r.t. the logits and
        w.r.t. γ⁺, γ⁻ and ε given as arrays.

    Matching other libraries (checked by a test):
        timm ``AsymmetricLossSingleLabel(gamma_pos, gamma_neg, eps)`` is
        ``softmax_asymmetric_loss(x, t, gamma_pos=gamma_pos, gamma_neg=gamma_neg, label_smoothing=eps)`` (timm's
        default ``gamma_pos`` is 1).

    References:
        Ridnik et al. Asymmetric Loss For Multi-Label Classification. ICCV 2021 (the authors' ``ASLSingleLabel``).
    """
    return _plan_softmax_asl(logits, targets, gamma_pos=gamma_pos, gamma_neg=gamma_neg,
                             label_smoothing=label_smoothing, axis=axis, ignore_index=ignore_index,
                             reduction=reduction, weight=weight, normalizer=normalizer, from_logits=from_logits).loss()


@plans(softmax_asymmetric_loss)
def _plan_softmax_asl(logits: Array, targets: Array, *, gamma_pos: Any, gamma_neg: Any, label_smoothing: Any,
                      axis: Any, ignore_index: Any, reduction: str, weight: Any, normalizer: Any, from_logits: bool
                      ) -> LossPlan:
    # the smoothing is the terms' own (each class's weight): the labels stay labels (ClassKernel's labels mode), or
    # with ignore_index a one-hot whose ignored rows are 0
    sc = prepare_softmax(logits, targets, axis=axis, alpha=None, ignore_index=ignore_index, reduction=reduction,
                         weight=weight, normalizer=normalizer, labels_only=True, every_class=True)
    call = sc.call
    if sc.valid is not None:  # an ignored row's smoothing terms are not 0 by themselves: its weight is
        kept = call.xp.astype(sc.valid, call.dtype)
        call.weight = kept if call.weight is None else call.weight * kept
    params = AsymmetricTerms(
        gamma_pos=call.hyper("gamma_pos", gamma_pos, low=0.0, high=math.inf, high_open=True, differentiable=True),
        gamma_neg=call.hyper("gamma_neg", gamma_neg, low=0.0, high=math.inf, high_open=True, differentiable=True),
        smoothing=call.hyper("label_smoothing", label_smoothing, low=0.0, high=1.0, high_open=True,
                             differentiable=True),
        classes=sc.classes)
    return sc.plan(asymmetric_softmax_terms, params, from_logits=from_logits)
