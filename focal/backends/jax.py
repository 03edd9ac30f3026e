"""JAX: the core's gradient wired in as a ``jax.custom_jvp``.

The kernel gives a VJP; its JVP is the linear transpose of that VJP. A JVP rule (rather than a
``custom_vjp``) keeps forward mode working, so ``jax.jacfwd`` and ``jax.hessian`` compose with
``jax.grad``; reverse mode transposes the rule back into the kernel's VJP.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ._base import Array, Backend


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _apply(kernel: Any, logits: Array, *aux: Array) -> Array:
    return kernel.forward(jnp, logits, *aux)[0]


@_apply.defjvp
def _apply_jvp(kernel: Any, primals: Any, tangents: Any) -> Any:
    logits, *aux = primals
    out, residuals = kernel.forward(jnp, logits, *aux)
    (tangent,) = jax.linear_transpose(lambda g: kernel.vjp(jnp, residuals, g), out)(tangents[0])
    return out, tangent


class JaxBackend(Backend):
    name = "jax"

    def owns(self, x: Any) -> bool:
        return isinstance(x, jax.Array)

    def is_concrete(self, x: Array) -> bool:
        return not isinstance(x, jax.core.Tracer)

    def apply(self, kernel: Any, logits: Array, aux: Sequence[Array]) -> Array:
        return _apply(kernel, logits, *(jax.lax.stop_gradient(a) for a in aux))

    def stop_gradient(self, x: Array) -> Array:
        return jax.lax.stop_gradient(x)


BACKEND = JaxBackend(jnp)
