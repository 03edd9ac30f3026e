"""TensorFlow: the core's gradient wired in with ``tf.custom_gradient``, the core run on our shim.

Large inputs take a fused path: the kernel compiled by XLA (``tf.function(jit_compile=True)``),
the forward writing the loss and the gradient in one pass (the loss alone where no tape records
the logits) and the backward multiplying the gradient by the cotangent, so a plain ``tf.function``
or eager caller gets XLA's single pass over the elements. (Recomputing the kernel in the backward
read the inputs twice: softmax 2x19x256x512 under ``tf.function``, 2 cores, 31.9 ms against 16.3.)
A caller that is itself compiled by XLA gets the plain kernel, which its compile fuses. Set
``FOCAL_TF_FUSED=0`` to turn it off; ``FOCAL_TF_FUSED_MIN`` (default 65536) is the size from
which it is used.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from .._hyper import TARGETS, wanted_slots
from .._kernel import value_of
from . import _tf_namespace as xp
from ._base import Array, Backend, linear_second_order_message, no_gradient_message

FUSED_MIN_ELEMENTS = int(os.environ.get("FOCAL_TF_FUSED_MIN", 1 << 16))
FUSED = os.environ.get("FOCAL_TF_FUSED", "1") != "0"


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _fused_value(kernel: Any, logits: Array, aux: tuple[Array, ...], params: tuple[Array, ...]) -> Array:
    return value_of(kernel, xp, logits, aux, params)


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _fused_forward(kernel: Any, wanted: tuple[Any, ...], logits: Array, aux: tuple[Array, ...],
                   params: tuple[Array, ...]) -> Any:
    return kernel.forward(xp, logits, aux, params, wanted)


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _fused_vjp(kernel: Any, wanted: tuple[Any, ...], residuals: tuple[Array, ...], cotangent: Array) -> Any:
    grad, grads = kernel.vjp(xp, residuals, cotangent, wanted)
    return grad, tuple(g for g in grads if g is not None)


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _xla_linear_value(kernel: Any, hidden: Array, weight: Array, bias: Any, aux: tuple[Array, ...]) -> Array:
    return kernel.value(xp, hidden, weight, bias, aux)


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _xla_linear_forward(kernel: Any, wanted: tuple[bool, ...], hidden: Array, weight: Array, bias: Any,
                        aux: tuple[Array, ...]) -> Any:
    out, residuals = kernel.forward(xp, hidden, weight, bias, aux, wanted)
    return out, tuple(r for r in residuals if r is not None)


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _xla_linear_vjp(kernel: Any, wanted: tuple[bool, ...], hidden: Array, weight: Array, bias: Any,
                    aux: tuple[Array, ...], residuals: tuple[Array, ...], cotangent: Array) -> Any:
    given = iter(residuals)
    full = tuple(next(given) if want else None for want in wanted) if kernel.reduce else ()
    grads = kernel.vjp(xp, (hidden, weight, bias, aux), full, cotangent, wanted)
    return tuple(g for g in grads if g is not None)


def _is_one(x: Array) -> bool:
    """Whether ``x`` is known to be 1 where the graph is built: a ``GradientTape``'s seed of a scalar loss is a
    constant ``ones_like``, eagerly and in a ``tf.function``. Never read back from an accelerator (eagerly that is a
    device-to-host synchronisation: the product is cheaper)."""
    if tf.executing_eagerly() and not _host_device(x.device):
        return False
    value = tf.get_static_value(x)
    return value is not None and getattr(value, "shape", None) == () and float(value) == 1.0


@functools.lru_cache(maxsize=64)
def _host_device(name: str) -> bool:
    """Whether a tensor's device name (``/job:localhost/replica:0/task:0/device:GPU:0``) is a CPU's; an
    unplaced tensor's empty name counts as the CPU's."""
    return tf.DeviceSpec.from_string(name).device_type in (None, "CPU")


def _inside_xla() -> bool:
    """Whether the caller is already being compiled by XLA (``jit_compile=True``, Keras' XLA mode):
    XLA then fuses the plain kernel, and keeping its residual beats recomputing it in the backward."""
    return xp.inside_xla()


_interned: dict[Any, Any] = {}


def _intern(value: Any) -> Any:
    """One object per distinct kernel (or tuple of slots): tf.function traces a Python object by a weak
    reference to it, so equal kernels made by two calls would otherwise be two traces (and two XLA
    compiles); kernels are hashable by value."""
    return _interned.setdefault(value, value)


def _recorded(x: Array) -> bool:
    """Whether a gradient tape may ask for the gradient of ``x``. Eagerly the tapes say; inside a
    graph (``tf.function``) a tape outside it may differentiate the whole graph later, so yes (the
    partials are then pruned from the graph where no gradient is taken)."""
    if not tf.executing_eagerly():
        return True
    try:
        from tensorflow.python.eager import record

        return bool(record.should_record_backprop([x]))
    except Exception:  # a private API: where it moves, compute the partials (correct, a little slower)
        return True


def _fused_wanted(logits: Array) -> bool:
    shape = logits.shape
    return (FUSED and shape.is_fully_defined() and math.prod(shape.as_list()) >= FUSED_MIN_ELEMENTS
            and not _inside_xla())


class TensorFlowBackend(Backend):
    name = "tensorflow"

    def owns(self, x: Any) -> bool:
        return tf.is_tensor(x) or isinstance(x, tf.Variable)

    def array(self, x: Any) -> Array:
        return tf.convert_to_tensor(x)

    def device(self, x: Array) -> Any:
        return None  # TensorFlow copies tensors between devices itself

    def is_concrete(self, x: Array) -> bool:
        return tf.executing_eagerly() and hasattr(x, "numpy")

    def on_host(self, x: Array) -> bool:
        return _host_device(getattr(x, "device", ""))

    def compiles_kernel(self, logits: Array) -> bool:
        return _fused_wanted(logits)

    def no_gradient(self, name: str, x: Array) -> Array:
        @tf.custom_gradient
        def guarded(value: Array) -> Any:
            def refuse(upstream: Array) -> Any:  # only called where a gradient w.r.t. x is being taken
                raise TypeError(no_gradient_message(name))

            return tf.identity(value), refuse

        return guarded(x)

    def apply(self, kernel: Any, logits: Array, aux: Sequence[Array], params: Sequence[Array],
              slots: Sequence[Any]) -> Array:
        aux, params = tuple(aux), tuple(params)
        wanted = wanted_slots(slots, (slot.differentiable and _recorded(p) for slot, p in zip(slots, params)))

        def spread(grad: Array, grads: Sequence[Array | None]) -> list[Array | None]:
            # a param without a gradient gets 0 here, so that the tape reaches its no_gradient guard
            # (which refuses) rather than stopping at None
            return [grad, *(tf.zeros_like(p) if not slot.differentiable else g
                            for g, p, slot in zip(grads, params, slots))]

        if _fused_wanted(logits):
            # In a graph a tape may ask for any gradient later, so every slot counts as wanted; the targets' partial,
            # rarely used, is then not written by the fused forward but by a pass of its own in the backward, which
            # the graph drops wherever no gradient w.r.t. the targets is used (a Keras step: always)
            now = wanted if tf.executing_eagerly() else tuple(
                None if slot is not None and slot.name == TARGETS else slot for slot in wanted)
            late = tuple(slot if now_slot is None else None for slot, now_slot in zip(wanted, now))
            kernel, now, late = _intern(kernel), _intern(now), _intern(late)

            if not (_recorded(logits) or any(wanted)):
                return _fused_value(kernel, logits, aux, params)

            @tf.custom_gradient
            def fused(x: Array, *ps: Array) -> Any:
                out, residuals = _fused_forward(kernel, now, x, aux, ps)

                def backward(upstream: Array) -> Any:
                    grad, moved = _fused_vjp(kernel, now, residuals, upstream)
                    grads = iter(moved)
                    found = [None if slot is None else next(grads) for slot in now]
                    if any(late):
                        _, late_residuals = _fused_forward(kernel, late, x, aux, ps)
                        _, late_moved = _fused_vjp(kernel, late, late_residuals, upstream)
                        more = iter(late_moved)
                        found = [next(more) if slot is not None else g for g, slot in zip(found, late)]
                    return spread(grad, found)

                return out, backward

            return fused(logits, *params)

        # eagerly, no tape watches the logits nor any hyperparameter (one without a gradient must reach its guard,
        # which refuses): the loss alone
        if not (_recorded(logits) or any(_recorded(p) for p in params)):
            return value_of(kernel, xp, logits, aux, params)

        @tf.custom_gradient
        def with_kernel_vjp(x: Array, *ps: Array) -> Any:
            out, residuals = kernel.forward(xp, x, aux, ps, wanted)
            return out, lambda upstream: spread(*kernel.vjp(xp, residuals, upstream, wanted))

        return with_kernel_vjp(logits, *params)

    def apply_linear(self, kernel: Any, hidden: Array, weight: Array, bias: Array | None,
                     aux: tuple[Array, ...]) -> Array:
        primals = (hidden, weight) if bias is None else (hidden, weight, bias)
        floats = tuple(a for a in aux if a.dtype.is_floating)
        if not any(_recorded(x) for x in (*primals, *floats)):
            if FUSED and not _inside_xla():
                return _xla_linear_value(_intern(kernel), hidden, weight, bias, aux)
            return kernel.value(xp, hidden, weight, bias, aux)
        wanted = (_recorded(hidden), _recorded(weight), bias is not None and _recorded(bias))
        # compiled by XLA (as JAX's jit does), unless the caller is: TensorFlow's kernels one by one cost 1.4x
        xla = FUSED and not _inside_xla()
        kernel, wanted = _intern(kernel), _intern(wanted)

        @tf.custom_gradient
        def fused(*args: Array) -> Any:
            # the float aux are inputs too: their gradient, 0 here, reaches their no_gradient guard, which refuses
            h, w, *rest = args[:len(primals)]
            b = rest[0] if rest else None
            given = iter(args[len(primals):])
            inputs = tuple(next(given) if a.dtype.is_floating else a for a in aux)
            if xla:  # inputs cut from the tape: a recorded call would keep the loop's accumulators for a gradient
                h, w, b = (None if x is None else tf.stop_gradient(x) for x in (h, w, b))
                out, residuals = _xla_linear_forward(kernel, wanted, h, w, b, inputs)
            else:
                out, full = kernel.forward(xp, h, w, b, inputs, wanted)
                residuals = tuple(r for r in full if r is not None)

            def backward(upstream: Array) -> Any:
                if tf.executing_eagerly() and any(_recorded(x) for x in args[:len(primals)]):
                    # an outer tape differentiates this backward, whose saved gradients it cannot (a Hessian)
                    raise NotImplementedError(linear_second_order_message("TensorFlow", "a nested GradientTape"))
                if kernel.reduce and _is_one(upstream):  # a tape's own seed: the forward's gradients as they are
                    grads = iter(residuals)
                elif xla:
                    grads = iter(_xla_linear_vjp(kernel, wanted, h, w, b, inputs, residuals, upstream))
                else:
                    given = iter(residuals)
                    full = tuple(next(given) if want else None for want in wanted) if kernel.reduce else ()
                    grads = iter(g for g in kernel.vjp(xp, (h, w, b, inputs), full, upstream, wanted) if g is not None)
                found = [next(grads) if want else tf.zeros_like(p) for want, p in zip(wanted, args[:len(primals)])]
                return found + [tf.zeros_like(a) for a in args[len(primals):]]

            return out, backward

        return fused(*primals, *floats)

    def quiet(self) -> Any:
        return None  # no floating-point warnings to silence

    def stop_gradient(self, x: Array) -> Array:
        return tf.stop_gradient(x)


BACKEND = TensorFlowBackend(xp)
