"""Softmax losses: the two kernels every softmax loss runs on, and the planner they share.

A softmax loss is a sum over classes of ``f_c(u_c, v_c)`` with ``u = log p`` and ``v = log(1 − p)``,
``p = softmax(z)``. A loss gives, per class, ``f`` and its partials ``A = ∂f/∂u``, ``B = ∂f/∂v`` and
``E = B · p/(1 − p)`` (which it writes in a form that stays finite); the kernels turn them into the
gradient w.r.t. the logits:

    dL/dz_j = A_j (1 − p_j) − p_j (Σ_c A_c − A_j) + p_j (Σ_{c≠j} E_c − B_j)

(from ``du_c/dz_j = δ_cj − p_j`` and ``dv_c/dz_j = −p_j`` for c = j, ``p_j p_c/(1 − p_c)`` else).
Each ``1 − p`` is ``exp(log1mexp(u))`` and each "sum over the others" leaves the dominant class out
rather than subtracting it, so nothing cancels as a probability goes to 1.

:class:`TargetKernel` serves integer labels when only the target class has a term (``f`` per row);
:class:`ClassKernel` serves dense targets (and label smoothing), ``f`` per class, and integer labels of a loss with
a term for every class (its labels mode). A loss's
``partials[name]()`` is ``∂f/∂θ`` of a hyperparameter θ given as an array, per class (or per row for
the target class; a per-class θ then gets its row's share at the row's label).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import _checks
from ._gamma import check_gamma
from ._hyper import Partials, Slot, bind, given_as_vector, is_vector, is_zero
from ._kernel import FromProbabilities, Grads, Wanted, broadcast_vjp, expand
from ._numerics import device_of, finite_max, scale_in_place, softmax_and_max, softmax_parts, tiny
from ._plan import Call, LossPlan
from .backends._base import Array


class Lazy:
    """An array computed the first time it is read (and then kept): what a loss's terms may never need."""

    __slots__ = ("_make", "_value")

    def __init__(self, make: Callable[[], Array] | None = None, value: Any = None):
        self._make, self._value = make, value

    def __call__(self) -> Array:
        if self._make is not None:
            self._value, self._make = self._make(), None
        return self._value


def target_is(x: Any, number: float) -> bool:
    """A term's target given as that number (integer labels' terms: 0 for every class, 1 at the label), not an
    array."""
    return isinstance(x, float) and x == number


def read(x: Any) -> Any:
    """A term as an array or number: a :class:`Lazy` one computed now."""
    return x() if isinstance(x, Lazy) else x


class Terms(NamedTuple):
    """What a softmax loss knows per class (or per row, for the target class): see the module doc."""

    u: Array  # log p
    log1m_p: Lazy  # log(1 − p), floored at log(tiny): computed where a loss reads it (``v``)
    p: Array
    one_minus_p: Array
    weight: Any  # target weight times alpha (y_c α_c, or α_t for a label)
    target: Any  # target weight without alpha (y_c, or 1 for a label)
    alpha: Any  # what multiplies the target in ``weight`` (α_c, α_t, or 1): ∂weight/∂y
    gamma: Any  # a number, an array (γ_t per row or γ_c along the class axis), or flsd53
    z: Array  # the logit itself (soft-truncated loss)

    @property
    def v(self) -> Array:
        """``log(1 − p)``: a whole-number γ's modulator is a product of ``1 − p`` and never reads it."""
        return self.log1m_p()


class TermsOut(NamedTuple):
    """A softmax loss's per-class terms: ``f`` and ``A``, ``B``, ``E`` (the module doc), ``D`` an extra
    direct ``∂f/∂z`` of the target logit (or None), and the partials: the hyperparameters' and, for dense
    targets, ``partials["targets"]() = ∂f_c/∂y_c``."""

    f: Any
    a: Any
    b: Any  # or a Lazy one (``read``): the dense kernel reads it only for terms whose E overflows
    e: Any
    d: Any = None
    partials: Mapping[str, Callable[[], Array]] = {}


# terms(xp, Terms, params) -> TermsOut; one marked ``loss_only`` also takes grad=False and then gives f alone
TermsFn = Callable[..., TermsOut]


def loss_terms(terms: TermsFn, xp: Any, t: Terms, params: Any) -> TermsOut:
    """The terms where only ``f`` will be read: without their gradient's arrays where the terms can."""
    return terms(xp, t, params, grad=False) if getattr(terms, "loss_only", False) else terms(xp, t, params)


@dataclass(frozen=True)
class SoftmaxSpec:
    axis: int
    classes: int
    ignore_index: int | None
    alpha: Any  # None, a number, or a Slot (one α or one per class)
    gamma: Any  # a number, a Slot (one γ or one per class), or flsd53
    params: Any = field(default=None)  # the loss's own parameters (numbers or Slots)
    checked: bool = False  # every label was read and is in [0, C) (eagerly, without ignore_index)
    # the logits are the kernel's to write over (a fused linear loss's chunk: LossPlan.compute with release)
    own_logits: bool = False


def _along(xp: Any, v: Array, axis: int, ndim: int) -> Array:
    shape = [1] * ndim
    shape[axis] = -1
    return xp.reshape(v, tuple(shape))


def _onehot(xp: Any, labels: Array, axis: int, classes: int, ndim: int) -> Array:
    """The labels as a boolean one-hot along ``axis`` of an ``ndim``-dimensional array (one comparison)."""
    index = xp.arange(classes, dtype=labels.dtype, device=device_of(labels))
    return xp.expand_dims(labels, axis=axis) == _along(xp, index, axis, ndim)


def _gather(xp: Any, vector: Array, labels: Array) -> Array:
    return xp.reshape(xp.take(vector, xp.reshape(labels, (-1,))), labels.shape)


