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
    """``focal._linear.fold_rows`` as a ``fori_loop`` over the whole chunks and one more call for a ragged last one,
    so that a compile does not grow with the number of rows. Each chunk's per-row outputs are written into arrays
    of every row carried through the loop (``lax.scan``'s stacked outputs would be reshaped and joined with the last
    chunk's after it: a copy of ``d hidden``, 8 MiB of XLA's temporaries at 4096 x 512). Concrete arrays (eager
    JAX) run a Python loop instead: the chunks' checks can then read their values and raise, where a loop would
    trace them."""
    from .._linear import loop_rows

    full = total // size
    if not builtins.any(isinstance(r, jax.core.Tracer) for r in rows) or full <= 1:
        return loop_rows(jnp, body, carry, rows, total, size)
    _, shapes = jax.eval_shape(body, carry, tuple(r[:size] for r in rows))
    outputs = tuple(None if s is None else jnp.zeros((total, *s.shape[1:]), s.dtype) for s in shapes)

    def write(outputs: tuple[Any, ...], out: tuple[Any, ...], start: Any) -> tuple[Any, ...]:
        return tuple(None if o is None else jax.lax.dynamic_update_slice_in_dim(o, y, start, axis=0)
                     for o, y in zip(outputs, out))

    def step(index: Any, state: Any) -> Any:
        carry, outputs = state
        start = index * size
        carry, out = body(carry, tuple(jax.lax.dynamic_slice_in_dim(r, start, size, axis=0) for r in rows))
        return carry, write(outputs, out, start)

    carry, outputs = jax.lax.fori_loop(0, full, step, (carry, outputs))
    if total > full * size:
        carry, out = body(carry, tuple(r[full * size:] for r in rows))
        outputs = write(outputs, out, full * size)
    return carry, outputs


def fold_classes(body: Any, carry: Any, classes: int, size: int) -> Any:
    """``focal._class_blocks.fold_classes``: a ``fori_loop`` over the whole blocks (``start`` traced; eagerly too,
    where a Python loop's ``write_rows`` would copy ``d weight`` a block at a time), after one call for the ragged
    last one: after the loop, XLA fuses that block's update of ``d weight`` with what reads ``d weight`` next (the
    cotangent's product) into a new array (2048 x 512 -> 128000: 263 MiB of temporaries against 9)."""
    full = classes // size
    if classes > full * size:
        carry = body(carry, full * size, classes - full * size)
    if full > 1:
        carry = jax.lax.fori_loop(0, full, lambda i, c: body(c, i * size, size), carry)
    elif full == 1:
        carry = body(carry, 0, size)
    return carry


stop_gradient = jax.lax.stop_gradient  # focal._numerics.held: a quantity held constant (detach_modulator)


def rows_at(x: Any, start: Any, width: int) -> Any:
    """``x[start:start + width]`` for a ``start`` traced in a loop."""
    return jax.lax.dynamic_slice_in_dim(x, start, width, axis=0)


def columns_at(x: Any, start: Any, width: int) -> Any:
    """``x[..., start:start + width]`` for a ``start`` traced in a loop."""
    return jax.lax.dynamic_slice_in_dim(x, start, width, axis=x.ndim - 1)


def broadcast_copies(x: Any) -> bool:
    """Whether ``broadcast_to`` beside ``x`` makes a new array: eagerly (a traced one is never made where nothing
    reads its values)."""
    return not isinstance(x, jax.core.Tracer)


def as_bits(x: Any) -> Any:
    """A 16-bit float array as its bits (``uint16``), for a loop to update its rows: XLA on the CPU copies a
    bfloat16 array whole for each update of its rows (128000 x 512 in 333 blocks: 3 s), its bits' in place."""
    if jnp.dtype(x.dtype).itemsize == 2 and jnp.issubdtype(x.dtype, jnp.floating):
        return jax.lax.bitcast_convert_type(x, jnp.uint16)
    return x


def from_bits(x: Any, dtype: Any) -> Any:
    """:func:`as_bits` undone."""
    return x if x.dtype == dtype else jax.lax.bitcast_convert_type(x, dtype)


def write_rows(x: Any, rows: Any, start: Any) -> Any:
    """``x`` with ``rows`` from row ``start`` on, in ``x``'s dtype (in place where nothing else reads ``x``: a
    compiled loop's carry)."""
    return jax.lax.dynamic_update_slice_in_dim(x, rows.astype(x.dtype), start, axis=0)


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
        # the last block ends at the last row (a ragged one overlaps the one before it, and adds only its rows not
        # added already): every block in the loop, none sliced at a fixed place after it, which XLA would fuse
        # into the producer of ``a`` and compute again from that producer's operand (one more chunk of logits)
        start = jnp.minimum(i * step, rows - step)
        product = jnp.matmul(jax.lax.dynamic_slice_in_dim(a, start, step, axis=1).T, b).astype(t.dtype)
        fresh = jnp.arange(step)[:, None] >= i * step - start
        block = jax.lax.dynamic_slice_in_dim(t, start, step, axis=0) + jnp.where(fresh, product, 0)
        return jax.lax.dynamic_update_slice_in_dim(t, block, start, axis=0)

    return jax.lax.fori_loop(0, -(-rows // step), add_block, total)


# focal._linear's default chunk floor: XLA keeps a chunk's logits and a block of d weight's product (4096 x 512 ->
# 32000, XLA's count: 18 MiB in chunks of 128 rows; smaller chunks make smaller, slower products)
min_chunk_rows = 128

# focal._linear.default_tiles' blocks of classes at half the logits of PyTorch's: beside a block's logits XLA holds
# d hidden's product (a chunk's rows x H: it does not fuse the add into the product) and a block of weight and of
# d weight's product (2048 x 512 -> 128000, XLA's count: 12.8 MiB in blocks of 896 classes, 8.4 in 448; the step
# 5% slower)
block_divisor = 2
