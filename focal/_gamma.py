"""The focusing parameter γ: a number, a per-class vector, or the adaptive FLSD-53 schedule."""

from __future__ import annotations

import math
from typing import Any

from ._hyper import given_as_vector
from .backends._base import Array


class _FLSD53:
    """Adaptive γ of Mukhoti et al. (2020), "Calibrating Deep Neural Networks using Focal Loss":
    γ = 5 where p_t < 0.2, else 3, chosen per element without a gradient through the choice.

    Pass it as ``gamma=focal.flsd53``.
    """

    def __repr__(self) -> str:
        return "focal.flsd53"

    def __reduce__(self) -> str:
        return "flsd53"


flsd53 = _FLSD53()
_LOG_0_8 = math.log(0.8)


def check_gamma(call: Any, gamma: Any, classes: int | None, *, axis: int, differentiable: bool = True) -> Any:
    """γ for a kernel's spec: a float, :data:`flsd53`, or the :class:`~focal._hyper.Slot` of a 0-d array
    or of a per-class vector (a sequence or an array of length C, viewed along ``axis``)."""
    if gamma is flsd53:
        return flsd53
    if given_as_vector(gamma):
        if classes is None:
            raise ValueError("gamma is a per-class vector but the logits have no class axis")
        return call.vector("gamma", gamma, classes, axis=axis, per_class="γ", differentiable=differentiable)
    return call.hyper("gamma", gamma, low=0.0, high=math.inf, high_open=True, differentiable=differentiable)


def resolve_binary_gamma(xp: Any, gamma: Any, log_1m_pt: Array) -> Any:
    """γ for each element of a sigmoid loss: FLSD-53's choice, or γ itself (a number or an array that
    broadcasts along the last axis)."""
    if gamma is flsd53:
        return 3.0 + 2.0 * xp.astype(log_1m_pt > _LOG_0_8, log_1m_pt.dtype)  # p_t < 0.2 ⇔ 1 − p_t > 0.8
    return gamma