def _at_labels(xp: Any, x: Array, index: Array, onehot: Array | None, values: Any, axis: int, *,
               overwrite: bool) -> Array:
    """``x`` with ``values`` at the labels along ``axis``: the namespace's ``set_along_axis`` (a scatter of one
    value per row; not in the standard) where it has one, else a where over the one-hot. ``overwrite``: ``x`` is
    the caller's own and read by nothing after (the namespace still copies it where a transform batches the
    operands differently)."""
    if onehot is None:
        return xp.set_along_axis(x, index, values, axis=axis, overwrite=overwrite)
    return xp.where(onehot, values, x)


def _label_index(xp: Any, labels: Array, spec: SoftmaxSpec, ndim: int
                 ) -> tuple[Array | None, Array, Array, Array | None]:
    """The labels as the kernels read them: which are in [0, C) or ``ignore_index`` (None where they were checked),
    the labels with the others as 0, those with a length-1 class axis, and their one-hot (None where the namespace
    has ``set_along_axis``). An ignored row is computed at label 0 and masked to 0 after (``masks``): marked NaN,
    its masked gradient's own derivative would be 0 · NaN where a Hessian differentiates it."""
    axis, classes = spec.axis, spec.classes
    if spec.checked:
        in_range, safe = None, labels
    else:
        in_range, safe = safe_labels(xp, labels, spec)
    index = xp.expand_dims(safe, axis=axis)
    onehot = None if hasattr(xp, "set_along_axis") else _onehot(xp, safe, axis, classes, ndim)
    return in_range, safe, index, onehot


def safe_labels(xp: Any, labels: Array, spec: SoftmaxSpec) -> tuple[Array, Array]:
    """Which labels are in [0, C) or ``ignore_index``, and the labels with the others as 0."""
    a_class = (labels >= 0) & (labels < spec.classes)
    in_range = a_class
    if spec.ignore_index is not None and not 0 <= spec.ignore_index < spec.classes:
        in_range = a_class | (labels == spec.ignore_index)
    return in_range, xp.where(a_class, labels, 0)


def _nan_rows(xp: Any, in_range: Array, like: Array) -> Array:
    """0 in the rows whose label is in range and NaN in the others (added to a row's factors: NaN · x is NaN and
    0 + x is x, no where over every element)."""
    return xp.where(in_range, xp.zeros_like(like), math.nan)


def _absent(x: Any) -> bool:
    return isinstance(x, float) and x == 0.0


def _per_row(xp: Any, value: Any, labels: Array) -> Any:
    """A hyperparameter as each row's target class sees it: a per-class vector gathered at the labels."""
    return _gather(xp, value, labels) if is_vector(value) else value


def row_terms(xp: Any, spec: SoftmaxSpec, safe: Array, z_t: Array, m: Array, p_t: Array, rest: Array,
              log_p_max: Array) -> Terms:
    """The target class's terms from its row's statistics (one per row): its logit ``z_t``, the row's finite
    maximum ``m``, ``p_t``, ``rest = 1 − p_t`` summed over the other classes, and ``log p_max = −log Σ exp(z − m)``;
    from a whole row (:meth:`TargetKernel.parts`) or from blocks of its classes (``focal._class_blocks``)."""
    floor = tiny(xp, z_t)
    # at the maximum, p_t = 1/(1 + r) with r = (1 − p_t)/p_t: log p_t = −log1p(r), exact as p_t → 1 (there
    # p_t >= 1/C: the floor only keeps the branch not taken from dividing by 0)
    # (xp.divide: the branch not taken may overflow, and its derivatives must not make the taken one NaN where
    # a Hessian differentiates this: focal/backends/_torch_differentiable.py)
    u = xp.where(z_t == m, -xp.log1p(xp.divide(rest, xp.maximum(p_t, floor))), (z_t - m) + log_p_max)
    v = xp.log(xp.maximum(rest, floor))
    alpha_t = 1.0 if spec.alpha is None else _per_row(xp, spec.alpha, safe)
    gamma = _per_row(xp, spec.gamma, safe)
    return Terms(u=u, log1m_p=Lazy(value=v), p=p_t, one_minus_p=rest, weight=alpha_t, target=1.0, alpha=alpha_t,
                 gamma=gamma, z=z_t)


def row_factors(xp: Any, t: Terms, in_range: Array | None, a: Any, b: Any, e: Any, d: Any) -> tuple[Any, Any]:
    """A row's gradient w.r.t. its logits as two numbers per row: ``factor`` (``dL/dz_j = p_j · factor`` off the
    target class) and ``on_target`` (``dL/dz_t``); NaN in the rows whose label is out of range."""
    on_target = a * t.one_minus_p - b * t.p
    if d is not None:
        on_target = on_target + d
    factor = e - a
    if in_range is not None:
        nan_rows = _nan_rows(xp, in_range, t.p)
        factor, on_target = factor + nan_rows, on_target + nan_rows
    return factor, on_target


class TargetParts(NamedTuple):
    """What :class:`TargetKernel` computes once per call from the logits and the labels."""

    terms: Terms
    index: Array  # the labels with a length-1 class axis (out-of-range ones as 0)
    onehot: Array | None  # the labels along the class axis (bool), where the namespace has no set_along_axis
    others: Array  # p off the target class, 0 at it
    in_range: Array | None  # None where the labels were checked (all in range)
    labels: Array
    kept: Array | None  # False in the rows `where` leaves no class of (None: every row)


