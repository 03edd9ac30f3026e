"""The focusing parameter γ: a number, a per-class vector, or the adaptive FLSD-53 schedule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import _checks
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


def check_gamma(call: Any, gamma: Any, classes: int | None) -> tuple[Any, tuple[Array, ...]]:
    """``(γ for the spec, arrays)``: a float; ``flsd53``; or ``"vector"`` with a length-C array."""
    if gamma is flsd53:
        return flsd53, ()
    if isinstance(gamma, str) or gamma is None or _checks.is_scalar(gamma):
        return _checks.check_gamma(gamma), ()
    xp = call.xp
    if isinstance(gamma, (list, tuple)):
        values = [_checks.check_gamma(g) for g in gamma]
        vector = xp.asarray(values, dtype=call.dtype, device=call.device)
    else:
        call.own("gamma", gamma)
        vector = call.cast(gamma)
    if classes is None or tuple(vector.shape) != (classes,):
        raise ValueError(f"gamma has shape {tuple(vector.shape)}, expected ({classes},): one γ per class")
    return "vector", (call.within("gamma", vector, 0.0, float(xp.finfo(call.dtype).max),
                                   "finite and >= 0 for every class"),)


def resolve_binary_gamma(xp: Any, gamma: Any, vectors: Sequence[Array], log_1m_pt: Array) -> Any:
    """γ for each element of a sigmoid loss (a per-class vector runs along the last axis)."""
    if gamma is flsd53:
        return 3.0 + 2.0 * xp.astype(log_1m_pt > _LOG_0_8, log_1m_pt.dtype)  # p_t < 0.2 ⇔ 1 − p_t > 0.8
    if isinstance(gamma, str):
        return vectors[0]
    return gamma
