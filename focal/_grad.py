"""``value_and_grad``: a loss and its gradient w.r.t. the logits, on every library, NumPy included."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from ._docs import document
from ._plan import planner_of
from .backends._base import Array


@document
def value_and_grad(loss_fn: Callable[..., Array]) -> Callable[..., tuple[Array, Any]]:
    """Wrap a ``focal`` loss to return ``(loss, d loss / d logits)``.

    The gradient is the same analytic one the frameworks' autodiff receives, computed directly by
    the array-API core, so it works on NumPy, CuPy and any array-API library as well. With
    ``reduction="none"`` the gradient is that of the summed per-element loss.

    Args:
        loss_fn: one of the ``focal`` losses.

    Returns:
        A function of the loss's arguments returning ``(loss, gradient)``, both of the input's library; for the
        fused linear losses (:func:`focal.linear_softmax_focal_loss`, :func:`focal.linear_sigmoid_focal_loss`)
        ``(loss, (d hidden, d weight, d bias))``, ``d bias`` None without a bias.

    For example ``value, dlogits = focal.value_and_grad(focal.sigmoid_focal_loss)(logits, targets, gamma=2.0)``.
    """
    planner = planner_of(loss_fn)
    signature = inspect.signature(loss_fn)

    @functools.wraps(loss_fn)
    def wrapped(*args: Any, **kwargs: Any) -> tuple[Array, Any]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return planner(*bound.args, **bound.kwargs).value_and_grad()

    return wrapped