@dataclass(frozen=True)
class TargetKernel:
    """Integer labels, a loss of the target class only: ``L = f(u_t, v_t, z_t)`` per row.

    ``dL/dz_j = A (1 − p_t) − B p_t + D`` for j = t and ``p_j (E − A)`` otherwise. Rows whose label
    is ``ignore_index`` give 0; labels outside [0, C) give NaN (where they cannot be checked).

    ``1 − p_t`` is the sum of the other classes' p (a where or a scatter zeroes the target's, no
    ``1 − p_t`` is ever rounded), and where the target is the row's maximum ``log p_t = −log1p((1 −
    p_t)/p_t)``: both stay exact as ``p_t → 1``, where ``log p_t`` would round to 0.
    """

    terms: TermsFn
    spec: SoftmaxSpec
    broadcasts_cotangent = True  # its VJP is broadcast_vjp (not a field)

    def parts(self, xp: Any, z: Array, aux: tuple[Array, ...], spec: SoftmaxSpec) -> TargetParts:
        labels, kept = aux[0], (aux[1] if len(aux) > 1 else None)
        axis = spec.axis
        in_range, safe, index, onehot = _label_index(xp, labels, spec, z.ndim)
        m = finite_max(xp, z, axis)
        z_t = xp.take_along_axis(z, index, axis=axis)
        # p_max = 1/Σ exp(z − m), so p_t = exp(z_t − m) p_max: nothing gathered from p (a compiler would have to
        # write p out first); and ordinary log p is exact where it is far from 0: log p_t = (z_t − m) + log p_max
        p, p_max = softmax_and_max(xp, z, axis, m, overwrite=spec.own_logits)
        del z
        p_t = xp.exp(z_t - m) * p_max
        log_p_max = xp.log(p_max)
        others = _at_labels(xp, p, index, onehot, 0.0, axis, overwrite=True)
        del p
        rest = xp.sum(others, axis=axis, keepdims=True)  # 1 − p_t, summed, never 1 minus a rounded p_t
        t = row_terms(xp, spec, safe, *(xp.squeeze(x, axis=axis) for x in (z_t, m, p_t, rest, log_p_max)))
        return TargetParts(t, index, onehot, others, in_range, labels, kept)

    def row_grad(self, xp: Any, rows: TargetParts, a: Any, b: Any, e: Any, d: Any, *, in_place: bool = False
                 ) -> Array:
        """The gradient w.r.t. the logits; a label outside [0, C) makes its row NaN. ``in_place`` reuses
        ``rows.others`` (when nothing else reads it and no operand is batched where it is not)."""
        axis = self.spec.axis
        factor, on_target = row_factors(xp, rows.terms, rows.in_range, a, b, e, d)
        factor = expand(xp, factor, axis)
        if in_place:
            grad = rows.others
            grad *= factor
        else:
            grad = rows.others * factor
        return _at_labels(xp, grad, rows.index, rows.onehot, expand(xp, on_target, axis), axis,
                          overwrite=True)

    def masks(self, xp: Any, rows: TargetParts, loss: Array, grad: Array | None = None
              ) -> tuple[Array, Array | None]:
        """Out-of-range rows NaN and ignored rows 0 in a per-row ``loss``; ignored rows 0 in a ``grad``
        of the logits' shape (if given; :meth:`row_grad` made its out-of-range rows NaN). A row ``where``
        leaves no class of is ignored too (its logits are all ``-inf``)."""
        axis, ignore = self.spec.axis, self.spec.ignore_index
        if rows.in_range is not None:
            loss = xp.where(rows.in_range, loss, math.nan)
        valid = None if ignore is None else rows.labels != ignore
        if rows.kept is not None:
            valid = rows.kept if valid is None else valid & rows.kept
        if valid is not None:
            loss = xp.where(valid, loss, 0.0)
            # in place, no second array of the logits' size; not where `where` empties a row (its logits all -inf,
            # its p NaN)
            if grad is not None and self.spec.own_logits and rows.kept is None:
                grad = scale_in_place(xp, grad, xp.expand_dims(xp.astype(valid, grad.dtype), axis=axis))
            elif grad is not None:
                grad = xp.where(xp.expand_dims(valid, axis=axis), grad, 0.0)
        return loss, grad

    def row_partials(self, xp: Any, partials: Partials, wanted: Wanted, rows: TargetParts) -> tuple[Array, ...]:
        """Each wanted hyperparameter's per-row partial, masked as the loss is and placed on the class
        axis: at the row's label for a per-class one (``Slot.reduce`` then sums the rows per class)."""
        out = []
        for slot in wanted:
            if slot is None:
                continue
            row, _ = self.masks(xp, rows, partials[slot.name]())
            row = expand(xp, row, self.spec.axis)
            if slot.shape:
                row = _at_labels(xp, xp.zeros_like(rows.others), rows.index, rows.onehot, row, self.spec.axis,
                                 overwrite=True)
            out.append(row)
        return tuple(out)

    def owning(self) -> TargetKernel:
        """This kernel, free to write over its logits (the caller's own and dead: a fused linear loss's chunk).
        An ignored row's gradient is then zeroed by a product, not a where: NaN where its logits are not finite
        (as PyTorch's chunked linear cross entropy; its ``d weight`` would be NaN through ``hidden`` anyway)."""
        return dataclasses.replace(self, spec=dataclasses.replace(self.spec, own_logits=True))

    def value(self, xp: Any, z: Array, aux: tuple[Array, ...], params: tuple[Array, ...]) -> Array:
        spec = bind(self.spec, params)
        rows = self.parts(xp, z, aux, spec)
        return self.masks(xp, rows, loss_terms(self.terms, xp, rows.terms, spec.params).f)[0]

    def forward(self, xp: Any, z: Array, aux: tuple[Array, ...], params: tuple[Array, ...],
                wanted: Wanted) -> tuple[Array, tuple[Array, ...]]:
        spec = bind(self.spec, params)
        rows = self.parts(xp, z, aux, spec)
        del z  # where the caller let go of the logits (a fused linear loss's chunk), one array fewer from here
        out = self.terms(xp, rows.terms, spec.params)
        partials = self.row_partials(xp, out.partials, wanted, rows)
        f, a, b, e, d = out.f, out.a, read(out.b), out.e, out.d
        # the partials' closures hold the modulator and log p, the terms log p, log(1 − p) and z_t: let them go
        # before the gradient's arrays exist (row_grad reads p and 1 − p only)
        rows = rows._replace(terms=rows.terms._replace(u=None, log1m_p=Lazy(), z=None))
        del out
        # in place only without array hyperparameters: under vmap a batched one would batch the factor alone
        grad = self.row_grad(xp, rows, a, b, e, d, in_place=len(params) == 0)
        loss, grad = self.masks(xp, rows, f, grad)
        return loss, (grad, *partials)

    def vjp(self, xp: Any, residuals: tuple[Array, ...], cotangent: Array, wanted: Wanted, *,
            consume: bool = False) -> Grads:
        return broadcast_vjp(xp, residuals, cotangent, wanted, self.spec.axis, consume=consume)


