"""What every backend provides: its array namespace and its custom-gradient wiring.

A backend adds no formula of its own: it runs a kernel from the core and connects the kernel's
analytic gradient to its framework's autodiff.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

Array = Any
# kernel(xp, logits, *aux) -> (loss per element, d loss / d logits of the logits' shape)
Kernel = Callable[..., "tuple[Array, Array]"]


def cotangent_times_grad(xp: Any, cotangent: Array, dloss: Array, expand_axis: int | None) -> Array:
    """Vector-Jacobian product of an elementwise loss.

    Each loss element depends only on its own logit (``expand_axis is None``) or on its own row of
    logits along the class axis, so the Jacobian is block diagonal and the product is the
    cotangent, broadcast along that axis, times the per-element gradient.
    """
    if expand_axis is not None:
        cotangent = xp.expand_dims(cotangent, axis=expand_axis)
    return cotangent * dloss


class Backend:
    """A framework, as the core sees it. Subclasses override what their framework does differently."""

    name: str = "array-api"

    def __init__(self, xp: Any) -> None:
        self.xp = xp

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this backend's library."""
        import array_api_compat

        try:
            return array_api_compat.array_namespace(x) is self.xp
        except TypeError:
            return False

    def array(self, x: Any) -> Array:
        """``x`` as this library's array type (a TensorFlow variable becomes a tensor)."""
        return x

    def is_concrete(self, x: Array) -> bool:
        """Whether the values of ``x`` can be read now (False while a function is being traced)."""
        return True

    def elementwise(self, kernel: Kernel, logits: Array, aux: Sequence[Array], expand_axis: int | None) -> Array:
        """The kernel's loss, differentiable w.r.t. ``logits`` through the kernel's own gradient."""
        return kernel(self.xp, logits, *aux)[0]

    def stop_gradient(self, x: Array) -> Array:
        """``x`` cut from any autodiff graph, for results computed outside the framework's autodiff."""
        return x

    def __repr__(self) -> str:
        return f"<focal backend {self.name}>"
