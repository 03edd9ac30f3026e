"""Argument checks shared by every loss: each error names the argument, what it got and what it expects."""

from __future__ import annotations

import math
import numbers
from typing import Any

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: Any) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_number(name: str, value: Any, *, low: float, high: float, high_open: bool = False) -> float:
    """A real Python/NumPy scalar in ``[low, high]`` (or ``[low, high)``), returned as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    inside = low <= value and (value < high if high_open else value <= high)  # False for NaN
    if not inside:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low:g}, {high:g}{bracket}, got {value!r}")
    return value


def check_gamma(gamma: Any) -> float:
    return check_number("gamma", gamma, low=0.0, high=math.inf, high_open=True)


def check_axis(axis: Any, ndim: int) -> int:
    """``axis`` as a non-negative index into an array of ``ndim`` dimensions."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an int, got {type(axis).__name__} {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of range for logits with {ndim} dimensions")
    return int(axis) % ndim


def check_shape(name: str, shape: tuple[Any, ...], expected: tuple[Any, ...], why: str) -> None:
    if tuple(shape) != tuple(expected):
        raise ValueError(f"{name} has shape {tuple(shape)}, expected {tuple(expected)} ({why})")


def broadcast_shape(name: str, shape: tuple[Any, ...], target: tuple[Any, ...]) -> None:
    """``shape`` must broadcast to ``target`` without growing it."""
    ok = len(shape) <= len(target) and all(
        s == 1 or s == t for s, t in zip(reversed(tuple(shape)), reversed(tuple(target)))
    )
    if not ok:
        raise ValueError(f"{name} has shape {tuple(shape)}, which does not broadcast to the loss shape {tuple(target)}")