class Others(NamedTuple):
    """The classes other than a row's dominant one, by their own log-sum-exp (:func:`_others`)."""

    log_sum: Array  # log Σ_{j ≠ d} exp(z_j − m) per row (keepdims)
    top: Array  # the largest of the others' z_j − m per row (keepdims; 0 where none is finite)
    exps: Array  # exp(z_j − top) with top the largest of them: 0 at the dominant class
    total: Array  # Σ exps per row, floored at the smallest normal


def _others(xp: Any, shifted: Array, dominant: Array, axis: int) -> Others:
    """``log Σ_{j ≠ d} exp(z_j − m)`` over the classes other than the row's dominant one, by its own
    log-sum-exp: ``log(1 − p_d)`` from it does not floor at ``log(tiny)`` (−87 in float32) once ``1 − p_d`` is
    below the smallest normal, and ``p_j/(1 − p_d) = exps_j/total`` for every other class stays exact there too. A
    row without a dominant class gives ``log(1 + s)``."""
    others = xp.where(dominant, -math.inf, shifted)
    top = finite_max(xp, others, axis)
    exps = xp.exp(others - top)
    # a row of one class has no others: 0 over the floor, not 0/0, where the kernel divides by it
    total = xp.maximum(xp.sum(exps, axis=axis, keepdims=True), tiny(xp, shifted))
    return Others(top + xp.log(total), top, exps, total)


def _complement(xp: Any, p: Array, dominant: Array, v_max: Array) -> tuple[Array, Lazy]:
    """``1 − p`` and (computed where a loss reads it) ``log(1 − p)``, given the dominant classes and their
    ``log(1 − p)``, ``v_max``. A dominant class's ``1 − p`` is ``exp(v_max) = s/(1 + s)`` (a unique maximum: s has the
    others' exps alone, so its derivatives are theirs, where a tie's constant would have none); any other's is
    ``1 − p >= 1/2``, which rounds no more than p itself."""
    one_minus_p = xp.where(dominant, xp.exp(v_max), 1.0 - p)

    def log1m_p() -> Array:
        # log1p(−p), not log(1 − p): exact for small p too. The branch not taken stays finite for JAX's Hessian
        # (p = 1 would give log1p(-1))
        return xp.where(dominant, v_max, xp.log1p(-xp.where(dominant, 0.0, p)))

    return one_minus_p, Lazy(log1m_p)


class LabelRows(NamedTuple):
    """:class:`ClassKernel`'s labels mode: the target class's terms per row and where to write them."""

    out: TermsOut
    shifted: Array  # z_t − m
    p: Array
    dominant: Array  # the target is its row's dominant class (p > 1/2)
    index: Array
    onehot: Array | None
    in_range: Array | None


_NO_TERMS = TermsOut(None, None, None, None)


class ClassParts(NamedTuple):
    """What :class:`ClassKernel` computes before the gradient."""

    out: TermsOut  # the per-class terms (of target 0 for every class in the labels mode)
    terms: Terms
    dominant: Array
    others: Others | None  # where the terms' E overflows at a dominant class (the dominant-class split)
    rows: LabelRows | None  # the labels mode's target class


