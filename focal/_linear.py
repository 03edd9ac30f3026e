"""Fused linear + loss: the loss of ``hidden @ weight.T + bias`` computed a chunk of rows at a time.

Per chunk of rows the logits are formed, the unfused loss's own plan (its checks, its kernel) gives the chunk's
summed loss and its gradient w.r.t. those logits, and that gradient becomes at once the chunk's rows of
``d hidden`` and its share of ``d weight`` and ``d bias``: no more than a chunk of logits, or of their gradient,
ever exists. The loss summed over rows is linear in the chunks' gradients, so with ``reduction="mean"``/``"sum"``
the forward computes them all and the backward scales them by the cotangent (Liger-Kernel's fused linear cross
entropy does the same). With ``"none"`` each row has a cotangent of its own: the forward computes the loss alone and
the backward runs the chunks again, the cotangents weighting the rows.

The chunks run in :func:`fold_rows`: a Python loop, or the namespace's own ``fold_rows`` where it has one (JAX's
``lax.scan``, so that a compile does not grow with the number of rows).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .backends._base import Array

Body = Callable[[Any, tuple[Array, ...]], tuple[Any, tuple[Array | None, ...]]]


MIN_CHUNK = 512


def default_chunk_size(rows: int, hidden: int, classes: int, xp: Any = None) -> int:
    """Rows per chunk: as Liger-Kernel chooses them, a chunk's logits about the size of all rows' hidden states
    (``rows / ceil(classes / hidden)``, rounded up to a power of two), but at least the namespace's
    ``min_chunk_rows`` (``MIN_CHUNK`` where it names none), and at most ``rows``.

    The floor is a CPU's: a chunk's two products have the chunk's rows as a side, and below 512 rows PyTorch's ran
    slower (2 cores, N=4096, H=512, C=32000: the logits' product 2.45 s in chunks of 256 rows against 2.05 s
    whole, 2.18 s in chunks of 512; the step 7.3 s at 256 rows, 6.8 s at 512, peak 62 and 124 MiB;
    benchmarks/linear.py). XLA keeps more of a chunk alive, and JAX and TensorFlow name 128."""
    factor = max(1, math.ceil(classes / max(hidden, 1)))
    size = 1 << max(0, math.ceil(rows / factor) - 1).bit_length()
    floor = getattr(xp, "min_chunk_rows", MIN_CHUNK)
    return max(1, min(max(size, floor), rows))


def fold_rows(xp: Any, body: Body, carry: Any, rows: tuple[Array, ...], total: int, size: int
              ) -> tuple[Any, tuple[Array | None, ...]]:
    """Run ``body(carry, chunk) -> (carry, outputs)`` over consecutive chunks of ``size`` rows of ``rows`` (the last
    one ragged) and join each per-row output along the rows (an output of None stays None). The namespace's own
    ``fold_rows`` (a compiled loop) where it has one; else a Python loop."""
    fold = getattr(xp, "fold_rows", None)
    if fold is not None:
        return fold(body, carry, rows, total, size)
    return loop_rows(xp, body, carry, rows, total, size)


def loop_rows(xp: Any, body: Body, carry: Any, rows: tuple[Array, ...], total: int, size: int
              ) -> tuple[Any, tuple[Array | None, ...]]:
    """:func:`fold_rows` as a Python loop (a namespace's own ``fold_rows`` falls back on it eagerly)."""
    outputs = []
    for start in range(0, total, size):
        carry, out = body(carry, tuple(r[start:min(start + size, total), ...] for r in rows))
        outputs.append(out)
    return carry, join_rows(xp, outputs)


def matmul_nt(xp: Any, a: Array, b: Array) -> Array:
    """``a @ b.T``: the namespace's own ``matmul_nt`` where it has one (TensorFlow's ``transpose_b``: its
    ``matrix_transpose`` copies), else a transposed view's product."""
    fused = getattr(xp, "matmul_nt", None)
    if fused is not None:
        return fused(a, b)
    return xp.matmul(a, xp.matrix_transpose(b))


def matmul_add_tn(xp: Any, total: Array, a: Array, b: Array) -> Array:
    """``total + a.T @ b``, in ``total``'s dtype: the namespace's own ``matmul_add_tn`` where it has one (PyTorch's
    ``addmm_`` in place, JAX in blocks, TensorFlow with ``transpose_a``: no product the size of ``total``, or no
    transposed copy), else the product added in place where the library can (NumPy), or as a new array."""
    fused = getattr(xp, "matmul_add_tn", None)
    if fused is not None:
        return fused(total, a, b)
    total += _cast(xp, xp.matmul(xp.matrix_transpose(a), b), total)
    return total


def weight_blocks(rows: int) -> tuple[int, int]:
    """How a compiled ``matmul_add_tn`` cuts ``d weight``'s rows (JAX's and TensorFlow's under XLA): up to 8 blocks
    of at least 1024 rows, as ``(blocks, rows per block)``; fewer than 2 blocks means one product."""
    blocks = max(1, min(8, rows // 1024))
    return blocks, rows // blocks


def join_rows(xp: Any, outputs: Sequence[tuple[Array | None, ...]]) -> tuple[Array | None, ...]:
    """The chunks' per-row outputs joined along the rows (one chunk's as they are)."""
    if len(outputs) == 1:
        return outputs[0]
    return tuple(None if parts[0] is None else xp.concat(list(parts), axis=0) for parts in zip(*outputs))


@dataclass(frozen=True)
class LinearKernel:
    """The chunked loss of ``hidden @ weight.T + bias`` under an unfused loss's planner.

    ``aux`` holds the arrays the loss reads: the first ``len(row_names)`` have one entry per row (the targets first,
    then per-row weights or masks) and are cut into chunks with ``hidden``; the rest (``shared_names``) are passed
    whole. ``options`` are the planner's other arguments (numbers, strings, None). ``per_class``: the planner's loss
    has an element per class (sigmoid), a row's loss is their sum. ``reduce``: the output is the rows' sum (then the
    forward computes the gradients), else one loss per row. ``normalized``: the last of ``aux`` is a 0-d
    denominator (the mean's, or the normalizer) the sum and its gradients are divided by in the forward, so that
    the backward of the usual cotangent 1 has nothing to multiply (TensorFlow then hands the forward's ``d weight``
    on instead of writing a copy). Hashable, so JAX takes it as a static argument.
    """

    planner: Callable[..., Any]
    options: tuple[tuple[str, Any], ...]
    row_names: tuple[str, ...]
    shared_names: tuple[str, ...]
    chunk: int
    rows: int
    per_class: bool
    reduce: bool
    normalized: bool = False

    def _chunk(self, xp: Any, hidden: Array, weight: Array, bias: Array | None, rows: tuple[Array, ...],
               shared: tuple[Array, ...], scale: Array | None, *, grad: bool) -> tuple[Array, Array | None]:
        """A chunk's loss (summed, or per row) and its gradient w.r.t. the chunk's logits (``grad``), in the
        compute dtype; ``scale`` weights each row (the backward of ``reduction="none"``)."""
        summed = grad or self.reduce
        plan = self._plan(xp, hidden, weight, bias, rows, shared, summed)
        loss, dlogits = plan.compute(grad=grad, release=True)
        if not summed and self.per_class:
            loss = xp.sum(loss, axis=1)
        if scale is not None:  # a cotangent of any sign: not the loss's weight, which must be >= 0
            dlogits = dlogits * xp.expand_dims(scale, axis=1)
        return loss, dlogits

    def _plan(self, xp: Any, hidden: Array, weight: Array, bias: Array | None, rows: tuple[Array, ...],
              shared: tuple[Array, ...], summed: bool) -> Any:
        """The unfused loss's plan for a chunk's logits (the plan holds the only reference to them)."""
        logits = matmul_nt(xp, hidden, weight)
        if bias is not None:
            logits = logits + bias
        kwargs = dict(self.options)
        kwargs.update(zip(self.row_names[1:], rows[1:]))
        kwargs.update(zip(self.shared_names, shared))
        return self.planner(logits, rows[0], reduction="sum" if summed else "none", **kwargs)

    def value_through_autodiff(self, xp: Any, hidden: Array, weight: Array, bias: Array | None,
                               aux: tuple[Array, ...]) -> Array:
        """The loss as :meth:`value` gives it, each chunk through the unfused loss's own path (``plan.loss()``: the
        framework's custom gradient, whose derivatives are exact to any order) and the framework's autodiff around
        it: for a backward that is itself differentiated, which keeps every chunk's graph (the unfused loss's memory,
        then only)."""
        row_aux, shared = self._split(aux)
        parts = []
        for start in range(0, self.rows, self.chunk):
            stop = min(start + self.chunk, self.rows)
            chunk = tuple(r[start:stop] for r in row_aux)
            loss = self._plan(xp, hidden[start:stop], weight, bias, chunk, shared, self.reduce).loss()
            parts.append(xp.sum(loss, axis=1) if not self.reduce and self.per_class else loss)
        if not self.reduce:
            return xp.concat(parts, axis=0)
        total = sum(parts[1:], parts[0])
        return total / aux[-1] if self.normalized else total

    def _split(self, aux: tuple[Array, ...]) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
        n = len(self.row_names)
        return aux[:n], aux[n:len(aux) - self.normalized]

    def value(self, xp: Any, hidden: Array, weight: Array, bias: Array | None, aux: tuple[Array, ...]) -> Array:
        """The loss alone: the rows' sum (``reduce``) or one per row, in the compute dtype."""
        row_aux, shared = self._split(aux)
        dtype = _compute_dtype(xp, hidden)

        def body(total: Any, chunk: tuple[Array, ...]) -> tuple[Any, tuple[Array | None, ...]]:
            loss, _ = self._chunk(xp, chunk[0], weight, bias, chunk[1:], shared, None, grad=False)
            return (total + loss, (None,)) if self.reduce else (total, (loss,))

        total = _scalar_zero(xp, weight, dtype)
        if self.rows == 0:
            return total if self.reduce else xp.zeros_like(hidden[:, 0], dtype=dtype)
        total, (per_row,) = fold_rows(xp, body, total, (hidden, *row_aux), self.rows, self.chunk)
        if not self.reduce:
            return per_row
        return total / aux[-1] if self.normalized else total

    def forward(self, xp: Any, hidden: Array, weight: Array, bias: Array | None, aux: tuple[Array, ...],
                wanted: tuple[bool, bool, bool]) -> tuple[Array, tuple[Array | None, ...]]:
        """The loss and what the backward reads: with ``reduce`` the gradients w.r.t. ``hidden``, ``weight``,
        ``bias`` for a cotangent of 1 (None where not ``wanted``), ``d weight`` and ``d bias`` accumulated in the
        compute dtype; without, nothing (the backward runs the chunks again)."""
        if not self.reduce:
            return self.value(xp, hidden, weight, bias, aux), ()
        return self._gradients(xp, hidden, weight, bias, aux, wanted, None)

    def _gradients(self, xp: Any, hidden: Array, weight: Array, bias: Array | None, aux: tuple[Array, ...],
                   wanted: tuple[bool, bool, bool], scale: Array | None
                   ) -> tuple[Array, tuple[Array | None, ...]]:
        row_aux, shared = self._split(aux)
        want_hidden, want_weight, want_bias = wanted
        dtype = _compute_dtype(xp, hidden)
        zero = _scalar_zero(xp, weight, dtype)
        dweight = xp.zeros_like(weight, dtype=dtype) if want_weight else None
        dbias = xp.zeros_like(bias, dtype=dtype) if want_bias and bias is not None else None
        if self.rows == 0:
            dhidden = xp.zeros_like(hidden) if want_hidden else None
            return zero, (dhidden, _cast(xp, dweight, weight), _cast(xp, dbias, bias))

        def body(carry: Any, chunk: tuple[Array, ...]) -> tuple[Any, tuple[Array | None, ...]]:
            total, dw, db = carry
            h = chunk[0]
            row_scale = None if scale is None else chunk[-1]
            loss, dlogits = self._chunk(xp, h, weight, bias, chunk[1:len(chunk) - (scale is not None)], shared,
                                        row_scale, grad=True)
            assert dlogits is not None
            dz = dlogits if dlogits.dtype == h.dtype else xp.astype(dlogits, h.dtype)
            dh = xp.matmul(dz, weight) if want_hidden else None
            if dw is not None:
                dw = matmul_add_tn(xp, dw, dz, h)
            if db is not None:
                db = db + xp.sum(dlogits, axis=0)
            return (total + loss, dw, db), (dh,)

        rows = (hidden, *row_aux) if scale is None else (hidden, *row_aux, scale)
        (total, dweight, dbias), (dhidden,) = fold_rows(xp, body, (zero, dweight, dbias), rows, self.rows,
                                                         self.chunk)
        if self.normalized:  # once, in place where the library can: no copy of d weight
            inverse = 1.0 / aux[-1]
            dhidden, dweight, dbias = (_scaled(xp, g, inverse) for g in (dhidden, dweight, dbias))
            total = total / aux[-1]
        return total, (dhidden, _cast(xp, dweight, weight), _cast(xp, dbias, bias))

    def vjp(self, xp: Any, inputs: tuple[Any, ...], residuals: tuple[Array | None, ...], cotangent: Array,
            wanted: tuple[bool, bool, bool], *, consume: bool = False) -> tuple[Array | None, ...]:
        """``(d hidden, d weight, d bias)`` for the cotangent of the output (None where not ``wanted``); ``inputs``
        are ``(hidden, weight, bias, aux)`` as the forward took them. ``consume``: the residuals are the backend's
        to overwrite (read by nothing after): the cotangent's product is taken in them, no array the size of
        ``d weight`` more."""
        hidden, weight, bias, aux = inputs
        if self.reduce:
            if isinstance(cotangent, float) and cotangent == 1.0:
                return tuple(residuals)  # the number 1 (value_and_grad, TensorFlow's static 1): nothing to multiply
            if consume:
                return tuple(_scaled(xp, g, cotangent) for g in residuals)
            return tuple(None if g is None else g * _cast(xp, cotangent, g) for g in residuals)
        scale = _cast(xp, cotangent, _scalar_zero(xp, weight, _compute_dtype(xp, hidden)))
        return self._gradients(xp, hidden, weight, bias, aux, wanted, scale)[1]


def _scaled(xp: Any, g: Array | None, scale: Array) -> Array | None:
    """``g * scale``, in ``g`` itself where the library writes in place (NumPy, PyTorch), else a new array (JAX and
    TensorFlow, whose compilers reuse ``g``'s buffer when nothing reads it after)."""
    if g is None:
        return None
    g *= _cast(xp, scale, g)
    return g


def _compute_dtype(xp: Any, x: Array) -> Any:
    return xp.float32 if xp.finfo(x.dtype).bits < 32 else x.dtype


def _scalar_zero(xp: Any, like: Array, dtype: Any) -> Array:
    """A 0-d zero on ``like``'s device (``like`` a non-empty 2-d array: the standard's ``zeros_like`` carries the
    device, where a tracer has none to read)."""
    return xp.sum(xp.zeros_like(like[:1, :1], dtype=dtype))


def _cast(xp: Any, x: Array | None, like: Array | None) -> Array | None:
    """``x`` in the dtype of ``like`` (None stays None)."""
    if x is None or like is None or x.dtype == like.dtype:
        return x
    return xp.astype(x, like.dtype)
