"""JAX: the core's gradient wired in as a ``jax.custom_jvp``.

The kernel gives a VJP; its JVP is the linear transpose of that VJP. A JVP rule (rather than a
``custom_vjp``) keeps forward mode working, so ``jax.jacfwd`` and ``jax.hessian`` compose with
``jax.grad``; reverse mode transposes the rule back into the kernel's VJP. Hyperparameters given
as arrays are differentiable inputs: the rule sees which of them carry a tangent (symbolic zeros
mark the others), and the kernel computes the partials of those only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from .._hyper import wanted_slots
from .._kernel import value_of
from . import _jax_namespace as xp
from ._base import Array, Backend, linear_second_order_message, no_gradient_message


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _apply(kernel: Any, slots: tuple[Any, ...], logits: Array, aux: tuple[Array, ...],
           params: tuple[Array, ...]) -> Array:
    return value_of(kernel, xp, logits, aux, params)


def _apply_jvp(kernel: Any, slots: tuple[Any, ...], primals: Any, tangents: Any) -> Any:
    logits, aux, params = primals
    logits_tangent, _, param_tangents = tangents
    wanted = wanted_slots(slots, (not isinstance(t, SymbolicZero) for t in param_tangents))
    out, residuals = kernel.forward(xp, logits, aux, params, wanted)

    def vjp(cotangent: Array) -> Any:
        grad, grads = kernel.vjp(xp, residuals, cotangent, wanted)
        return grad, tuple(g for g in grads if g is not None)

    if isinstance(logits_tangent, SymbolicZero):
        logits_tangent = jnp.zeros_like(logits)
    moved = tuple(t for t, slot in zip(param_tangents, wanted) if slot is not None)
    (tangent,) = jax.linear_transpose(vjp, out)((logits_tangent, moved))
    return out, tangent


_apply.defjvp(_apply_jvp, symbolic_zeros=True)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _no_gradient(name: str, x: Array) -> Array:
    return x


@_no_gradient.defjvp
def _no_gradient_jvp(name: str, primals: Any, tangents: Any) -> Any:
    # only called where a tangent reaches x: its gradient is being asked for
    raise TypeError(no_gradient_message(name))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _apply_linear(kernel: Any, hidden: Array, weight: Array, bias: Array | None, aux: tuple[Array, ...]) -> Array:
    return kernel.value(xp, hidden, weight, bias, aux)


def _apply_linear_fwd(kernel: Any, hidden: Array, weight: Array, bias: Array | None, aux: tuple[Array, ...]) -> Any:
    # which of hidden, weight and bias a cotangent is wanted for is not known here: all three (a jit drops the
    # matmuls of those never used)
    out, residuals = kernel.forward(xp, hidden, weight, bias, aux, (True, True, bias is not None))
    return out, (hidden, weight, bias, aux, residuals)


@jax.custom_jvp
def _no_second_order(x: Array) -> Array:
    return x


def _no_second_order_jvp(primals: Any, tangents: Any) -> Any:
    # called where the backward below is itself differentiated (jax.hessian, jacrev over grad): its saved gradients
    # are constants there, whose derivative would be a silent zero
    (x,), (t,) = primals, tangents
    if not isinstance(t, SymbolicZero):
        raise NotImplementedError(linear_second_order_message("JAX", "jax.hessian, jax.jacrev or jax.jvp of jax.grad"))
    return x, jnp.zeros_like(x)


_no_second_order.defjvp(_no_second_order_jvp, symbolic_zeros=True)


def _apply_linear_bwd(kernel: Any, saved: Any, cotangent: Array) -> Any:
    hidden, weight, bias, aux, residuals = saved
    for x in (hidden, weight, bias, cotangent):
        if x is not None:
            _no_second_order(x)
    grads = kernel.vjp(xp, (hidden, weight, bias, aux), residuals, cotangent, (True, True, bias is not None))
    # the aux have no gradient here: 0 (a float one went through no_gradient first, whose JVP refuses)
    zeros = tuple(jnp.zeros_like(a) if jnp.issubdtype(a.dtype, jnp.inexact) else
                  np.zeros(a.shape, dtype=jax.dtypes.float0) for a in aux)
    return (*grads, zeros)


_apply_linear.defvjp(_apply_linear_fwd, _apply_linear_bwd)


class JaxBackend(Backend):
    name = "jax"

    def owns(self, x: Any) -> bool:
        return isinstance(x, jax.Array)

    def is_concrete(self, x: Array) -> bool:
        return not isinstance(x, jax.core.Tracer)

    def device(self, x: Array) -> Any:
        # eager autodiff (jax.grad, jax.jvp outside jit) wraps the concrete array it differentiates: the arrays a call
        # makes go where that one lives (a jit's tracer has none: the compile places them)
        # (which may still be the NumPy array the user passed: then JAX places it)
        while isinstance(x, jax.core.Tracer):
            x = getattr(x, "primal", None)
        return super().device(x) if isinstance(x, jax.Array) else None

    def on_host(self, x: Array) -> bool:
        return all(device.platform == "cpu" for device in x.devices())

    def no_gradient(self, name: str, x: Array) -> Array:
        return _no_gradient(name, x)

    def apply(self, kernel: Any, logits: Array, aux: Sequence[Array], params: Sequence[Array],
              slots: Sequence[Any]) -> Array:
        return _apply(kernel, tuple(slots), logits, tuple(jax.lax.stop_gradient(a) for a in aux), tuple(params))

    def apply_linear(self, kernel: Any, hidden: Array, weight: Array, bias: Array | None,
                     aux: tuple[Array, ...]) -> Array:
        return _apply_linear(kernel, hidden, weight, bias, tuple(aux))

    def quiet(self) -> Any:
        return None  # no floating-point warnings to silence

    def stop_gradient(self, x: Array) -> Array:
        return jax.lax.stop_gradient(x)


BACKEND = JaxBackend(xp)