@dataclass(frozen=True)
class ClassKernel:
    """A term for every class: ``L = Σ_c f_c(u_c, v_c)`` per row, with dense targets (probabilities, one-hot,
    label-smoothed; the kernel's ``targets`` slot, whose gradient is the terms' ``∂f_c/∂y_c``) or integer labels
    (``targets`` None, the labels the first aux: the terms of target 0 for every class, the target class's of
    target 1 written over them per row, no one-hot of the labels multiplied through).

    With ``m`` the row's maximum and ``s = Σ exp(z − m)`` over every class but one maximum (``softmax_parts``):
    ``p = exp(z − m)/(1 + s)``; ``1 − p`` as it is where p <= 1/2 and ``s/(1 + s)`` for a dominant class (p > 1/2),
    exact as ``p → 1``; ``log(1 − p)`` (only where the terms read it: a whole-number γ does not) ``log1p(−p)`` and
    ``log(s/(1 + s))``. The gradient (module doc) is ``dL/dz = h − p Σ h`` with ``h = A − E``, one reduction over
    the classes, for terms that write E finite (the focal family). Terms marked ``dominant_e_unbounded`` (seed 004's
    negatives), whose ``E = B p/(1 − p)`` overflows at a dominant class (p > 1/2, at most one per row), take two:
    ``Σ h`` with ``h = A`` at the dominant class, and ``B_dom p_dom``, the dominant class's share ``p_j E_dom`` of the
    others' gradient being ``B_dom p_dom · p_j/(1 − p_dom)``, from the others' own log-sum-exp (:func:`_others`).
    A loss whose terms read ``log(1 − p)`` as a loss term (``terms.reads_log1m_p``) gets the dominant class's
    past the smallest normal from it too.
    """

    terms: TermsFn
    spec: SoftmaxSpec
    targets: Slot | None
    broadcasts_cotangent = True  # its VJP is broadcast_vjp (not a field)

    def _terms(self, xp: Any, z: Array, aux: tuple[Array, ...], params: tuple[Array, ...], *, grad: bool = True
               ) -> ClassParts:
        """The terms (without ``grad``: f alone, where the terms can) and what the gradient reads beside them."""
        spec = bind(self.spec, params)
        y: Any = 0.0 if self.targets is None else params[self.targets.index]
        axis = spec.axis
        m = finite_max(xp, z, axis)
        shifted, exps, log_total = softmax_parts(xp, z, axis, m)
        log_p = shifted - log_total
        scale = xp.exp(-log_total)
        p = exps * scale
        del exps
        # log(s/(1 + s)) per row, from the row's s = expm1(log_total)
        v_max = xp.log(xp.maximum(xp.expm1(log_total), tiny(xp, z))) - log_total
        dominant = p > 0.5  # at most one class per row; as the terms test it (negatives_terms), to the last bit
        split = grad and getattr(self.terms, "dominant_e_unbounded", False)
        others = None
        if split or getattr(self.terms, "reads_log1m_p", False):
            # a loss term of log(1 − p) itself: the dominant class's, below the smallest normal too
            others = _others(xp, shifted, dominant, axis)
            v_max = others.log_sum - log_total
        del shifted  # one array fewer alive while the terms run
        one_minus_p, log1m_p = _complement(xp, p, dominant, v_max)
        alpha: Any = 1.0 if spec.alpha is None else spec.alpha
        alpha = _along(xp, alpha, axis, z.ndim) if is_vector(alpha) else alpha
        weight = y if spec.alpha is None or is_zero(y) else y * alpha
        gamma = _along(xp, spec.gamma, axis, z.ndim) if is_vector(spec.gamma) else spec.gamma
        t = Terms(u=log_p, log1m_p=log1m_p, p=p, one_minus_p=one_minus_p, weight=weight, target=y, alpha=alpha,
                  gamma=gamma, z=z)
        out = self.terms(xp, t, spec.params) if grad else loss_terms(self.terms, xp, t, spec.params)
        rows = None
        if self.targets is None:
            rows = self._rows(xp, z, aux[0], spec, (m, log_total, scale, v_max), grad=grad)
        return ClassParts(out, t, dominant, others if split else None, rows)

    def _rows(self, xp: Any, z: Array, labels: Array, spec: SoftmaxSpec, row_parts: tuple[Array, ...], *,
              grad: bool) -> LabelRows:
        """The labels mode's target class: the per-class quantities at the labels, computed per row from the target
        logit as the per-class ones are (to the last bit: nothing gathered from a per-class array, which a compiler
        would have to write out first), and the terms of target 1 on them."""
        axis = spec.axis
        in_range, safe, index, onehot = _label_index(xp, labels, spec, z.ndim)
        m, log_total, scale, v_max = (xp.squeeze(x, axis=axis) for x in row_parts)
        z_t = xp.squeeze(xp.take_along_axis(z, index, axis=axis), axis=axis)
        shifted_t = z_t - m
        p_t = xp.exp(shifted_t) * scale
        dominant_t = p_t > 0.5
        one_minus_p_t, log1m_p_t = _complement(xp, p_t, dominant_t, v_max)
        alpha_t = 1.0 if spec.alpha is None else _per_row(xp, spec.alpha, safe)
        row = Terms(u=shifted_t - log_total, log1m_p=log1m_p_t, p=p_t, one_minus_p=one_minus_p_t, weight=alpha_t,
                    target=1.0, alpha=alpha_t, gamma=_per_row(xp, spec.gamma, safe), z=z_t)
        out = self.terms(xp, row, spec.params) if grad else loss_terms(self.terms, xp, row, spec.params)
        return LabelRows(out, shifted_t, p_t, dominant_t, index, onehot, in_range)

    def _write(self, xp: Any, x: Any, rows: LabelRows | None, value: Any, *, overwrite: bool = True) -> Any:
        """``x`` (per class) with the target class's ``value`` (per row) at the labels; ``x`` as it is without
        labels. ``overwrite``: ``x`` is the kernel's own."""
        if rows is None:
            return x
        return _at_labels(xp, x, rows.index, rows.onehot, expand(xp, value, self.spec.axis), self.spec.axis,
                          overwrite=overwrite)

    def _mask(self, xp: Any, rows: LabelRows | None, loss: Array) -> Array:
        """A row whose label is outside [0, C) (traced: not checked) NaN."""
        if rows is None or rows.in_range is None:
            return loss
        return xp.where(rows.in_range, loss, math.nan)

    def _sum(self, xp: Any, x: Array, rows: LabelRows | None, value: Any) -> Array:
        """``Σ_c x_c`` per row; in the labels mode with the target class's ``value`` (per row) in place of its ``x``:
        the class's 0 written, summed, the value added (a row value written before the sum keeps a compiler from
        fusing the sum with what it sums)."""
        if rows is None:
            return xp.sum(x, axis=self.spec.axis)
        return xp.sum(self._write(xp, x, rows, 0.0), axis=self.spec.axis) + value

    def value(self, xp: Any, z: Array, aux: tuple[Array, ...], params: tuple[Array, ...]) -> Array:
        parts = self._terms(xp, z, aux, params, grad=False)
        rows = parts.rows
        return self._mask(xp, rows, self._sum(xp, parts.out.f, rows, None if rows is None else rows.out.f))

    def forward(self, xp: Any, z: Array, aux: tuple[Array, ...], params: tuple[Array, ...],
                wanted: Wanted) -> tuple[Array, tuple[Array, ...]]:
        parts = self._terms(xp, z, aux, params)
        del z  # where the caller let go of the logits (a fused linear loss's chunk), one array fewer from here
        out, rows, p, dominant, others = parts.out, parts.rows, parts.terms.p, parts.dominant, parts.others
        del parts  # the terms' inputs (log p, 1 − p, log(1 − p)) are not read past here
        axis = self.spec.axis
        at = _NO_TERMS if rows is None else rows.out
        # the wanted partials first: their closures (and the per-class arrays they hold) go before the gradient's
        # arrays exist. A loop, not a comprehension: a comprehension's closure would make `del out` one that
        # torch.compile cannot trace
        taken = []
        for slot in wanted:
            if slot is not None:
                row = None if rows is None else at.partials[slot.name]()
                taken.append(self._write(xp, out.partials[slot.name](), rows, row, overwrite=False))
        # (the target class's too: a loss whose other classes have no B, E may have them at the target)
        absent = _absent(out.b) and _absent(out.e) and (rows is None or _absent(at.b) and _absent(at.e))
        f, a, b, e, d = out.f, out.a, (out.b if others is not None else None), out.e, out.d
        del out
        if rows is not None:
            at = at._replace(partials={})
            rows = rows._replace(out=_NO_TERMS)
        loss = self._mask(xp, rows, self._sum(xp, f, rows, at.f))
        del f
        if absent:
            h, h_t = a, at.a
        elif others is None:
            # E finite everywhere (the focal family writes it so): dL/dz_j = h_j − p_j Σ h with h = A − E
            h, h_t = a - e, (None if rows is None else at.a - at.e)
        else:
            # h = A − E for every class but a dominant one, whose E = B p/(1 − p) overflows (seed 004's negative
            # terms, whose B does not vanish as p → 1): A there. Then
            # dL/dz_j = h_j − p_j Σ h + p_j E_dom, with p_j E_dom = B_dom p_dom p_j/(1 − p_dom), and
            # dL/dz_dom = A_dom − p_dom Σ h − B_dom p_dom
            h = a - xp.where(dominant, 0.0, e)
            h_t = None if rows is None else at.a - xp.where(rows.dominant, 0.0, at.e)
        del a, e
        h = self._write(xp, h, rows, 0.0, overwrite=not absent)
        total = expand(xp, self._sum(xp, h, rows, h_t), axis)
        grad = h - p * total
        del h
        # the target class's own gradient, per row (written over the class's at the end)
        on_target = None if rows is None else h_t - rows.p * xp.squeeze(total, axis=axis)
        if others is not None:
            b_p = self._write(xp, read(b) * p, rows, 0.0)
            del b
            b_p_t = None if rows is None else read(at.b) * rows.p
            b_p_dom = self._sum(xp, xp.where(dominant, b_p, 0.0), rows,
                                None if rows is None else xp.where(rows.dominant, b_p_t, 0.0))
            # p_j/(1 − p_dom) = exps_j/total below a dominant class (<= 1); in a row without one b_p_dom is 0
            share = -b_p_dom / xp.squeeze(others.total, axis=axis)
            grad = grad - xp.where(dominant, b_p, others.exps * expand(xp, share, axis))
            if rows is not None:
                top = xp.squeeze(others.top, axis=axis)
                exps_t = xp.exp(xp.where(rows.dominant, -math.inf, rows.shifted) - top)  # the class's own, per row
                on_target = on_target - xp.where(rows.dominant, b_p_t, exps_t * share)
        if d is not None:
            grad = grad + d
        if rows is not None:
            grad = self._write(xp, grad, rows, on_target if at.d is None else on_target + at.d)
        if rows is not None and rows.in_range is not None:
            nan_rows = expand(xp, _nan_rows(xp, rows.in_range, rows.p), axis)
            grad = grad + nan_rows
            taken = [x + nan_rows for x in taken]
        return loss, (grad, *taken)

    def vjp(self, xp: Any, residuals: tuple[Array, ...], cotangent: Array, wanted: Wanted, *,
            consume: bool = False) -> Grads:
        return broadcast_vjp(xp, residuals, cotangent, wanted, self.spec.axis, consume=consume)


