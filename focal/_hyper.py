"""Hyperparameters as values: a number is a constant of the kernel, an array is an input it reads.

A Python or NumPy number is checked when the loss is called and becomes a constant of the kernel's
code, which may then take a cheaper path that gives the same numbers (an integer γ by
multiplication, γ = 0 without the modulator). An array of the logits' library, concrete or traced
(a ``jax.jit`` or ``jax.vmap`` argument, a ``tf.Variable``, a torch tensor or ``nn.Parameter``), is
an input of the kernel instead: the kernel's spec holds a :class:`Slot` in its place, and
:func:`bind` puts the array there when the kernel runs. So a new value compiles nothing new, and a
slot marked ``differentiable`` gets its gradient from the kernel, beside the logits' one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Array = Any
# ∂loss/∂θ per element, computed only when θ's gradient is asked for
Partials = Mapping[str, Callable[[], Array]]
# the slot of float targets: an input with a gradient, whose partial is ∂loss/∂y per element (``Call.target_slot``)
TARGETS = "targets"


@dataclass(frozen=True)
class Slot:
    """A hyperparameter the kernel reads from ``params[index]``.

    ``shape`` is the array's own (``()`` or ``(C,)``); ``view`` the shape it broadcasts against the
    logits with (a per-class vector along the class axis). ``differentiable``: the kernel gives its
    gradient; otherwise asking for one is a ``TypeError`` (``Backend.no_gradient``).
    """

    name: str
    index: int
    shape: tuple[int, ...] = ()
    view: tuple[int, ...] = ()
    differentiable: bool = False

    def reduce(self, xp: Any, x: Array) -> Array:
        """``x`` (the cotangent times this slot's partials) summed to the slot's own shape."""
        return xp.reshape(sum_to(xp, x, self.view), self.shape)


def sum_to(xp: Any, x: Array, shape: tuple[int, ...]) -> Array:
    """Sum ``x`` over the axes along which an array of ``shape`` was broadcast to it."""
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1)
    return xp.sum(x, axis=axes, keepdims=True) if axes else x


def bind(spec: Any, params: tuple[Array, ...]) -> Any:
    """``spec`` (a dataclass, possibly nesting others) with each :class:`Slot` replaced by its array."""
    if not params or not dataclasses.is_dataclass(spec) or isinstance(spec, type):
        return spec
    changes = {}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if isinstance(value, Slot):
            changes[f.name] = params[value.index]
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            bound = bind(value, params)
            if bound is not value:
                changes[f.name] = bound
    return dataclasses.replace(spec, **changes) if changes else spec


def is_array(value: Any) -> bool:
    """A hyperparameter the kernel reads as an array (after :func:`bind`), not a Python number."""
    return value is not None and not isinstance(value, (int, float)) and hasattr(value, "dtype")


def is_vector(value: Any) -> bool:
    """A per-class hyperparameter (a 1-d array)."""
    return is_array(value) and value.ndim == 1


def given_as_vector(value: Any) -> bool:
    """A per-class value as the user gives it: a sequence, or a 1-d array of any library (a
    ``tf.Variable`` has a shape but no ``ndim``)."""
    if isinstance(value, (list, tuple)):
        return True
    shape = getattr(value, "shape", None)
    return shape is not None and not isinstance(value, str) and len(shape) == 1


def is_zero(value: Any) -> bool:
    """A number known to be 0 now (an array might hold anything)."""
    return isinstance(value, (int, float)) and value == 0


def reduce_partials(xp: Any, wanted: tuple[Slot | None, ...], scale: Any, partials: tuple[Array, ...]
                    ) -> tuple[Array | None, ...]:
    """Each wanted slot's gradient, ``Σ scale · ∂loss/∂θ`` summed to its shape; None for the others.

    ``partials`` holds one array per wanted slot, in order, broadcastable against ``scale``."""
    remaining = iter(partials)
    return tuple(None if slot is None else slot.reduce(xp, scale * next(remaining)) for slot in wanted)


def take_partials(partials: Partials, wanted: tuple[Slot | None, ...]) -> tuple[Array, ...]:
    """The partials of the wanted slots, in order (what the residuals keep for :func:`reduce_partials`)."""
    return tuple(partials[slot.name]() for slot in wanted if slot is not None)


def no_grads(count: int) -> tuple[None, ...]:
    """``wanted`` where no hyperparameter's gradient is asked for."""
    return (None,) * count


def wanted_slots(slots: Sequence[Slot], asked: Iterable[bool]) -> tuple[Slot | None, ...]:
    """``wanted``: each slot whose gradient is ``asked`` for and that has one, None for the others."""
    return tuple(slot if ask and slot.differentiable else None for slot, ask in zip(slots, asked))
