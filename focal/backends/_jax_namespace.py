"""``jax.numpy`` as the core's namespace, with the derivatives JAX needs to differentiate the core's gradient.

A Hessian (``jax.hessian``: forward over reverse) makes JAX differentiate the kernels' analytic gradient, op by
op. Three of JAX's rules give a wrong or NaN second derivative there; the same functions, with the standard's
names and values, fix them (the other namespaces compute these as they are):

- ``divide``: JAX differentiates ``a / b`` as ``da / b − a db b⁻²``; once ``b`` is below the square root of the
  smallest normal (1e-19 in float32) ``b⁻²`` overflows to inf while ``a db`` underflows to 0, and their product
  is NaN. The core divides by such quantities on purpose (``1 − p`` near 1, a floored ``1 − p_t``: values that
  stay exact) and calls ``xp.divide`` there; here ``d(a/b) = (da − (a/b) db) / b``, without the square.
- ``abs``: JAX's derivative at 0 is ``sign(0) = 0``. The core writes ``σ(x)`` and ``log σ(x)`` from
  ``exp(−|x|)`` and picks the branch of ``x ≥ 0``, so at ``x = 0`` exactly (zero-initialised logits) every
  derivative must be that branch's: here ``d|x| = dx`` at 0.
- ``minimum``/``maximum`` with a number: JAX splits the derivative in two at a tie. The core's ``min(x, 0)``,
  ``max(−x, 0)`` and its floors are the number's branch at a tie, for the same reason: here the derivative
  of the number's side, 0.
"""

from __future__ import annotations

import builtins
import functools
from typing import Any

import jax
import jax.numpy as jnp

__array_api_version__ = jnp.__array_api_version__


@jax.custom_jvp
def divide(x1: Any, x2: Any, /) -> Any:
    return jnp.divide(x1, x2)


@divide.defjvp
def _divide_jvp(primals: Any, tangents: Any) -> Any:
    x1, x2 = primals
    t1, t2 = tangents
    quotient = divide(x1, x2)
    return quotient, divide(t1 - quotient * t2, x2)


@jax.custom_jvp
def abs(x: Any, /) -> Any:  # noqa: A001 - the standard's name
    return jnp.abs(x)


@abs.defjvp
def _abs_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return jnp.abs(x), jnp.where(x >= 0, t, -t)


def _number(x: Any) -> bool:
    return isinstance(x, (builtins.int, builtins.float)) and not isinstance(x, builtins.bool)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _min_number(x: Any, c: float) -> Any:
    return jnp.minimum(x, c)


@_min_number.defjvp
def _min_number_jvp(c: float, primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return jnp.minimum(x, c), jnp.where(x < c, t, jnp.zeros_like(t))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max_number(x: Any, c: float) -> Any:
    return jnp.maximum(x, c)


@_max_number.defjvp
def _max_number_jvp(c: float, primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return jnp.maximum(x, c), jnp.where(x > c, t, jnp.zeros_like(t))


def minimum(x1: Any, x2: Any, /) -> Any:
    if _number(x2):
        return _min_number(x1, x2)
    if _number(x1):
        return _min_number(x2, x1)
    return jnp.minimum(x1, x2)


def maximum(x1: Any, x2: Any, /) -> Any:
    if _number(x2):
        return _max_number(x1, x2)
    if _number(x1):
        return _max_number(x2, x1)
    return jnp.maximum(x1, x2)


def fold_rows(body: Any, carry: Any, rows: tuple[Any, ...], total: int, size: int) -> Any:
    """``focal._linear.fold_rows`` as ``lax.scan`` over the whole chunks and one more call for a ragged last one,
    so that a compile does not grow with the number of rows. Concrete arrays (eager JAX) run a Python loop
    instead: the chunks' checks can then read their values and raise, where a scan would trace them."""
    from .._linear import join_rows, loop_rows

    full = total // size
    if not builtins.any(isinstance(r, jax.core.Tracer) for r in rows) or full <= 1:
        return loop_rows(jnp, body, carry, rows, total, size)
    stacked = tuple(jnp.reshape(r[:full * size], (full, size, *r.shape[1:])) for r in rows)
    carry, ys = jax.lax.scan(body, carry, stacked)
    outputs = [tuple(None if y is None else jnp.reshape(y, (full * size, *y.shape[2:])) for y in ys)]
    if total > full * size:
        carry, out = body(carry, tuple(r[full * size:] for r in rows))
        outputs.append(out)
    return carry, join_rows(jnp, outputs)


def __getattr__(name: str) -> Any:
    return getattr(jnp, name)


def matmul_add_tn(total: Any, a: Any, b: Any) -> Any:
    """``total + a.T @ b``. Traced: in blocks of ``total``'s rows, a ``fori_loop`` adding each block's product in
    place, so that one block's product is alive at a time: on the CPU XLA does not fuse the add into the product (one
    product would be a temporary the size of ``d weight``: 172 MiB at 4096 rows x 32000 classes x 512, XLA's count),
    and the blocks of a Python loop are independent of each other, which XLA's scheduler then runs side by side
    (136 MiB; the loop: 110). Eagerly one product and one sum (an eager ``.at[].add`` copies the whole array)."""
    from .._linear import weight_blocks

    rows = total.shape[0]
    blocks, step = weight_blocks(rows)
    if blocks < 2 or not (isinstance(total, jax.core.Tracer) or isinstance(a, jax.core.Tracer)):
        return total + jnp.matmul(a.T, b).astype(total.dtype)

    def add_block(i: Any, t: Any) -> Any:
        start = i * step
        product = jnp.matmul(jax.lax.dynamic_slice_in_dim(a, start, step, axis=1).T, b)
        block = jax.lax.dynamic_slice_in_dim(t, start, step, axis=0) + product.astype(t.dtype)
        return jax.lax.dynamic_update_slice_in_dim(t, block, start, axis=0)

    total = jax.lax.fori_loop(0, blocks, add_block, total)
    if blocks * step < rows:  # the rows left over: fewer than the blocks
        total = total.at[blocks * step:].add(jnp.matmul(a[:, blocks * step:].T, b).astype(total.dtype))
    return total


# focal._linear's default chunk floor: XLA keeps about two chunk-sized arrays alive beside d weight and d hidden
# (4096 x 512 -> 32000, XLA's count: 88 MiB in chunks of 64 rows, 110 in 128, 142 in 256; 128 is the largest
# under 1/8 of the unfused loss's 1071; smaller chunks make smaller, slower products)
min_chunk_rows = 128