@dataclass
class SoftmaxCall:
    """A softmax loss call, checked: the class axis, the targets as the kernels take them."""

    call: Call
    axis: int
    classes: int
    labels: Array | None  # integer targets (None when dense)
    dense: Array | None  # float targets of the logits' shape, label smoothing applied
    valid: Array | None
    spec_args: dict[str, Any]
    every_class: bool = False  # the loss has a term for every class: labels run ClassKernel's labels mode
    masked: bool = False  # `where` left classes out (their logits are -inf)
    kept: Array | None = None  # with labels and `where`: the rows it leaves a class of (the kernel's second aux)

    def plan(self, terms: TermsFn, params: Any, *, from_logits: bool = True) -> LossPlan:
        if self.masked and not from_logits:
            raise ValueError("where takes logits (from_logits=True): masked classes are left out of the softmax")
        spec = SoftmaxSpec(axis=self.axis, classes=self.classes, params=params, **self.spec_args)
        if self.labels is not None and self.every_class:
            kernel: Any = ClassKernel(terms, spec, None)
            aux: tuple[Array, ...] = (self.labels,)
        elif self.labels is not None:
            kernel = TargetKernel(terms, spec)
            aux = (self.labels,) if self.kept is None else (self.labels, self.kept)
        else:
            kernel = ClassKernel(terms, spec, self.call.target_slot(self.dense))
            aux = ()
        if not from_logits:
            kernel = FromProbabilities(kernel, "softmax")
        shape = tuple(s for i, s in enumerate(self.call.shape) if i != self.axis)
        return LossPlan(self.call, kernel, aux=aux, loss_shape=shape, valid=self.valid)


