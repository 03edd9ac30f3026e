"""A fused linear loss over blocks of classes, for vocabularies too wide for row chunks.

A chunk of rows across every class holds ``R × C`` logits; at a language model's vocabulary (128k classes and more)
the few rows that fit a memory of the hidden states' size make every chunk pass over all of ``d weight`` (2048 × 512
× 128000 on 2 cores: PyTorch's own chunked cross entropy, 16 rows a chunk, 9 s, against 3.7 s in blocks). Here a
chunk of rows meets the classes ``K`` at a time, twice:

1. each block's logits fold into the rows' statistics: the running finite maximum ``m``, ``Σ exp(z − m)`` over
   every class and over the classes other than the label (rescaled as ``m`` grows: an online log-sum-exp), and
   the label's logit ``z_t``. From them :func:`focal._categorical.row_terms` gives the target kernel's terms and
   :func:`~focal._categorical.row_factors` a row's gradient as two numbers, exactly as from a whole row;
2. each block's logits are formed again and become its gradient, ``p_j · factor`` off the label and the
   target's own entry at it, which becomes at once the block's share of ``d hidden`` and its rows of ``d weight``
   and ``d bias``.

The logits are formed twice (four products where row chunks take three), each block once per chunk of rows; no
more than a block of logits ever exists. A loss with an element per class (the sigmoid loss: :class:`Elementwise`)
needs no statistics: each block's logits go through the unfused loss's own plan, with the block's classes of every
per-class array, in one pass. ``1 − p_t`` is summed over the other classes, never ``1`` minus a rounded
``p_t``, as the whole-row kernel keeps it. The blocks run in :func:`fold_classes` (a Python loop, or the
namespace's own: JAX's ``fori_loop``, TensorFlow's ``tf.while_loop``) and ``d weight``'s rows are updated through
``focal._linear.update_rows`` (in place: the rows' view on NumPy, PyTorch and array-api-strict, the namespace's
``write_rows`` in a compiled loop: JAX's ``dynamic_update_slice``, TensorFlow's scatter under XLA); a per-class
array's block is cut by ``columns_at`` there, a per-class list made an array.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._categorical import TargetKernel, TargetParts, loss_terms, read, row_factors, row_terms, safe_labels
from ._hyper import bind
from ._numerics import add_in_place, device_of, exp_in_place, scale_in_place
from .backends._base import Array


class Rows(NamedTuple):
    """A chunk's rows as the blocks read them: the plan's kernel, spec and labels, and each row's weight."""

    kernel: TargetKernel
    spec: Any
    labels: Array
    in_range: Array | None
    safe: Array
    weight: Any  # the plan's sample weight (None, a number or one per row)
    dtype: Any  # the compute dtype


def rows_of(plan: Any) -> Rows | None:
    """What the blocks need from a chunk's plan, or None where its kernel is not the target kernel (dense targets,
    label smoothing, ``where``: the caller keeps the whole rows)."""
    kernel = plan.kernel
    if type(kernel) is not TargetKernel or len(plan.aux) != 1:
        return None
    xp = plan.call.xp
    spec = bind(kernel.spec, plan.params)
    labels = plan.aux[0]
    in_range, safe = (None, labels) if spec.checked else safe_labels(xp, labels, spec)
    return Rows(kernel, spec, labels, in_range, safe, plan.call.weight, plan.call.dtype)


def per_row(rows: Rows) -> tuple[tuple[Array, ...], Callable[[tuple[Array, ...]], Rows]]:
    """``rows``' arrays with one entry per row (to cut into chunks of rows), and the chunk's ``Rows`` from their
    chunk."""
    names = [name for name in ("labels", "in_range", "safe", "weight")
             if len(getattr(getattr(rows, name), "shape", ())) >= 1]

    def chunk(arrays: tuple[Array, ...]) -> Rows:
        return rows._replace(**dict(zip(names, arrays)))

    return tuple(getattr(rows, name) for name in names), chunk


def fold_classes(xp: Any, body: Callable[[Any, Any, int], Any], carry: Any, classes: int, size: int) -> Any:
    """``carry = body(carry, start, width)`` over consecutive blocks of ``size`` classes (the last one ragged):
    the namespace's own ``fold_classes`` (JAX's ``fori_loop``, ``start`` traced) where it has one, else a Python
    loop."""
    fold = getattr(xp, "fold_classes", None)
    if fold is not None:
        return fold(body, carry, classes, size)
    for start in range(0, classes, size):
        carry = body(carry, start, min(size, classes - start))
    return carry


class _Target(NamedTuple):
    inside: Array  # the row's label is in this block
    index: Array  # its place in the block (0 where it is elsewhere), with a length-1 class axis


