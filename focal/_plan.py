"""From a public call to its result: the library, the compute dtype, the kernel, the reduction.

Every public loss builds a :class:`LossPlan` (its kernel, the arrays the kernel reads, the loss
shape) and then asks it for the loss, wired into the framework's autodiff, or for the loss and its
gradient computed directly (``focal.value_and_grad``, on any library). Both paths run the same
kernel and the same reduction, so they give the same numbers.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import _checks
from ._hyper import TARGETS, Slot, no_grads
from ._kernel import FromProbabilities, Kernel, Summed, summable, takes_number_cotangent, value_of
from .backends import Backend, backend_for
from .backends._base import Array


def _is_array(value: Any) -> bool:
    return value is not None and not isinstance(value, (numbers.Number, list, tuple))


def _is_number(value: Any) -> bool:
    """A Python or NumPy number (a NumPy 0-d array too): read now, a constant of the kernel."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real):
        return True
    return type(value).__module__ == "numpy" and getattr(value, "shape", None) == ()


class Call:
    """One call of a public loss: its backend, and its arrays checked and cast to the compute dtype.

    float16 and bfloat16 logits are computed in float32 and the results cast back. Hyperparameters
    given as arrays become the kernel's ``params`` (:meth:`hyper`, :meth:`vector`), each with its
    :class:`~focal._hyper.Slot` in ``slots``.
    """

    def __init__(
        self,
        logits: Array,
        targets: Array,
        *,
        reduction: str,
        weight: Any,
        normalizer: Any,
    ) -> None:
        self.backend: Backend = backend_for(logits)
        self.xp = xp = self.backend.xp
        self.device = self.backend.device(logits)
        self._logits_type = type(logits)
        if not _is_array(targets) or not hasattr(targets, "dtype"):
            raise TypeError(f"targets must be an array of the logits' library (or a NumPy array), got "
                            f"{type(targets).__name__}")
        self.targets = self.adopt("targets", targets)
        logits = self.backend.array(logits)
        if not xp.isdtype(logits.dtype, "real floating"):
            raise TypeError(f"logits must have a real floating dtype, got {logits.dtype}")
        # values are read back (eager checks that raise) only where that costs no device synchronisation
        # (focal._value_checks): one answer for the whole call
        self.reads = self.backend.reads_values(logits)
        self.logits_dtype = logits.dtype
        self.out_dtype = self.backend.result_dtype(logits)
        self.dtype = xp.float32 if xp.finfo(logits.dtype).bits < 32 else logits.dtype
        self.logits = self.cast(logits)
        self.shape = tuple(logits.shape)
        self.reduction = _checks.check_reduction(reduction)
        self.weight = self._check_weight(weight)
        self.normalizer = self._check_normalizer(normalizer)
        self.params: list[Array] = []
        self.slots: list[Slot] = []
        # a compiled path (PyTorch's, TensorFlow's) takes numbers as inputs too, so a new value is no new compile
        self.numbers_as_arrays = self.backend.compiles_kernel(self.logits)

    def hyper(self, name: str, value: Any, *, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
              high_open: bool = False, differentiable: bool = False, kernel: bool = True) -> Any:
        """A real hyperparameter: a number is checked and returned as a float; a 0-d array of the logits'
        library (concrete or traced) becomes a param of the kernel and its :class:`Slot` is returned
        (or, for a value used outside the kernel, ``kernel=False``, the checked array itself, whose gradient
        the framework's autodiff carries through the planner's code where ``differentiable``).

        Values outside ``[low, high]`` (an end excluded with ``low_open``, ``high_open``) are a ``ValueError``
        eagerly and NaN where they cannot be read (``within``). Without ``differentiable`` asking
        for the array's gradient is a ``TypeError``.
        """
        if _is_number(value):
            number = _checks.check_number(name, value, low=low, high=high, high_open=high_open)
            if low_open and number == low:
                raise ValueError(f"{name} must be > {low:g}, got {number!r}")
            if not (kernel and self.numbers_as_arrays):
                return number
            # a number has no gradient to give: its slot is not differentiable, and needs no guard
            return self._slot(name, self.xp.full((), number, dtype=self.dtype, device=self.device), False,
                              guard=False)
        array = self._param_array(name, value, "a real number or a 0-d array")
        if array.ndim != 0:
            raise ValueError(f"{name} must be a scalar (a number or a 0-d array), got an array of shape "
                             f"{tuple(array.shape)}")
        expected = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        array = self.within(name, array, low, high, expected, low_open=low_open, high_open=high_open)
        if not kernel:  # used by the planner's own array code: the framework's autodiff takes it from there
            return array if differentiable else self.backend.no_gradient(name, array)
        return self._slot(name, array, differentiable)

    def vector(self, name: str, value: Any, classes: int, *, axis: int, per_class: str = "value",
               differentiable: bool = False) -> Slot:
        """A per-class hyperparameter, finite and >= 0 (a sequence of numbers or a 1-d array of length C),
        as a param of the kernel, viewed along ``axis`` of the logits."""
        if isinstance(value, (list, tuple)):
            numbers_ = [_checks.check_number(f"{name}[{i}]", v, low=0.0, high=math.inf, high_open=True)
                        for i, v in enumerate(value)]
            array = self.from_host(numbers_, self.dtype)
        else:
            array = self._param_array(name, value, "a number, a sequence or an array of one value per class")
            array = self.within(name, array, 0.0, float(self.xp.finfo(self.dtype).max),
                                "finite and >= 0 for every class")
        if tuple(array.shape) != (classes,):
            raise ValueError(f"{name} has shape {tuple(array.shape)}, expected ({classes},): one {per_class} per class")
        view = tuple(classes if i == axis else 1 for i in range(len(self.shape)))
        return self._slot(name, array, differentiable, view=view)

    def broadcast_param(self, name: str, value: Any, *, differentiable: bool = False) -> Slot:
        """An array hyperparameter ``>= 0`` of any shape that broadcasts against the logits (``pos_weight``)."""
        array = self._param_array(name, value, "a number, a sequence or an array that broadcasts against the logits")
        _checks.broadcast_shape(name, tuple(array.shape), self.shape)
        array = self.within(name, array, 0.0, float(self.xp.finfo(self.dtype).max), "finite and >= 0")
        return self._slot(name, array, differentiable)

    def _param_array(self, name: str, value: Any, expected: str) -> Array:
        if not _is_array(value) or not hasattr(value, "dtype"):
            raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
        array = self.adopt(name, value)
        if not self.xp.isdtype(array.dtype, ("real floating", "integral")):
            raise TypeError(f"{name} must be a real number or array, got an array of dtype {array.dtype}")
        return self.cast(array)

    def _slot(self, name: str, array: Array, differentiable: bool, view: tuple[int, ...] = (),
              guard: bool = True) -> Slot:
        if not differentiable and guard:
            array = self.backend.no_gradient(name, array)
        slot = Slot(name, len(self.params), tuple(array.shape), view or tuple(array.shape), differentiable)
        self.params.append(array)
        self.slots.append(slot)
        return slot

    def target_slot(self, y: Array, view: tuple[int, ...] = ()) -> Slot:
        """Float targets ``y`` (as the kernel reads them, checked and cast) as an input of the kernel with a
        gradient: the kernel gives ``∂loss/∂y`` beside ``∂loss/∂x`` where it is asked for (a target that requires a
        gradient, ``jax.grad`` w.r.t. the targets, a tape watching them), and the framework's autodiff carries it
        back through whatever made ``y`` from the targets given (a cast, label smoothing, a two-hot). ``view``: the
        shape the kernel's partial has (``y``'s own by default)."""
        return self._slot(TARGETS, y, True, view=view)

    def adopt(self, name: str, value: Any) -> Array:
        """``value`` as an array of the logits' library on the logits' device: an array of that library as it is
        (a TensorFlow variable read as a tensor), a NumPy array as a constant moved there (no gradient, as a list
        would be); an array of another library is a ``TypeError``."""
        if not self.backend.owns(value) and type(value).__module__ == "numpy":
            return self.from_host(value)
        self.own(name, value)
        return self.backend.array(value)

    def from_host(self, value: Any, dtype: Any = None) -> Array:
        """Host data (a sequence of numbers, a NumPy array) as an array on the logits' device, copied without
        waiting for the device."""
        return self.backend.from_host(value, dtype, self.device)

    def own(self, name: str, value: Array) -> None:
        """``value`` must be an array of the logits' library on the logits' device."""
        if not self.backend.owns(value):
            logits = self._logits_type
            raise TypeError(
                f"{name} is a {type(value).__module__}.{type(value).__qualname__} but logits is a "
                f"{logits.__module__}.{logits.__qualname__}: pass arrays of one library"
            )
        device = self.backend.device(value)
        if self.device is not None and device is not None and device != self.device:
            raise ValueError(f"{name} is on device {device} but logits is on {self.device}: move them to one device")

    def within(self, name: str, x: Array, low: float, high: float, expected: str, *, low_open: bool = False,
               high_open: bool = False) -> Array:
        """``x``, whose values must lie in ``[low, high]`` (either end excluded with ``low_open``,
        ``high_open``; NaN passes: it propagates like a NaN logit).

        Where values are read (:meth:`readable`) an element outside is a ``ValueError`` naming ``name``; where
        they are not (traced, or on an accelerator), those elements become NaN, so the loss and gradient they touch
        show it.
        """
        xp = self.xp

        def below(v: Array) -> Array:
            return (v <= low) if low_open else (v < low)

        def above(v: Array) -> Array:
            return (v >= high) if high_open else (v > high)

        def outside_of(v: Array) -> Array:
            return below(v) | above(v)

        if not self.readable(x):
            return xp.where(outside_of(x), math.nan, x)
        if math.prod(x.shape) == 0:
            return x
        # the extrema and one read, no boolean array the size of x: this runs on every eager call
        smallest, largest = self.backend.extrema(x)
        if self.known(below(smallest) | above(largest)):
            outside = outside_of(x)
            smallest = float(xp.min(xp.where(outside, x, math.inf)))
            largest = float(xp.max(xp.where(outside, x, -math.inf)))
            got = f"{smallest:g}" if smallest == largest else f"values from {smallest:g} to {largest:g}"
            raise ValueError(f"{name} must be {expected}, got {got}")
        return x

    def cast(self, x: Array) -> Array:
        return x if x.dtype == self.dtype else self.xp.astype(x, self.dtype)

    def out(self, x: Array, *, gradient: bool = False) -> Array:
        """A loss in the loss dtype, or (``gradient=True``) a gradient in the logits' own dtype."""
        dtype = self.logits_dtype if gradient else self.out_dtype
        return x if dtype == self.dtype else self.xp.astype(x, dtype)

    def readable(self, x: Array) -> bool:
        """Whether this call reads ``x``'s values back to check them: ``x`` is concrete, and the logits' device is
        read (by default the CPU's alone: ``focal.set_value_checks``)."""
        return self.reads and self.backend.is_concrete(x)

    def known(self, check: Array) -> Any:
        """The Python value of a 0-d check result, or None where it is not read (:meth:`readable`: traced by
        ``jit``, ``tf.function`` or ``torch.compile``, or on an accelerator), and the kernels mark bad elements
        NaN."""
        if not self.readable(check):
            return None
        return bool(check) if self.xp.isdtype(check.dtype, "bool") else float(check)

    def _check_weight(self, weight: Any) -> Any:
        """None, a number ``>= 0``, or a real array whose values are ``>= 0`` (a negative one is a ``ValueError``
        eagerly and NaN where values cannot be read, as every weight)."""
        if weight is None:
            return None
        is_bool = isinstance(weight, bool)  # a bool is a numbers.Real, but no weight
        if not is_bool and _is_number(weight):
            return _checks.check_number("weight", weight, low=0.0, high=math.inf)
        if is_bool or not _is_array(weight) or not hasattr(weight, "dtype"):
            raise TypeError(f"weight must be None, a number or a real array, got {weight!r}")
        weight = self.adopt("weight", weight)
        if not self.xp.isdtype(weight.dtype, ("real floating", "integral", "bool")):
            raise TypeError(f"weight must be None, a number or a real array, got an array of dtype {weight.dtype}")
        return self.within("weight", self.cast(weight), 0.0, math.inf, ">= 0")

    def _check_normalizer(self, normalizer: Any) -> Any:
        if normalizer is None:
            return None
        if self.reduction == "none":
            raise ValueError("normalizer divides the summed loss: use it with reduction='mean' or 'sum', not 'none'")
        if _is_array(normalizer):
            normalizer = self.adopt("normalizer", normalizer)
            if math.prod(normalizer.shape) != 1:
                raise ValueError(f"normalizer must be a scalar, got an array of shape {tuple(normalizer.shape)}")
            normalizer = self.xp.reshape(self.cast(normalizer), ())
            return self.within("normalizer", normalizer, 0.0, math.inf, ">= 0")
        return _checks.check_number("normalizer", normalizer, low=0.0, high=float("inf"), high_open=True)


