"""Asymmetric loss for multi-label classification (ASL, Ridnik et al. 2021)."""

from __future__ import annotations

import math
from typing import Any

from ._binary import AsymmetricSpec, asymmetric_kernel, plan_binary
from ._checks import check_flag
from ._docs import document
from ._plan import LossPlan, plans
from .backends._base import Array


@document
def asymmetric_loss(
    logits: Array, targets: Array, *, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05,
    reduction: str = "mean", weight: Array | float | None = None, normalizer: Array | float | None = None,
    label_smoothing: float = 0.0, from_logits: bool = True, ignore_index: float | None = None,
    detach_modulator: bool = False,
) -> Array:
    r"""Asymmetric loss (ASL) for multi-label classification.

    .. math::

        p_m = \max(p - m, 0),\qquad
        L = -y\,(1-p)^{\gamma^+}\log p - (1-y)\,p_m^{\gamma^-}\log(1-p_m)

    Defaults γ⁺ = 0, γ⁻ = 4, m = 0.05 (the paper's). The reference implementation sums the loss
    (``-loss.sum()``): use ``reduction="sum"`` for its numbers. Its ``disable_torch_grad_focal_loss=True``
    detaches the focusing weights: ours with ``detach_modulator=True``.

    Args:
        targets: multi-label targets in [0, 1] (hard or soft) of the logits' shape.
        gamma_pos: γ⁺ ≥ 0, the positives' focusing parameter. Default 0.
        gamma_neg: γ⁻ ≥ 0, the negatives'. Default 4.
        clip: the probability margin m in [0, 1): negatives with ``p ≤ m`` give no loss. Default 0.05.
        detach_modulator: compute the modulating factor from the logits held constant
            (``stop_gradient``/``detach``), as timm's ``disable_torch_grad_focal_loss=True`` does: the loss's value
            is unchanged; its derivatives w.r.t. the logits, of every order, treat both focusing weights ``(1 −
            p)^γ⁺`` and ``p_m^γ⁻`` as a constant (``d/dx = −y (1 − p)^γ⁺ (1 − p) + (1 − y) p_m^γ⁻ p (1 − p)/(1 −
            p_m)``); those w.r.t. γ⁺, γ⁻, m and float targets still go through it. Default False (the loss's true
            gradient).

    References:
        Ridnik et al. Asymmetric Loss For Multi-Label Classification. ICCV 2021.
    """
    return _plan_asl(logits, targets, gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip, reduction=reduction,
                     weight=weight, normalizer=normalizer, label_smoothing=label_smoothing,
                     from_logits=from_logits, ignore_index=ignore_index, detach_modulator=detach_modulator).loss()


@plans(asymmetric_loss)
def _plan_asl(logits: Array, targets: Array, *, gamma_pos: Any, gamma_neg: Any, clip: Any, reduction: str,
              weight: Any, normalizer: Any, label_smoothing: Any, from_logits: bool, ignore_index: Any,
              detach_modulator: bool) -> LossPlan:
    detach = check_flag("detach_modulator", detach_modulator)

    def spec(call: Any) -> AsymmetricSpec:
        return AsymmetricSpec(
            gamma_pos=call.hyper("gamma_pos", gamma_pos, low=0.0, high=math.inf, high_open=True, differentiable=True),
            gamma_neg=call.hyper("gamma_neg", gamma_neg, low=0.0, high=math.inf, high_open=True, differentiable=True),
            clip=call.hyper("clip", clip, low=0.0, high=1.0, high_open=True, differentiable=True),
            detach=detach,
        )

    return plan_binary(asymmetric_kernel, spec, logits, targets, reduction=reduction, weight=weight,
                       normalizer=normalizer, from_logits=from_logits, label_smoothing=label_smoothing,
                       ignore_index=ignore_index)