def _target(xp: Any, safe: Array, start: Any, width: int) -> _Target:
    local = safe - (start if isinstance(start, int) else xp.astype(start, safe.dtype))  # a loop's index: its dtype
    inside = (local >= 0) & (local < width)
    return _Target(inside, xp.expand_dims(xp.where(inside, local, 0), axis=1))


def _set_target(xp: Any, x: Array, target: _Target, values: Array) -> Array:
    """``x`` with ``values`` at the label's entry of the rows whose label is in the block (the others' own entry
    written back: one scatter, no mask of the block's size where the namespace scatters)."""
    current = xp.squeeze(xp.take_along_axis(x, target.index, axis=1), axis=1)
    values = xp.expand_dims(xp.where(target.inside, values, current), axis=1)
    if hasattr(xp, "set_along_axis"):
        return xp.set_along_axis(x, target.index, values, axis=1, overwrite=True)
    classes = xp.arange(x.shape[1], dtype=target.index.dtype, device=device_of(x))
    return xp.where(target.index == xp.reshape(classes, (1, -1)), values, x)


def statistics(xp: Any, rows: Rows, logits: Any, classes: int, size: int, *, keep: bool = False
               ) -> tuple[Array, Array, Array, Array, Array | None]:
    """Pass 1: the rows' finite maximum ``m``, ``Σ exp(z − m)`` over every class and over the others than the
    label, and the label's logit, from ``logits(start, width)`` (a block's, the caller's to write over); with
    ``keep`` and one block, that block's ``exp(z − m)`` (0 at the label) too, which pass 2 would form again."""

    def body(carry: tuple[Array, ...], start: Any, width: int, keep: bool = False) -> Any:
        raw, m, total, others, z_t = carry
        z = logits(start, width)
        target = _target(xp, rows.safe, start, width)
        at = xp.squeeze(xp.take_along_axis(z, target.index, axis=1), axis=1)
        raw = xp.maximum(raw, xp.max(z, axis=1))
        shift = xp.where(xp.isfinite(raw), raw, 0.0)  # as focal._numerics.finite_max
        z_t = xp.where(target.inside, at, z_t)
        z = add_in_place(xp, z, -xp.expand_dims(shift, axis=1))
        e = exp_in_place(xp, z)
        del z
        e_t = xp.squeeze(xp.take_along_axis(e, target.index, axis=1), axis=1)
        e = _set_target(xp, e, target, xp.zeros_like(e_t))
        block = xp.sum(e, axis=1)
        own = xp.where(target.inside, e_t, 0.0)
        # the sums so far, at the new shift (never up: a row of -inf so far has sums of 0, as the first block's)
        rescale = xp.exp(xp.minimum(m - shift, 0.0))
        carry = (raw, shift, total * rescale + block + own, others * rescale + block, z_t)
        return (carry, e) if keep else carry

    zero = xp.zeros_like(rows.safe, dtype=rows.dtype)
    first = (zero - math.inf, zero, zero, zero, zero)
    kept = None
    if keep and size >= classes:
        (_, m, total, others, z_t), kept = body(first, 0, classes, keep=True)
    else:
        _, m, total, others, z_t = fold_classes(xp, body, first, classes, size)
    return m, total, others, z_t, kept


def terms(xp: Any, rows: Rows, m: Array, total: Array, others: Array, z_t: Array) -> Any:
    """The target kernel's terms of each row, from its statistics."""
    p_t = xp.exp(z_t - m) / total
    return row_terms(xp, rows.spec, rows.safe, z_t, m, p_t, others / total, -xp.log(total))


def value(xp: Any, rows: Rows, logits: Any, classes: int, size: int, *, summed: bool) -> Array:
    """The chunk's loss (summed, or one per row) over blocks of classes: pass 1 alone."""
    t = terms(xp, rows, *statistics(xp, rows, logits, classes, size)[:4])
    loss = rows.kernel.masks(xp, _parts(rows, t), loss_terms(rows.kernel.terms, xp, t, rows.spec.params).f)[0]
    loss = loss if rows.weight is None else loss * rows.weight
    return xp.sum(loss) if summed else loss


def _parts(rows: Rows, t: Any) -> TargetParts:
    return TargetParts(t, None, None, None, rows.in_range, rows.labels, None)


