"""JAX: the core's gradient wired in as a ``jax.custom_jvp``.

A JVP rule (rather than a VJP) keeps forward mode working, so ``jax.jacfwd`` and ``jax.hessian``
compose with ``jax.grad``; reverse mode transposes the rule, which is linear in the tangent.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from ._base import Array, Backend, Kernel


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _elementwise(kernel: Kernel, expand_axis: int | None, logits: Array, *aux: Array) -> Array:
    return kernel(jnp, logits, *aux)[0]


@_elementwise.defjvp
def _elementwise_jvp(kernel: Kernel, expand_axis: int | None, primals: Any, tangents: Any) -> Any:
    logits, *aux = primals
    loss, dloss = kernel(jnp, logits, *aux)
    tangent = dloss * tangents[0]
    if expand_axis is not None:
        tangent = jnp.sum(tangent, axis=expand_axis)
    return loss, tangent


class JaxBackend(Backend):
    name = "jax"

    def owns(self, x: Any) -> bool:
        return isinstance(x, jax.Array)

    def is_concrete(self, x: Array) -> bool:
        return not isinstance(x, jax.core.Tracer)

    def elementwise(self, kernel: Kernel, logits: Array, aux: Sequence[Array], expand_axis: int | None) -> Array:
        aux = tuple(jax.lax.stop_gradient(a) for a in aux)
        return _elementwise(kernel, expand_axis, logits, *aux)

    def stop_gradient(self, x: Array) -> Array:
        return jax.lax.stop_gradient(x)


BACKEND = JaxBackend(jnp)
