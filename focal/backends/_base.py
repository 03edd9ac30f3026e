"""What every backend provides: its array namespace and its custom-gradient wiring.

A backend adds no formula of its own: it runs a kernel from the core (``focal._kernel``) and
connects the kernel's analytic VJP to its framework's autodiff.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from .._kernel import value_of
from .._value_checks import reads_device

if sys.version_info >= (3, 12):
    from typing import TypeAliasType
else:
    from typing_extensions import TypeAliasType

# An array of any array-API library (NumPy, JAX, PyTorch, TensorFlow, CuPy, ...): typed as Any, but
# named, so signatures and the docs say "Array"
Array = TypeAliasType("Array", Any)


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

    def device(self, x: Array) -> Any:
        """The device of ``x``, for checking that the arrays of a call share one (None: not checked)."""
        import array_api_compat

        try:
            return array_api_compat.device(x)
        except Exception:  # a tracer, or an array spread over several devices
            return None

    def result_dtype(self, logits: Array) -> Any:
        """The dtype of the loss of ``logits`` (theirs, unless a framework's mixed-precision policy says)."""
        return logits.dtype

    def from_host(self, value: Any, dtype: Any, device: Any) -> Array:
        """Host data (Python numbers, a NumPy array) as an array on ``device``, of ``dtype`` (None: the value's own).
        No copy to an accelerator may wait for it (a framework overrides where its plain copy does)."""
        return self.xp.asarray(value, dtype=dtype, device=device)

    def extrema(self, x: Array) -> tuple[Array, Array]:
        """``(min(x), max(x))`` of a non-empty array, as 0-d arrays (NaN if ``x`` holds one)."""
        return self.xp.min(x), self.xp.max(x)

    def is_concrete(self, x: Array) -> bool:
        """Whether the values of ``x`` can be read now (False while a function is being traced)."""
        return True

    def on_host(self, x: Array) -> bool:
        """Whether ``x`` lives in the host's memory, where reading it back synchronises with no device (a device
        this backend cannot name counts as the host's: NumPy-like libraries)."""
        device = self.device(x)
        return device is None or "cpu" in str(device).lower()

    def reads_values(self, logits: Array) -> bool:
        """Whether a call on ``logits`` reads values back to check them: concrete, and on a device the
        value-checks mode reads (by default the host's alone: ``focal.set_value_checks``)."""
        return self.is_concrete(logits) and reads_device(self.on_host(logits))

    def quiet(self) -> Any:
        """A context in which the library's floating-point warnings are off (NumPy's ``RuntimeWarning: invalid
        value`` on an infinite logit: the loss gives the NaN or inf the rules say, the warning adds nothing), or None
        where the library has none to silence. NumPy's ``errstate`` covers the NumPy-based libraries too
        (array-api-strict)."""
        numpy = sys.modules.get("numpy")
        return None if numpy is None else numpy.errstate(all="ignore")

    def compiles_kernel(self, logits: Array) -> bool:
        """Whether the kernel for ``logits`` will be compiled by focal itself (then hyperparameters given as
        numbers enter it as arrays too, so that a new value is not a new compile)."""
        return False

    def no_gradient(self, name: str, x: Array) -> Array:
        """``x``, a hyperparameter the kernel has no gradient for: asking for its gradient must be a
        ``TypeError`` naming ``name`` (never a silent None or 0)."""
        return x

    def apply(self, kernel: Any, logits: Array, aux: Sequence[Array], params: Sequence[Array],
              slots: Sequence[Any]) -> Array:
        """The kernel's output, differentiable w.r.t. ``logits`` and the differentiable ``params``
        through the kernel's own VJP."""
        return value_of(kernel, self.xp, logits, tuple(aux), tuple(params))

    def apply_linear(self, kernel: Any, hidden: Array, weight: Array, bias: Array | None,
                     aux: tuple[Array, ...]) -> Array:
        """A fused linear loss's output (``focal._linear.LinearKernel``), differentiable w.r.t. ``hidden``,
        ``weight`` and ``bias`` through the kernel's own VJP."""
        return kernel.value(self.xp, hidden, weight, bias, aux)

    def stop_gradient(self, x: Array) -> Array:
        """``x`` cut from any autodiff graph, for results computed outside the framework's autodiff."""
        return x

    def __repr__(self) -> str:
        return f"<focal backend {self.name}>"


def no_gradient_message(name: str) -> str:
    return (f"{name} has no gradient in this loss (it is not differentiable here): pass a number, or an array "
            f"that no gradient is asked for (detach it / stop its gradient)")


def linear_second_order_message(framework: str, route: str) -> str:
    """The error where a fused linear loss's gradient is differentiated again (``route``: how it was asked for)."""
    return ("the fused linear losses (focal.linear_softmax_focal_loss, focal.linear_sigmoid_focal_loss) have no "
            f"second derivative in {framework}: their gradient was differentiated ({route}: a Hessian, a MAML inner "
            "step, a gradient penalty). Compute the loss unfused, e.g. focal.softmax_focal_loss(hidden @ weight.T + "
            "bias, labels), whose second derivatives are exact (as PyTorch's own chunked F.linear_cross_entropy has "
            "none)")