def gradients(xp: Any, rows: Rows, logits: Any, classes: int, size: int, scale: Array | None, *,
              summed: bool, accumulate: Accumulate, state: Any) -> tuple[Array, Any]:
    """The chunk's loss and ``state`` after, block by block, ``state = accumulate(state, start, width, grad)``
    with the block's gradient w.r.t. its logits (the caller's products with ``hidden`` and ``weight``); ``scale``
    weights each row (a cotangent per row)."""
    m, total, others, z_t, kept = statistics(xp, rows, logits, classes, size, keep=True)
    t = terms(xp, rows, m, total, others, z_t)
    out = rows.kernel.terms(xp, t, rows.spec.params)
    parts = _parts(rows, t)
    loss = rows.kernel.masks(xp, parts, out.f)[0]
    factor, on_target = row_factors(xp, t, rows.in_range, out.a, read(out.b), out.e, out.d)
    weight = rows.weight
    if scale is not None:
        weight = scale if weight is None else weight * scale
    if weight is not None:
        factor, on_target = factor * weight, on_target * weight
    valid = None if rows.spec.ignore_index is None else rows.labels != rows.spec.ignore_index
    if valid is not None:  # an ignored row's gradient is 0, whatever its factors (a where per row, not per element)
        factor, on_target = xp.where(valid, factor, 0.0), xp.where(valid, on_target, 0.0)
    per_p = xp.expand_dims(factor / total, axis=1)  # p_j · factor = exp(z_j − m) · factor / Σ
    shift = xp.expand_dims(-m, axis=1)

    def body(state: Any, start: Any, width: int) -> Any:
        z = add_in_place(xp, logits(start, width), shift)
        grad = scale_in_place(xp, exp_in_place(xp, z), per_p)
        del z
        return accumulate(state, start, width, _set_target(xp, grad, _target(xp, rows.safe, start, width), on_target))

    if kept is None:
        state = fold_classes(xp, body, state, classes, size)
    else:  # one block: pass 1's exp(z − m), its label's entry written here
        grad = scale_in_place(xp, kept, per_p)
        del kept
        state = accumulate(state, 0, classes, _set_target(xp, grad, _target(xp, rows.safe, 0, classes), on_target))
    loss = loss if rows.weight is None else loss * rows.weight
    return (xp.sum(loss) if summed else loss), state


Accumulate = Callable[[Any, Any, int, Array], Any]


@dataclass(frozen=True)
class Target:
    """The softmax loss of integer labels over blocks: :func:`value` and :func:`gradients`."""

    rows: Rows
    logits: Callable[[int, int], Array]
    classes: int
    size: int

    def value(self, xp: Any, *, summed: bool) -> Array:
        return value(xp, self.rows, self.logits, self.classes, self.size, summed=summed)

    def gradients(self, xp: Any, scale: Array | None, accumulate: Accumulate, state: Any) -> tuple[Array, Any]:
        return gradients(xp, self.rows, self.logits, self.classes, self.size, scale, summed=True,
                         accumulate=accumulate, state=state)


@dataclass(frozen=True)
class Elementwise:
    """A loss with an element per class over blocks: ``plan(start, width, summed)`` is the unfused loss's plan of a
    block's logits (its own, released to the kernel) and of the block's classes of every per-class array;
    ``zero`` is a zero loss per row (the compute dtype), where the sums start (a compiled loop's carry)."""

    plan: Callable[[Any, int, bool], Any]
    classes: int
    size: int
    zero: Array

    def value(self, xp: Any, *, summed: bool) -> Array:
        def body(total: Array, start: Any, width: int) -> Array:
            loss, _ = self.plan(start, width, summed).compute(grad=False, release=True)
            return total + (loss if summed else xp.sum(loss, axis=1))

        return fold_classes(xp, body, xp.sum(self.zero) if summed else self.zero, self.classes, self.size)

    def gradients(self, xp: Any, scale: Array | None, accumulate: Accumulate, state: Any) -> tuple[Array, Any]:
        def body(carry: tuple[Array, Any], start: Any, width: int) -> tuple[Array, Any]:
            total, state = carry
            loss, grad = self.plan(start, width, True).compute(grad=True, release=True)
            if scale is not None:
                grad = scale_in_place(xp, grad, xp.expand_dims(scale, axis=1))
            return total + loss, accumulate(state, start, width, grad)

        return fold_classes(xp, body, (xp.sum(self.zero), state), self.classes, self.size)


def class_slice(xp: Any, x: Any, start: Any, width: int, classes: int, dtype: Any, device: Any) -> Any:
    """An array's (or a tuple's) classes ``[start, start + width)`` where its last axis is the classes', else the
    array itself (a row's value, or one shared by every class): the namespace's own ``columns_at`` where it has one
    (JAX's ``dynamic_slice``, for a ``start`` traced in a loop), else a slice."""
    if isinstance(x, tuple):  # an option given as a list (one number per class), hashed as a tuple
        if len(x) != classes:
            return x
        if isinstance(start, int):
            return x[start:start + width]
        # a traced start slices an array (its values checked before the loop): only in a compiled loop (JAX's,
        # TensorFlow's), on the block's logits' device (None for a tracer: the compile places it)
        x = xp.asarray(x, dtype=dtype, device=device)
    shape: tuple[Any, ...] = tuple(getattr(x, "shape", ()))
    if len(shape) < 1 or shape[-1] != classes:
        return x
    hook = getattr(xp, "columns_at", None)
    return hook(x, start, width) if hook is not None else x[..., start:start + width]
