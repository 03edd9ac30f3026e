"""The subset of the array API standard that the core uses, over TensorFlow.

array-api-compat has no TensorFlow namespace, and ``tf.experimental.numpy`` promotes Python floats
to float64 unless NumPy behaviour is switched on globally (which would change users' programs).
So this is our own, small and explicit: each function maps onto ``tf`` ops, and a Python scalar
operand takes the dtype of the array beside it, as the standard says.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

__array_api_version__ = "2024.12"

Array = Any

bool = tf.bool  # noqa: A001 - the standard's name
int8, int16, int32, int64 = tf.int8, tf.int16, tf.int32, tf.int64
uint8, uint16, uint32, uint64 = tf.uint8, tf.uint16, tf.uint32, tf.uint64
float16, bfloat16, float32, float64 = tf.float16, tf.bfloat16, tf.float32, tf.float64
inf = float("inf")
nan = float("nan")

_KINDS: dict[str, Callable[[Any], builtins.bool]] = {
    "bool": lambda d: d == tf.bool,
    "signed integer": lambda d: d.is_integer and not d.is_unsigned,
    "unsigned integer": lambda d: d.is_integer and d.is_unsigned,
    "integral": lambda d: d.is_integer,
    "real floating": lambda d: d.is_floating,
    "complex floating": lambda d: d.is_complex,
    "numeric": lambda d: d.is_integer or d.is_floating or d.is_complex,
}


def _pair(a: Any, b: Any) -> tuple[Array, Array]:
    """Give a Python scalar the dtype of the tensor beside it."""
    if not tf.is_tensor(a):
        a = tf.constant(a, dtype=b.dtype)
    elif not tf.is_tensor(b):
        b = tf.constant(b, dtype=a.dtype)
    return a, b


def isdtype(dtype: Any, kind: Any) -> Any:
    dtype = tf.as_dtype(dtype)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return builtins.any(_KINDS[k](dtype) if isinstance(k, str) else dtype == k for k in kinds)


def finfo(dtype: Any) -> Any:
    import ml_dtypes  # TensorFlow's own dependency; NumPy's finfo does not know bfloat16

    return ml_dtypes.finfo(tf.as_dtype(dtype).as_numpy_dtype)


def iinfo(dtype: Any) -> Any:
    return np.iinfo(tf.as_dtype(dtype).as_numpy_dtype)


def asarray(obj: Any, *, dtype: Any = None, device: Any = None, copy: Any = None) -> Array:
    if tf.is_tensor(obj):
        return obj if dtype is None else tf.cast(obj, dtype)
    return tf.convert_to_tensor(obj, dtype=dtype)


def astype(x: Array, dtype: Any, /, *, copy: Any = True, device: Any = None) -> Array:
    return tf.cast(x, dtype)


def arange(stop: int, *, dtype: Any = None, device: Any = None) -> Array:
    return tf.range(stop, dtype=dtype or tf.int64)


def reshape(x: Array, shape: tuple[int, ...], /) -> Array:
    return tf.reshape(x, shape)


def expand_dims(x: Array, /, *, axis: int) -> Array:
    return tf.expand_dims(x, axis)


def squeeze(x: Array, /, axis: int) -> Array:
    return tf.squeeze(x, axis)


def broadcast_to(x: Array, /, shape: tuple[int, ...]) -> Array:
    return tf.broadcast_to(x, shape)


def take(x: Array, indices: Array, /, *, axis: int | None = None) -> Array:
    return tf.gather(x, indices, axis=axis or 0)


def take_along_axis(x: Array, indices: Array, /, *, axis: int = -1) -> Array:
    axis = axis % len(x.shape)
    moved = [d for d in range(len(x.shape)) if d != axis] + [axis]
    back = [moved.index(d) for d in range(len(x.shape))]
    taken = tf.gather(tf.transpose(x, moved), tf.transpose(indices, moved), batch_dims=len(x.shape) - 1)
    return tf.transpose(taken, back)


def where(condition: Array, x1: Any, x2: Any, /) -> Array:
    x1, x2 = _pair(x1, x2)
    return tf.where(condition, x1, x2)


# The derivatives a nested GradientTape (a Hessian) takes of the core's gradient, as focal/backends/_jax_namespace.py
# gives JAX's and _torch_differentiable.py PyTorch's (see there why): |x| and min/max with a number take the branch
# the core's formulas take at a tie (x >= 0; the number's), and a quotient's derivative has no square of a tiny
# divisor. The values are TensorFlow's own ops'.
def _number(x: Any) -> builtins.bool:
    return isinstance(x, (builtins.int, builtins.float)) and not isinstance(x, builtins.bool)


def abs(x: Array, /) -> Array:  # noqa: A001 - the standard's name
    return tf.where(x >= 0, x, -x)


def _number_side(x: Array, c: float) -> Array:
    """``c`` where ``x`` is not NaN (a NaN stays: the core's NaN marks must survive a floor)."""
    return tf.where(tf.math.is_nan(x), x, tf.constant(c, dtype=x.dtype))


def _floats_and_number(x1: Any, x2: Any) -> tuple[Any, Any, builtins.bool]:
    """``(tensor, number, True)`` for a floating tensor beside a number (either order), else the pair as given."""
    if _number(x1):
        x1, x2 = x2, x1
    return x1, x2, _number(x2) and tf.is_tensor(x1) and x1.dtype.is_floating


def maximum(x1: Any, x2: Any, /) -> Array:
    x, c, floor = _floats_and_number(x1, x2)
    return tf.where(x > c, x, _number_side(x, c)) if floor else tf.maximum(*_pair(x1, x2))


def minimum(x1: Any, x2: Any, /) -> Array:
    x, c, ceiling = _floats_and_number(x1, x2)
    return tf.where(x < c, x, _number_side(x, c)) if ceiling else tf.minimum(*_pair(x1, x2))


def _sum_to(x: Array, like: Array) -> Array:
    axes, _ = tf.raw_ops.BroadcastGradientArgs(s0=tf.shape(like), s1=tf.shape(x))
    return tf.reshape(tf.reduce_sum(x, axis=axes), tf.shape(like))


@tf.custom_gradient
def _divide(a: Array, b: Array) -> Any:
    quotient = tf.math.truediv(a, b)

    def grad(g: Array) -> tuple[Array, Array]:
        scaled = _divide(g, b)
        # a zero cotangent gives zero where a / b overflows (a where's branch not taken)
        db = tf.where(scaled == 0, tf.zeros_like(scaled), -(scaled * _divide(a, b)))
        return _sum_to(scaled, a), _sum_to(db, b)

    return quotient, grad


def divide(x1: Any, x2: Any, /) -> Array:
    return _divide(*_pair(x1, x2))


def clip(x: Array, /, min: Any = None, max: Any = None) -> Array:  # noqa: A002 - the standard's names
    if min is not None:
        x = maximum(x, min)
    if max is not None:
        x = minimum(x, max)
    return x


def sum(x: Array, /, *, axis: Any = None, dtype: Any = None, keepdims: builtins.bool = False) -> Array:  # noqa: A001
    if dtype is not None:
        x = tf.cast(x, dtype)
    return tf.reduce_sum(x, axis=axis, keepdims=keepdims)


def max(x: Array, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Array:  # noqa: A001
    return tf.reduce_max(x, axis=axis, keepdims=keepdims)


def min(x: Array, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Array:  # noqa: A001
    return tf.reduce_min(x, axis=axis, keepdims=keepdims)


def any(x: Array, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Array:  # noqa: A001
    return tf.reduce_any(tf.cast(x, tf.bool), axis=axis, keepdims=keepdims)


def all(x: Array, /, *, axis: Any = None, keepdims: builtins.bool = False) -> Array:  # noqa: A001
    return tf.reduce_all(tf.cast(x, tf.bool), axis=axis, keepdims=keepdims)


exp = tf.exp
stop_gradient = tf.stop_gradient  # focal._numerics.held: a quantity held constant (detach_modulator)
expm1 = tf.math.expm1
log = tf.math.log
log1p = tf.math.log1p
floor = tf.math.floor
sign = tf.math.sign
sqrt = tf.math.sqrt
isfinite = tf.math.is_finite
isnan = tf.math.is_nan
zeros_like = tf.zeros_like
ones_like = tf.ones_like


def full(shape: tuple[int, ...], fill_value: Any, *, dtype: Any = None, device: Any = None) -> Array:
    return tf.fill(shape, tf.constant(fill_value, dtype=dtype or tf.float32))


def matmul(x1: Array, x2: Array, /) -> Array:
    return tf.linalg.matmul(x1, x2)


def matrix_transpose(x: Array, /) -> Array:
    return tf.linalg.matrix_transpose(x)


def matmul_nt(x1: Array, x2: Array, /) -> Array:
    """``x1 @ x2.T`` without a transposed copy (focal._linear's logits)."""
    return tf.linalg.matmul(x1, x2, transpose_b=True)


def matmul_add_tn(total: Array, x1: Array, x2: Array, /) -> Array:
    """``total + x1.T @ x2`` without a transposed copy (focal._linear's ``d weight``). Compiled by XLA: in blocks of
    ``total``'s rows, one block's product alive at a time, each added in place by a scatter (XLA on the CPU does not
    fuse the add into the product: one product would be a temporary the size of ``d weight``, 4096 rows x 32000
    classes x 512: 157 MiB at the peak against 114 in blocks, benchmarks/linear.py). Op by op (TensorFlow's kernels
    copy what they scatter into) and eagerly: one product and one sum."""
    from .._linear import weight_blocks

    rows = total.shape[0]
    blocks, step = weight_blocks(rows or 0)
    if blocks < 2 or not inside_xla():
        return total + tf.cast(tf.linalg.matmul(x1, x2, transpose_a=True), total.dtype)

    def add_block(i: Array, t: Array) -> tuple[Array, Array]:
        start = i * step
        product = tf.linalg.matmul(tf.slice(x1, [0, start], [x1.shape[0], step]), x2, transpose_a=True)
        return i + 1, tf.tensor_scatter_nd_add(t, tf.expand_dims(start + tf.range(step), 1), tf.cast(product, t.dtype))

    _, total = tf.while_loop(lambda i, _: i < blocks, add_block, (tf.constant(0), total), parallel_iterations=1)
    if blocks * step < rows:  # the rows left over: fewer than the blocks
        rest = tf.linalg.matmul(x1[:, blocks * step:], x2, transpose_a=True)
        total = tf.tensor_scatter_nd_add(total, tf.expand_dims(tf.range(blocks * step, rows), 1),
                                         tf.cast(rest, total.dtype))
    return total


def inside_xla() -> builtins.bool:
    """Whether the caller is being compiled by XLA (our compiled chunks, ``jit_compile=True``, Keras' XLA mode)."""
    try:
        from tensorflow.python.framework import ops
        from tensorflow.python.ops import control_flow_util

        return builtins.bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))
    except Exception:  # a private API: where it moves, take the plain path (correct, a little more memory)
        return False


def concat(arrays: Any, /, *, axis: int | None = 0) -> Array:
    return tf.concat(list(arrays), axis=0 if axis is None else axis)


def zeros(shape: tuple[int, ...], *, dtype: Any = None, device: Any = None) -> Array:
    return tf.zeros(shape, dtype=dtype or tf.float32)


def fold_rows(body: Callable[..., Any], carry: Any, rows: tuple[Array, ...], total: int, size: int) -> Any:
    """``focal._linear.fold_rows``: a Python loop eagerly; in a graph a ``tf.while_loop`` over the whole chunks that
    runs one at a time (``parallel_iterations=1``). The graph of a Python loop would hold a copy of the body per
    chunk, and TensorFlow's executor runs independent chunks at once, each chunk's logits alive together: 652 MiB
    against 117 for the loop eagerly (benchmarks/linear.py, 4096 rows x 32000 classes). The first chunk runs before
    the loop (its outputs give the shapes the loop writes), a ragged last one after it."""
    from .._linear import join_rows, loop_rows

    full = total // size

    def chunk(start: Any) -> tuple[Array, ...]:
        out = []
        for r in rows:
            rest = r.shape[1:]
            # sizes given, not -1: compiled, a slice of unknown size at a traced start is a padded copy of the whole
            # array (hidden: 32 MiB at 4096 x 512)
            part = tf.slice(r, [start] + [0] * len(rest), [size] + [-1 if d is None else d for d in rest])
            out.append(tf.ensure_shape(part, [size, *rest]))
        return tuple(out)

    if tf.executing_eagerly() or full <= 2:
        return loop_rows(sys.modules[__name__], body, carry, rows, total, size)
    carry, first = body(carry, chunk(0))
    tensors, rebuild = _loop_variables(carry)
    written = [i for i, o in enumerate(first) if o is not None]
    arrays = [tf.TensorArray(first[i].dtype, size=full - 1, element_shape=first[i].shape) for i in written]

    def step(index: Any, state: Any, stacks: Any) -> Any:
        new_carry, out = body(rebuild(state), chunk(index * size))
        stacks = [stack.write(index - 1, out[i]) for stack, i in zip(stacks, written)]
        return index + 1, _loop_variables(new_carry)[0], stacks

    _, state, stacks = tf.while_loop(lambda index, *_: index < full, step, (tf.constant(1), tensors, arrays),
                                     parallel_iterations=1, maximum_iterations=full - 1)
    final = rebuild(state)
    looped: list[Any] = [None] * len(first)
    for stack, i in zip(stacks, written):
        looped[i] = tf.reshape(stack.stack(), [(full - 1) * size, *first[i].shape[1:]])
    outputs = [first, tuple(looped)]
    if total > full * size:
        final, tail = body(final, tuple(r[full * size:] for r in rows))
        outputs.append(tail)
    return final, join_rows(sys.modules[__name__], outputs)


def _loop_variables(carry: Any) -> tuple[list[Array], Callable[[Any], Any]]:
    """A carry's tensors (a ``tf.while_loop``'s loop variables: a carry may be a tensor or a tuple holding None)
    and the carry rebuilt from such tensors."""
    leaves = tf.nest.flatten(carry)
    present = [i for i, c in enumerate(leaves) if c is not None]

    def rebuild(state: Any) -> Any:
        filled = list(leaves)
        for i, value in zip(present, state):
            filled[i] = value
        return tf.nest.pack_sequence_as(carry, filled)

    return [leaves[i] for i in present], rebuild


def fold_classes(body: Callable[..., Any], carry: Any, classes: int, size: int) -> Any:
    """``focal._class_blocks.fold_classes``: the ragged last block first, then the whole blocks, a Python loop
    eagerly and in a graph a ``tf.while_loop`` running one at a time (``parallel_iterations=1``: the executor would
    run independent blocks side by side, each block's logits alive together), ``start`` traced; ``d weight``'s
    rows are updated in place there (:func:`write_rows`)."""
    full = classes // size
    if classes > full * size:
        carry = body(carry, full * size, classes - full * size)
    if tf.executing_eagerly() or full <= 1:
        for index in range(full):
            carry = body(carry, index * size, size)
        return carry
    tensors, rebuild = _loop_variables(carry)

    def step(index: Any, state: Any) -> Any:
        return index + 1, _loop_variables(body(rebuild(state), index * size, size))[0]

    _, state = tf.while_loop(lambda index, _: index < full, step, (tf.constant(0), tensors),
                             parallel_iterations=1, maximum_iterations=full)
    return rebuild(state)


def _sizes(x: Array) -> list[int]:
    return [-1 if d is None else d for d in x.shape]


def rows_at(x: Array, start: Any, width: int) -> Array:
    """``x[start:start + width]`` for a ``start`` traced in a loop (sizes given, not -1: see :func:`fold_rows`)."""
    return tf.slice(x, [start] + [0] * (len(x.shape) - 1), [width, *_sizes(x)[1:]])


def columns_at(x: Array, start: Any, width: int) -> Array:
    """``x[..., start:start + width]`` for a ``start`` traced in a loop."""
    return tf.slice(x, [0] * (len(x.shape) - 1) + [start], [*_sizes(x)[:-1], width])


def write_rows(x: Array, rows: Array, start: Any) -> Array:
    """``x`` with ``rows`` from row ``start`` on, in ``x``'s dtype. Compiled by XLA (the fused linear losses' path)
    a scatter, in place in a loop; in a graph a strided-slice update, in place in a ``tf.while_loop`` (333 updates of
    384 rows of 128000 x 512 in 0.27 s, where a scatter copies all of ``x`` each time: 7.5 s); eagerly a copy."""
    rows = tf.cast(rows, x.dtype)
    start = tf.cast(start, tf.int32)
    if inside_xla():
        return tf.tensor_scatter_nd_update(x, tf.expand_dims(start + tf.range(rows.shape[0]), 1), rows)
    zeros = [tf.constant(0, tf.int32)] * (len(x.shape) - 1)
    end = tf.shape(x, out_type=tf.int32)[1:]
    return tf.raw_ops.TensorStridedSliceUpdate(
        input=x, begin=tf.stack([start, *zeros]), end=tf.concat([[start + rows.shape[0]], end], axis=0),
        strides=tf.ones([len(x.shape)], tf.int32), value=rows)


# focal._linear's default chunk floor, as JAX's: XLA compiles the chunks (188 MiB in chunks of 128 rows, 204 in 256,
# 236 in 512; benchmarks/linear.py)
min_chunk_rows = 128
