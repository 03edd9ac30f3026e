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


def is_scalar(value: Any) -> bool:
    """A Python/NumPy real number, or a 0-d array of any library (to be read with :func:`check_number`)."""
    if isinstance(value, numbers.Real):
        return True
    shape = getattr(value, "shape", None)
    return shape is not None and tuple(shape) == ()


def check_number(name: str, value: Any, *, low: float, high: float, high_open: bool = False) -> float:
    """A real scalar in ``[low, high]`` (or ``[low, high)``), returned as a float.

    The losses read their hyperparameters through ``Call.hyper`` (which takes arrays, traced too) and
    call this for the numbers only; the parameters that stay Python values (the entries of a
    per-class list, ``focal.boosting``'s, ``class_balanced_alpha``'s ``beta``) come here as they are,
    so a traced 0-d array is an error that says to pass a number.
    """
    if isinstance(value, bool) or not is_scalar(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    try:
        value = float(value)
    except Exception:  # a tracer: jax raises its ConcretizationTypeError, TF an OperatorNotAllowedInGraphError
        raise TypeError(
            f"{name} must be a concrete number, got a traced {type(value).__name__}: it is a static parameter "
            f"(it selects the computation), so pass a Python float, e.g. close over it or mark it static "
            f"with jax.jit(..., static_argnames=...)") from None
    inside = low <= value and (value < high if high_open else value <= high)  # False for NaN
    if not inside:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low:g}, {high:g}{bracket}, got {value!r}")
    return value


def check_flag(name: str, value: Any) -> bool:
    """A static switch: a Python bool (NumPy's too), never an array (it selects the computation)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r} of type {type(value).__name__}")


def check_gamma(gamma: Any) -> float:
    return check_number("gamma", gamma, low=0.0, high=math.inf, high_open=True)


def check_axis(axis: Any, ndim: int) -> int:
    """``axis`` as a non-negative index into an array of ``ndim`` dimensions."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an int, got {type(axis).__name__} {axis!r}")
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of range for logits with {ndim} dimensions")
    return axis % ndim


def check_shape(name: str, shape: tuple[Any, ...], expected: tuple[Any, ...], why: str) -> None:
    if tuple(shape) != tuple(expected):
        raise ValueError(f"{name} has shape {tuple(shape)}, expected {tuple(expected)} ({why})")


def broadcasts(shape: tuple[Any, ...], target: tuple[Any, ...]) -> bool:
    """Whether ``shape`` broadcasts to ``target`` without growing it."""
    return len(shape) <= len(target) and all(
        s == 1 or s == t for s, t in zip(reversed(tuple(shape)), reversed(tuple(target))))


def broadcast_shape(name: str, shape: tuple[Any, ...], target: tuple[Any, ...]) -> None:
    """``shape`` must broadcast to ``target`` without growing it."""
    if not broadcasts(shape, target):
        raise ValueError(f"{name} has shape {tuple(shape)}, which does not broadcast to the loss shape {tuple(target)}")