def prepare_softmax(
    logits: Array, targets: Array, *, axis: Any, alpha: Any, gamma: Any = 0.0, ignore_index: Any = None,
    label_smoothing: Any = 0.0, reduction: str, weight: Any, normalizer: Any, labels_only: bool = False,
    dense_labels: bool = False, every_class: bool = False, where: Any = None,
) -> SoftmaxCall:
    """Check a softmax loss's arguments. Targets are integer class indices (the logits' shape without
    ``axis``) or dense, of the logits' shape: floating probabilities, or integer or bool one-hot /
    multi-hot ones (0/1, read as floats). Integer labels become dense targets with label smoothing, with
    ``where``, or where the loss's kernel takes dense targets alone (``dense_labels``); a loss with a term for
    every class (``every_class``) takes them as labels otherwise (ClassKernel's labels mode)."""
    call = Call(logits, targets, reduction=reduction, weight=weight, normalizer=normalizer)
    xp, shape = call.xp, call.shape
    if not shape:
        raise ValueError("logits must have a class axis, got a 0-d array")
    axis = _checks.check_axis(axis, len(shape))
    classes = int(shape[axis])
    row_shape = tuple(s for i, s in enumerate(shape) if i != axis)
    alpha_spec = _check_alpha(call, alpha, classes, axis)
    gamma_spec = check_gamma(call, gamma, classes, axis=axis)
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral)):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    ignore = None if ignore_index is None else int(ignore_index)
    # smooths the targets before the kernel: its gradient comes through the targets' (Call.target_slot)
    smoothing = call.hyper("label_smoothing", label_smoothing, low=0.0, high=1.0, high_open=True, kernel=False,
                           differentiable=True)
    included = None if where is None else _class_mask(call, where, axis)
    labels = dense = valid = None
    targets = call.targets
    integral = xp.isdtype(targets.dtype, "integral")
    if integral and tuple(targets.shape) != shape:
        _checks.check_shape("targets", targets.shape, row_shape,
                            f"integer class indices have the logits' shape without axis={axis}; one-hot or "
                            f"multi-hot targets have the logits' shape {shape}")
        if not classes:
            raise ValueError(f"logits have 0 classes along axis={axis} (shape {shape}): integer class indices need at "
                             "least one class; class probabilities of the logits' shape give a loss of 0 there")
        if labels_only and included is not None:
            raise ValueError("where takes dense targets or integer labels without normalized=True")
        if ignore is not None:
            valid = targets != ignore
        checked = check_labels(call, targets, valid, classes)
        labels = targets
        if not is_zero(smoothing) or dense_labels or (every_class and (included is not None or ignore is not None)):
            labels, dense = None, _smoothed_onehot(call, targets, valid, axis, classes, smoothing, checked)
            if included is not None:
                dense = _labels_inside(call, targets, valid, included, dense, axis, classes)
        elif included is not None:  # the labels stay labels: the kernel of one class per row, not a dense one-hot
            labels = _labels_kept(call, targets, valid, included, axis, classes, ignore, checked)
    elif integral or xp.isdtype(targets.dtype, ("real floating", "bool")):
        if labels_only:
            raise TypeError(f"targets must be integer class indices of shape {row_shape} for this loss, got "
                            f"{targets.dtype} of shape {tuple(targets.shape)}")
        _checks.check_shape("targets", targets.shape, shape, "class probabilities have the logits' shape, "
                            f"or give integer class indices of shape {row_shape}")
        dense = call.cast(targets)
        if xp.isdtype(targets.dtype, "real floating"):
            dense = call.within("targets", dense, 0.0, 1.0, "class probabilities in [0, 1]")
        elif integral:
            dense = call.within("targets", dense, 0.0, 1.0, "0 or 1 (integer targets of the logits' shape are one-hot "
                                f"or multi-hot; class indices have shape {row_shape})")
        if not is_zero(smoothing):
            dense = dense * (1.0 - smoothing) + smoothing / max(classes, 1)  # no classes: nothing reads it
    else:
        raise TypeError(f"targets must be integer class indices or floating class probabilities, got {targets.dtype}")
    if included is not None:
        # optax's `where`: masked classes are left out of the softmax (their logits -inf, so p = 0) and of the
        # loss (their targets 0); a row with no class left gives 0 and is not counted in the mean
        call.logits = xp.where(included, call.logits, -math.inf)
        if dense is not None:
            dense = xp.where(included, dense, 0.0)
        kept = xp.broadcast_to(xp.any(included, axis=axis), row_shape)
        valid = kept if valid is None else valid & kept
    spec_args = {"ignore_index": ignore, "alpha": alpha_spec, "gamma": gamma_spec,
                 "checked": labels is not None and checked and ignore is None}
    return SoftmaxCall(call, axis, classes, labels, dense, valid, spec_args, every_class=every_class,
                       masked=included is not None,
                       kept=kept if labels is not None and included is not None else None)


