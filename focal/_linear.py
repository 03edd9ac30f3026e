"""Fused linear + loss: the loss of ``hidden @ weight.T + bias`` computed a chunk of rows at a time.

Per chunk of rows the logits are formed, the unfused loss's own plan (its checks, its kernel) gives the chunk's
summed loss and its gradient w.r.t. those logits, and that gradient becomes at once the chunk's rows of
``d hidden`` and its share of ``d weight`` and ``d bias``: no more than a chunk of logits, or of their gradient,
ever exists. The loss summed over rows is linear in the chunks' gradients, so with ``reduction="mean"``/``"sum"``
the forward computes them all and the backward scales them by the cotangent (Liger-Kernel's fused linear cross
entropy does the same). With ``"none"`` each row has a cotangent of its own: the forward computes the loss alone and
the backward runs the chunks again, the cotangents weighting the rows.

The chunks run in :func:`fold_rows`: a Python loop, or the namespace's own ``fold_rows`` where it has one (JAX's
``fori_loop``, so that a compile does not grow with the number of rows).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import _class_blocks
from ._numerics import add_in_place, device_of, scale_in_place
from .backends._base import Array

Body = Callable[[Any, tuple[Array, ...]], tuple[Any, tuple[Array | None, ...]]]


MIN_CHUNK = 128
MAX_BLOCK_ROWS = 8192


def default_chunk_size(rows: int, hidden: int, classes: int, xp: Any = None) -> int:
    """Rows per chunk: as PyTorch's ``LinearCrossEntropyOptions`` and Liger-Kernel choose them, a chunk's logits
    about the size of all rows' hidden states (``rows / ceil(classes / hidden)``, rounded up to a power of two), but
    at least the namespace's ``min_chunk_rows`` (``MIN_CHUNK`` where it names none), and at most ``rows``.

    The floor: below 128 rows every chunk's ``d weight`` product passes over all of ``d weight`` for too few rows
    (2 cores, 4096 x 512 x 32000, a step of PyTorch: 2.2 s in chunks of 64 rows, 1.74 s of 128, 1.59 s of 512, the
    peak a chunk of logits); where the shape asks for fewer, :func:`default_tiles` takes blocks of classes."""
    factor = max(1, math.ceil(classes / max(hidden, 1)))
    size = 1 << max(0, math.ceil(rows / factor) - 1).bit_length()
    floor = getattr(xp, "min_chunk_rows", MIN_CHUNK)
    return max(1, min(max(size, floor), rows))


def default_tiles(rows: int, hidden: int, classes: int, xp: Any = None, *, blocks: bool = False,
                  elementwise: bool = False) -> tuple[int, int]:
    """``(rows per chunk, classes per block)`` (0: the whole class axis). Row chunks of :func:`default_chunk_size`
    where ``blocks`` is False (a loss or namespace the class blocks do not serve: ``focal._class_blocks``), and for
    the softmax loss where the shape gives them at least ``MIN_CHUNK`` rows (its blocks form the logits twice).
    Else up to ``MAX_BLOCK_ROWS`` rows at a time meet blocks of classes (a multiple of 128, at least 128) holding as
    many logits as the row chunk would (2048 x 512 x 128000, 2 cores: 16-row chunks 9.0 s, blocks of 2048 x 896
    classes 3.7 s, both 7 MiB); half as many for an ``elementwise`` loss (the sigmoid), whose block holds its
    targets in the compute dtype beside its logits, and which takes blocks at every shape (one pass); and a
    ``block_divisor``-th where the namespace names one (JAX's: XLA holds more than a block's logits)."""
    factor = max(1, math.ceil(classes / max(hidden, 1)))
    aspect = 1 << max(0, math.ceil(rows / factor) - 1).bit_length()
    if not blocks or (not elementwise and (aspect >= MIN_CHUNK or rows <= aspect)):
        return default_chunk_size(rows, hidden, classes, xp), 0
    chunk = min(rows, MAX_BLOCK_ROWS)
    divisor = (2 if elementwise else 1) * getattr(xp, "block_divisor", 1)
    block = max(128, aspect * classes // divisor // chunk // 128 * 128)
    return chunk, (0 if block >= classes else block)


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


def matmul_add(xp: Any, total: Array, a: Array, b: Array) -> Array:
    """``total + a @ b``, in ``total``'s dtype: the namespace's own ``matmul_add`` where it has one (PyTorch's
    ``addmm_`` in place), else the product added in place where the library can, or as a new array."""
    fused = getattr(xp, "matmul_add", None)
    if fused is not None:
        return fused(total, a, b)
    return add_in_place(xp, total, _cast(xp, xp.matmul(a, b), total))


def rows_at(xp: Any, x: Array, start: Any, width: int) -> Array:
    """``x[start:start + width]``: the namespace's own ``rows_at`` where it has one (JAX's ``dynamic_slice``, for
    a ``start`` traced in a loop), else a slice."""
    hook = getattr(xp, "rows_at", None)
    if hook is not None:
        return hook(x, start, width)
    return x[start:start + width, ...]


def update_rows(xp: Any, x: Array, start: Any, width: int, update: Callable[[Array], Array]) -> Array:
    """``x`` with its rows ``[start, start + width)`` replaced by ``update`` of them: nothing more where ``update``
    wrote into the rows' view (NumPy, PyTorch: the same array back), else the namespace's own ``write_rows`` (JAX's
    ``dynamic_update_slice``, in place in a compiled loop) or a slice set (``x[a:b] = ...``)."""
    part = rows_at(xp, x, start, width)
    new = update(part)
    if new is part:
        return x
    write = getattr(xp, "write_rows", None)
    if write is not None:
        return write(x, new, start)
    x[start:start + width, ...] = new
    return x


def weight_blocks(rows: int) -> tuple[int, int]:
    """How a compiled ``matmul_add_tn`` cuts ``d weight``'s rows (JAX's and TensorFlow's under XLA): blocks of
    about 1024 rows, as ``(blocks, rows per block)``; fewer than 2 blocks means one product. A block's product (and
    its columns of the chunk's gradient) is XLA's temporary beside the chunk's logits: 4096 x 512 -> 32000 in chunks
    of 128 rows, JAX's count: 26 MiB in 8 blocks of 4000 rows, 21 in 16, 18.6 in 31 (the chunk's logits 15.6), the
    step's time within run-to-run noise of 8 blocks'."""
    blocks = max(1, rows // 1024)
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
    on instead of writing a copy). ``class_block``: classes per block where a chunk of rows meets the classes a
    block at a time (``focal._class_blocks``); 0 for the unfused loss's plan of the whole rows. The softmax loss of
    integer labels may have one block of every class (``class_block >= C``: the statistics' pass keeps its
    ``exp(z − m)`` for the gradient). Hashable, so JAX takes it as a static argument.
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
    class_block: int = 0

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
            dlogits = scale_in_place(xp, dlogits, xp.expand_dims(scale, axis=1))
        return loss, dlogits

    def _plan(self, xp: Any, hidden: Array, weight: Array, bias: Array | None, rows: tuple[Array, ...],
              shared: tuple[Array, ...], summed: bool) -> Any:
        """The unfused loss's plan for a chunk's logits (the plan holds the only reference to them)."""
        logits = matmul_nt(xp, hidden, weight)
        if bias is not None:
            logits = add_in_place(xp, logits, bias)
        return self._planned(xp, logits, rows, shared, summed)

    def _planned(self, xp: Any, logits: Array, rows: tuple[Array, ...], shared: tuple[Array, ...],
                 summed: bool, cut: Callable[[Any], Any] | None = None) -> Any:
        """The plan of ``logits``; ``cut`` takes a block's classes of every option (``focal._class_blocks``)."""
        kwargs = dict(self.options) if cut is None else {k: cut(v) for k, v in self.options}
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

        total = _scalar_zero(xp, weight, dtype)
        if self.rows == 0:
            return total if self.reduce else xp.zeros_like(hidden[:, 0], dtype=dtype)
        targets, chunk_targets = self._target_rows(xp, hidden, weight, row_aux, shared)
        n = 1 + len(row_aux)

        def body(total: Any, chunk: tuple[Array, ...]) -> tuple[Any, tuple[Array | None, ...]]:
            blocks = self._blocks(xp, chunk[0], weight, bias, chunk[1:n], shared,
                                  chunk_targets(chunk[0], chunk[1:n], chunk[n:]))
            if blocks is not None:
                loss = blocks.value(xp, summed=self.reduce)
            else:
                loss, _ = self._chunk(xp, chunk[0], weight, bias, chunk[1:n], shared, None, grad=False)
            return (total + loss, (None,)) if self.reduce else (total, (loss,))

        total, (per_row,) = fold_rows(xp, body, total, (hidden, *row_aux, *targets), self.rows, self.chunk)
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
        dbias = xp.zeros_like(bias, dtype=dtype) if want_bias and bias is not None else None
        if self.rows == 0:
            dweight = xp.zeros_like(weight) if want_weight else None
            dhidden = xp.zeros_like(hidden) if want_hidden else None
            return zero, (dhidden, dweight, _cast(xp, dbias, bias))

        targets, chunk_targets = self._target_rows(xp, hidden, weight, row_aux, shared)
        n, m = 1 + len(row_aux), 1 + len(row_aux) + len(targets)
        # one chunk of rows over blocks of classes (a Python loop's: its blocks known to serve) writes each block's
        # rows of d weight once: in weight's dtype then, the mean's scale applied first in the compute dtype, with no
        # float32 accumulator of d weight's size beside it (bfloat16, 2048 x 512 x 128000: 250 MiB)
        written = None
        if (want_weight and dtype != weight.dtype and self.rows <= self.chunk
                and (len(targets) > 0 or (self.per_class and 0 < self.class_block < self.classes(weight)))):
            written = 1.0 / aux[-1] if self.normalized else 1.0
        dweight = (xp.zeros_like(weight, dtype=dtype if written is None else weight.dtype) if want_weight else None)

        def body(carry: Any, chunk: tuple[Array, ...]) -> tuple[Any, tuple[Array | None, ...]]:
            total, dw, db = carry
            h = chunk[0]
            row_scale = None if scale is None else chunk[m]
            row_aux = chunk[1:n]
            blocks = self._blocks(xp, h, weight, bias, row_aux, shared, chunk_targets(h, row_aux, chunk[n:m]))
            if blocks is not None:
                loss, dh, dw, db = self._block_gradients(xp, blocks, h, weight, dw, db, row_scale, want_hidden,
                                                         written)
                return (total + loss, dw, db), (dh,)
            loss, dlogits = self._chunk(xp, h, weight, bias, row_aux, shared, row_scale, grad=True)
            assert dlogits is not None
            dz = dlogits if dlogits.dtype == h.dtype else xp.astype(dlogits, h.dtype)
            dh = xp.matmul(dz, weight) if want_hidden else None
            if dw is not None:
                dw = matmul_add_tn(xp, dw, dz, h)
            if db is not None:
                db = db + xp.sum(dlogits, axis=0)
            return (total + loss, dw, db), (dh,)

        rows = (hidden, *row_aux, *targets) if scale is None else (hidden, *row_aux, *targets, scale)
        (total, dweight, dbias), (dhidden,) = fold_rows(xp, body, (zero, dweight, dbias), rows, self.rows,
                                                         self.chunk)
        if self.normalized:  # once, in place where the library can: no copy of d weight
            inverse = 1.0 / aux[-1]
            dhidden, dbias = (_scaled(xp, g, inverse) for g in (dhidden, dbias))
            dweight = dweight if written is not None else _scaled(xp, dweight, inverse)
            total = total / aux[-1]
        return total, (dhidden, _cast(xp, dweight, weight), _cast(xp, dbias, bias))

    def classes(self, weight: Array) -> int:
        return int(weight.shape[0])

    def _target_rows(self, xp: Any, hidden: Array, weight: Array, rows: tuple[Array, ...], shared: tuple[Array, ...]
                     ) -> tuple[tuple[Array, ...], Callable[..., _class_blocks.Rows | None]]:
        """For the softmax loss's blocks of classes, what they read of a chunk's rows (``focal._class_blocks.Rows``):
        extra per-row arrays to cut into chunks with ``hidden``, and ``chunk_rows(h, rows, extra)`` giving a chunk's
        ``Rows`` (None where the blocks do not serve: no blocks, the sigmoid's, a kernel not the target kernel).
        Planned once for every row where the chunks are a Python loop (a plan per chunk cost 1 ms of Python, 7% of a
        step at 2048 x 512 -> 8000 in 16 chunks) or there is one chunk; per chunk in a compiled loop of several,
        which traces one chunk's plan once (and where a stand-in of every row's logits would be made eagerly: JAX's
        ``broadcast_to``; eager JAX makes one of a chunk's rows all the same)."""
        if not self.class_block or self.per_class:
            return (), lambda h, rows, extra: None
        if hasattr(xp, "fold_rows") and self.rows > self.chunk:
            return (), lambda h, rows, extra: self._rows_read(xp, int(h.shape[0]), weight, rows, shared)
        whole = self._rows_read(xp, int(hidden.shape[0]), weight, rows, shared)
        if whole is None:
            return (), lambda h, rows, extra: None
        arrays, chunk = _class_blocks.per_row(whole)
        return arrays, lambda h, rows, extra: chunk(extra)

    def _rows_read(self, xp: Any, count: int, weight: Array, rows: tuple[Array, ...], shared: tuple[Array, ...]
                   ) -> _class_blocks.Rows | None:
        """The ``Rows`` of the plan of a stand-in of ``count`` rows' logits that holds no memory where the library
        broadcasts as a view (a broadcast zero: the plan reads its shape, dtype and device, never its values). Where
        the namespace says a broadcast is a copy (eager JAX: ``broadcast_copies``), the rows are planned a block's
        worth of logits at a time and their per-row arrays joined (at 2048 x 128000 one stand-in was 1 GiB)."""
        classes = self.classes(weight)
        zero = xp.reshape(_scalar_zero(xp, weight, _compute_dtype(xp, weight)), (1, 1))

        def read(start: int, stop: int) -> _class_blocks.Rows | None:
            stand_in = xp.broadcast_to(zero, (stop - start, classes))
            part = rows if stop - start == count else tuple(r[start:stop, ...] for r in rows)
            return _class_blocks.rows_of(self._planned(xp, stand_in, part, shared, True))

        copies = getattr(xp, "broadcast_copies", None)
        step = max(1, self.chunk * self.class_block // classes) if copies is not None and copies(rows[0]) else count
        if step >= count:
            return read(0, count)
        parts = [read(start, min(start + step, count)) for start in range(0, count, step)]
        if parts[0] is None:
            return None
        _, rows_from = _class_blocks.per_row(parts[0])
        arrays = zip(*(_class_blocks.per_row(part)[0] for part in parts if part is not None))
        return rows_from(tuple(xp.concat(list(column), axis=0) for column in arrays))

    def _blocks(self, xp: Any, hidden: Array, weight: Array, bias: Array | None, rows: tuple[Array, ...],
                shared: tuple[Array, ...], targets: _class_blocks.Rows | None
                ) -> _class_blocks.Target | _class_blocks.Elementwise | None:
        """With ``class_block``, the chunk's loss as the class blocks compute it (``focal._class_blocks``), the
        softmax's from the chunk's ``targets`` (:meth:`_target_rows`); None where the chunk keeps its whole rows (no
        blocks, or a kernel they do not serve)."""
        classes = self.classes(weight)
        if not self.class_block or (self.per_class and self.class_block >= classes):
            return None
        dtype = _compute_dtype(xp, hidden)

        def logits(start: Any, width: int) -> Array:
            z = matmul_nt(xp, hidden, rows_at(xp, weight, start, width))
            if bias is not None:
                z = add_in_place(xp, z, rows_at(xp, bias, start, width))
            return z if z.dtype == dtype else xp.astype(z, dtype)

        if self.per_class:
            def plan(start: Any, width: int, summed: bool, block: Callable[[Any, int], Array] = logits) -> Any:
                z = block(start, width)
                device = device_of(z)

                def cut(x: Any) -> Any:
                    return _class_blocks.class_slice(xp, x, start, width, classes, dtype, device)

                return self._planned(xp, z, tuple(map(cut, rows)), tuple(map(cut, shared)), summed, cut)

            if hasattr(xp, "fold_classes"):
                self._check_blocks(xp, plan, int(hidden.shape[0]), weight, rows, shared)
            return _class_blocks.Elementwise(plan, classes, self.class_block, xp.zeros_like(hidden[:, 0], dtype=dtype))
        return None if targets is None else _class_blocks.Target(targets, logits, classes, self.class_block)

    def _check_blocks(self, xp: Any, plan: Callable[..., Any], count: int, weight: Array, rows: tuple[Array, ...],
                      shared: tuple[Array, ...]) -> None:
        """Where the elementwise blocks run in the namespace's compiled loop (JAX's, TensorFlow's), whose plans see
        a traced block: the checks those plans cannot make. The options given as Python values (a list per class) are
        checked once on every class (the plan of one row's stand-in), and where the chunk's values are read (eager
        JAX) each block is planned once on a stand-in of its logits, outside the loop, so that a bad target raises
        as it does in row chunks (the loop's plans would make its elements NaN)."""
        classes = self.classes(weight)

        def stand_in(count: int, width: int) -> Array:  # the plan reads its shape, dtype and device
            return xp.broadcast_to(xp.reshape(_scalar_zero(xp, weight, _compute_dtype(xp, weight)), (1, 1)),
                                   (count, width))

        whole = self._planned(xp, stand_in(1, classes), tuple(r[:1, ...] for r in rows), shared, True)
        if whole.call.readable(rows[0]):
            for start in range(0, classes, self.class_block):
                plan(start, min(self.class_block, classes - start), True, lambda start, width: stand_in(count, width))

    def _block_gradients(self, xp: Any, blocks: Any, h: Array, weight: Array,
                         dw: Array | None, db: Array | None, scale: Array | None, want_hidden: bool,
                         written: Any = None) -> tuple[Array, Array | None, Array | None, Array | None]:
        """A chunk's summed loss, ``d hidden``, ``d weight`` and ``d bias`` over blocks of classes: each block's rows
        of ``d weight`` and ``d bias`` added as its gradient comes (:func:`update_rows`); with ``written`` (a scale)
        ``d weight``'s rows written once, scaled, in ``d weight``'s dtype (the only chunk of rows)."""
        dtype = _compute_dtype(xp, h)
        # the namespace's own carrier of d weight's rows where it names one (JAX's: a bfloat16 array's rows updated
        # in a loop are a copy of all of it under XLA on the CPU, its bits' in place)
        as_bits = getattr(xp, "as_bits", None) if written is not None and dw is not None else None
        kind = None if dw is None else dw.dtype

        def write(dz: Array) -> Array:
            """A block's rows of ``d weight``: the product in the inputs' dtype, as the accumulating path's, scaled
            in the compute dtype unless by the number 1, set into the rows in their dtype (by the library's
            assignment, or as the carrier's bits)."""
            product = xp.astype(xp.matmul(xp.matrix_transpose(dz), h), dtype)
            product = product if isinstance(written, float) and written == 1.0 else _scaled(xp, product, written)
            return product if as_bits is None else as_bits(xp.astype(product, kind))
        one = blocks.size >= blocks.classes  # d hidden is one product: no zeros to add it to
        dh = xp.zeros_like(h, dtype=dtype) if want_hidden and not one else None

        def accumulate(state: Any, start: Any, width: int, grad: Array) -> Any:
            dh, dw, db = state
            dz = grad if grad.dtype == h.dtype else xp.astype(grad, h.dtype)
            if want_hidden and one:
                dh = xp.matmul(dz, weight)
            elif dh is not None:
                dh = matmul_add(xp, dh, dz, rows_at(xp, weight, start, width))
            if dw is not None and written is not None:
                dw = update_rows(xp, dw, start, width, lambda rows: write(dz))
            elif dw is not None:
                dw = update_rows(xp, dw, start, width, lambda rows: matmul_add_tn(xp, rows, dz, h))
            if db is not None:
                db = update_rows(xp, db, start, width, lambda part: add_in_place(xp, part, xp.sum(grad, axis=0)))
            return dh, dw, db

        loss, (dh, dw, db) = blocks.gradients(xp, scale, accumulate, (dh, None if dw is None else (
            dw if as_bits is None else as_bits(dw)), db))
        return loss, _cast(xp, dh, h), dw if as_bits is None else xp.from_bits(dw, kind), db

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