@dataclass
class LossPlan:
    """A checked call, ready to run: the kernel, what it reads, and how its output is reduced.

    ``loss_shape`` is the shape of the kernel's output; ``valid`` marks the loss elements that
    count in the mean (None: all of them).
    """

    call: Call
    kernel: Kernel
    aux: tuple[Array, ...]
    loss_shape: tuple[int, ...]
    valid: Array | None = None

    @property
    def params(self) -> tuple[Array, ...]:
        return tuple(self.call.params)

    @property
    def slots(self) -> tuple[Slot, ...]:
        return tuple(self.call.slots)

    def __post_init__(self) -> None:
        c = self.call
        if c.weight is not None and not isinstance(c.weight, float):
            _checks.broadcast_shape("weight", tuple(c.weight.shape), self.loss_shape)
        # probabilities: read (a ValueError if outside [0, 1]) and in range, the kernel need not look again; where
        # they are not read (traced, on an accelerator) the kernel itself marks them NaN, in its own pass
        if isinstance(self.kernel, FromProbabilities) and c.readable(c.logits):
            c.within("logits", c.logits, 0.0, 1.0, "probabilities in [0, 1] with from_logits=False")
            self.kernel = dataclasses.replace(self.kernel, checked=True)

    def loss(self) -> Array:
        quiet = self.call.backend.quiet()
        if quiet is None:
            return self._loss()
        with quiet:
            return self._loss()

    def value_and_grad(self) -> tuple[Array, Array]:
        quiet = self.call.backend.quiet()
        if quiet is None:
            return self._value_and_grad()
        with quiet:
            return self._value_and_grad()

    def _loss(self) -> Array:
        c = self.call
        if c.weight is None and c.reduction != "none" and summable(self.kernel):
            total = c.backend.apply(Summed(self.kernel), c.logits, self.aux, self.params, self.slots)
            return self.call.out(total / self._denominator())
        elements = c.backend.apply(self.kernel, c.logits, self.aux, self.params, self.slots)
        return self.call.out(self._reduce(elements))

    def _value_and_grad(self) -> tuple[Array, Array]:
        value, grad = self.compute()
        return self.call.out(value), self.call.out(grad, gradient=True)

    def compute(self, *, grad: bool = True, release: bool = False) -> tuple[Array, Array | None]:
        """The reduced loss and (with ``grad``) its gradient w.r.t. the logits, in the compute dtype, run outside
        any framework's autodiff (``value_and_grad``; a fused linear loss's chunks, which accumulate them in it).
        ``release``: the plan lets go of the logits once the kernel has read them (the caller holds none: a fused
        linear loss's chunk, one array the size of the logits fewer at the gradient's peak)."""
        c, xp = self.call, self.call.xp
        aux = tuple(c.backend.stop_gradient(a) for a in self.aux)
        params = tuple(c.backend.stop_gradient(p) for p in self.params)
        # a logits array the plan made (cast) or was handed to release is the kernel's to write over, where it can
        kernel = self.kernel.owning() if release and hasattr(self.kernel, "owning") else self.kernel
        if not grad:
            return self._reduce(value_of(kernel, xp, self._logits(release), aux, params)), None
        wanted = no_grads(len(params))
        # the namespace's own run of a kernel over logits it may write over (PyTorch's slices of an elementwise
        # kernel: the gradient written over the logits), summed inside where nothing weights the elements
        owned = getattr(xp, "forward_owned", None) if release else None
        if owned is not None and c.weight is None and c.reduction != "none" and summable(kernel):
            kernel = Summed(kernel)
        held = [self._logits(release)]
        out = None if owned is None else owned(kernel, held[0], aux, params, wanted)
        # no reference kept here (popped as it is passed): a kernel that lets go of the logits frees them
        elements, residuals = out if out is not None else kernel.forward(xp, held.pop(), aux, params, wanted)
        del held
        denominator = 1.0 if c.reduction == "none" else self._denominator()
        # the number 1 where the kernel takes one: its gradient as it is, nothing multiplied
        cotangent: Any = 1.0 if takes_number_cotangent(self.kernel) else xp.ones_like(elements)
        if c.weight is not None:
            cotangent = xp.ones_like(elements) * c.weight
        if not (isinstance(denominator, float) and denominator == 1.0):
            cotangent = cotangent / denominator
        gradient, _ = kernel.vjp(xp, residuals, cotangent, wanted, consume=release)
        return self._reduce(elements), gradient

    def _logits(self, release: bool) -> Array:
        logits = self.call.backend.stop_gradient(self.call.logits)
        if release:
            self.call.logits = None
        return logits

    def _reduce(self, elements: Array) -> Array:
        c = self.call
        if c.weight is not None:
            elements = elements * c.weight
        if c.reduction == "none":
            return elements
        return c.xp.sum(elements) / self._denominator()

    def _denominator(self) -> Any:
        valid, xp = self.valid, self.call.xp
        count = None if valid is None else (lambda: xp.sum(xp.astype(valid, self.call.dtype)))
        return denominator(self.call, math.prod(self.loss_shape), count)