def _class_mask(call: Call, where: Any, axis: int) -> Array:
    """optax's ``where``: a boolean mask of the logits' shape (or broadcasting to it), or of the rows'
    shape (one per row, as optax: expanded along ``axis``), with the logits' number of dimensions (not broadcast:
    a class mask stays one row's worth)."""
    xp, shape = call.xp, call.shape
    if isinstance(where, (list, tuple)):
        where = call.from_host(where, xp.bool)
    if not hasattr(where, "dtype"):
        raise TypeError(f"where must be None or a boolean array, got {type(where).__name__} {where!r}")
    where = call.adopt("where", where)
    if not xp.isdtype(where.dtype, "bool"):
        raise TypeError(f"where must be a boolean array (True: the class takes part), got dtype {where.dtype}")
    given = tuple(where.shape)
    if where.ndim == len(shape) - 1:
        where = xp.expand_dims(where, axis=axis)
    if not _checks.broadcasts(tuple(where.shape), shape):
        rows = tuple(s for i, s in enumerate(shape) if i != axis)
        raise ValueError(f"where has shape {given}; expected the logits' shape {shape} or one that broadcasts to it "
                         f"(a class mask for every row: {tuple(1 if i != axis else s for i, s in enumerate(shape))}), "
                         f"or the rows' shape {rows}, one per row")
    return xp.reshape(where, (1,) * (len(shape) - where.ndim) + tuple(where.shape))


def _labels_kept(call: Call, labels: Array, valid: Array | None, included: Array, axis: int, classes: int,
                 ignore: int | None, checked: bool) -> Array:
    """:func:`_labels_inside` for labels that stay labels: traced, a row whose label ``where`` leaves out gets a
    label outside [0, C) (and not ``ignore_index``), which the kernel makes NaN."""
    xp = call.xp
    safe = labels if checked else xp.where((labels >= 0) & (labels < classes), labels, 0)
    full = xp.broadcast_to(included, call.shape)
    taking_part = xp.squeeze(xp.take_along_axis(full, xp.expand_dims(safe, axis=axis), axis=axis), axis=axis)
    outside, found = _left_out(call, ~taking_part, valid, included, axis)
    return xp.where(outside, -1 if ignore != -1 else classes, labels) if found is None else labels


def _labels_inside(call: Call, labels: Array, valid: Array | None, included: Array, dense: Array, axis: int,
                   classes: int) -> Array:
    """A row whose label is a class that ``where`` leaves out has no loss to give: eagerly an error,
    traced its row NaN."""
    xp = call.xp
    onehot = _onehot(xp, labels, axis, classes, len(call.shape))
    outside, found = _left_out(call, xp.any(onehot & ~included, axis=axis), valid, included, axis)
    if found is None:
        dense = xp.where(xp.expand_dims(outside, axis=axis), math.nan, dense)
    return dense


def _left_out(call: Call, label_out: Array, valid: Array | None, included: Array, axis: int
              ) -> tuple[Array, bool | None]:
    """The rows (not ignored, with a class left) whose label ``where`` leaves out, and whether there are any
    (None: traced); eagerly any is an error."""
    xp = call.xp
    outside = label_out & xp.any(included, axis=axis)
    if valid is not None:
        outside = outside & valid
    found = call.known(xp.any(outside))
    if found:
        raise ValueError("targets holds a class index that where leaves out (where is False there): the row's "
                         "target class must take part, or leave the whole row out")
    return outside, found


def _smoothed_onehot(call: Call, labels: Array, valid: Array | None, axis: int, classes: int,
                     smoothing: Any, checked: bool) -> Array:
    """``onehot (1 − ls) + ls / C``; rows of ``ignore_index`` are all 0 (they add nothing); rows of
    labels outside [0, C) that could not be ``checked`` are NaN."""
    xp = call.xp
    onehot = _onehot(xp, labels, axis, classes, len(call.shape))
    low: Any = smoothing / classes
    high: Any = (1.0 - smoothing) + low
    if valid is None and checked and isinstance(smoothing, float):
        if smoothing == 0.0:
            return xp.astype(onehot, call.dtype)
        return xp.where(onehot, high, xp.full((), low, dtype=call.dtype, device=call.device))
    # the rows' two values first (row-sized arrays), then one where over the logits' shape
    zeros = xp.zeros_like(labels, dtype=call.dtype)
    high, low = zeros + high, zeros + low
    if valid is not None:
        high, low = xp.where(valid, high, 0.0), xp.where(valid, low, 0.0)
    if not checked:
        out_of_range = (labels < 0) | (labels >= classes)
        if valid is not None:
            out_of_range = out_of_range & valid
        high, low = xp.where(out_of_range, math.nan, high), xp.where(out_of_range, math.nan, low)
    return xp.where(onehot, xp.expand_dims(high, axis=axis), xp.expand_dims(low, axis=axis))


def _check_alpha(call: Call, alpha: Any, classes: int, axis: int) -> Any:
    """None; a scalar in [0, 1] (a number, or the Slot of a 0-d array); or per-class weights (>= 0) as the
    Slot of a sequence or a 1-d array of the logits' library."""
    if alpha is None:
        return None
    if given_as_vector(alpha):
        return call.vector("alpha", alpha, classes, axis=axis, per_class="weight", differentiable=True)
    return call.hyper("alpha", alpha, low=0.0, high=1.0, differentiable=True)


def check_labels(call: Call, labels: Array, valid: Array | None, classes: int) -> bool:
    """Eagerly, every label not ignored must be in [0, C); under tracing the kernels mark them NaN.
    True when they were read and are all in range."""
    xp = call.xp

    def outside() -> Array:
        bad = (labels < 0) | (labels >= classes)
        return bad if valid is None else bad & valid

    if valid is None and math.prod(labels.shape):  # the extrema, one read: no boolean arrays on every eager call
        smallest, largest = call.backend.extrema(labels)
        found = call.known((smallest < 0) | (largest >= classes))
    else:
        found = call.known(xp.any(outside()))
    if found:
        bad = outside()
        limits = xp.iinfo(labels.dtype)
        low = int(xp.min(xp.where(bad, labels, limits.max)))
        high = int(xp.max(xp.where(bad, labels, limits.min)))
        raise ValueError(
            f"targets holds class indices outside [0, {classes}) (from {low} to {high}); logits have "
            f"{classes} classes along the class axis"
            + ("" if valid is None else " and ignore_index is not one of them")
        )
    return found is False