def denominator(call: Call, elements: int, count: Callable[[], Array] | None) -> Any:
    """What the summed loss is divided by: ``max(normalizer, eps)``; 1 for ``"sum"``; for ``"mean"`` the ``count()``
    of the elements that are not ignored (an array, at least 1; computed only here), or all ``elements`` where none
    is (None)."""
    xp = call.xp
    if call.normalizer is not None:
        eps = float(xp.finfo(call.dtype).eps)
        return max(call.normalizer, eps) if isinstance(call.normalizer, float) else xp.maximum(call.normalizer, eps)
    if call.reduction == "sum":
        return 1.0
    if count is None:
        return float(max(elements, 1))
    return xp.maximum(count(), 1.0)


_PLANNERS: dict[Callable[..., Any], Callable[..., Any]] = {}
P = TypeVar("P", bound=Callable[..., Any])


def plans(public: Callable[..., Any]) -> Callable[[P], P]:
    """Register the planner behind a public loss, for ``value_and_grad`` (a :class:`LossPlan`, or any plan with
    ``value_and_grad()``: a fused linear loss's)."""

    def register(planner: P) -> P:
        _PLANNERS[public] = planner
        return planner

    return register


def planner_of(loss_fn: Callable[..., Any]) -> Callable[..., Any]:
    try:
        return _PLANNERS[loss_fn]
    except (KeyError, TypeError):
        raise TypeError(f"value_and_grad takes a focal loss function, got {loss_fn!r}") from None
