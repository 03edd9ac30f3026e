"""The contract between a loss and the backends: a forward pass and its vector-Jacobian product.

``kernel.forward(xp, logits, aux, params, wanted) -> (out, residuals)`` computes the loss elements
and whatever the gradient needs; ``kernel.vjp(xp, residuals, cotangent, wanted) -> (d logits,
d params)`` is linear in the cotangent. ``aux`` are the arrays the kernel reads without a gradient
(targets, masks); ``params`` the hyperparameters given as arrays (``focal._hyper``); ``wanted`` has
one entry per param, its :class:`~focal._hyper.Slot` where that param's gradient is asked for and
None elsewhere (static, so the residuals hold only the partials that will be used); ``d params``
is aligned with it; ``consume=True`` tells ``vjp`` it may overwrite ``residuals[0]``, which the backend
has checked is a fresh array of the logits' shape that it will never read again. Backends wire exactly
these two into their autodiff (JAX derives its JVP by transposing the VJP, so forward mode and
``jax.hessian`` work too); ``value_and_grad`` calls them directly. Kernels are frozen dataclasses:
hashable, so JAX takes them as static arguments.

A kernel may also have ``value(xp, logits, aux, params) -> out``, the loss alone: what the backends run where
no gradient is wanted (:func:`value_of`; validation, ``torch.no_grad()``, JAX's primal, TF without a tape), so an
eager forward does not compute a gradient it throws away.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ._hyper import Slot, bind, no_grads, reduce_partials, take_partials

Array = Any
Wanted = tuple[Slot | None, ...]
Grads = tuple[Array, tuple[Array | None, ...]]


class Kernel(Protocol):
    def forward(self, xp: Any, logits: Array, aux: tuple[Array, ...], params: tuple[Array, ...],
                wanted: Wanted) -> tuple[Array, tuple[Array, ...]]: ...

    def vjp(self, xp: Any, residuals: tuple[Array, ...], cotangent: Array, wanted: Wanted, *,
            consume: bool = False) -> Grads: ...


def value_of(kernel: Any, xp: Any, logits: Array, aux: tuple[Array, ...], params: tuple[Array, ...]) -> Array:
    """The kernel's loss alone: its ``value`` where it has one, else its forward's output."""
    value = getattr(kernel, "value", None)
    if value is not None:
        return value(xp, logits, aux, params)
    return kernel.forward(xp, logits, aux, params, no_grads(len(params)))[0]


@dataclass(frozen=True)
class Elementwise:
    """A loss whose element i depends on logit i only (``axis=None``) or on row i along ``axis``.

    ``fn(xp, logits, y, *aux, spec) -> (loss, dloss, partials)`` gives each element's loss, its
    gradient w.r.t. the logits it depends on, and ``partials[name]()``, the element's derivative
    w.r.t. a hyperparameter (in the gradient's shape), ``partials["targets"]()`` that w.r.t. the target
    ``y``, which the kernel reads from its ``targets`` slot. The Jacobian is block diagonal, so the VJP
    is the cotangent, broadcast along ``axis``, times ``dloss`` (and times each partial, summed).
    With ``masked`` the last of ``aux`` is a boolean mask: elements outside it (``ignore_index``) give
    0 loss, gradient and partials, whatever their inputs. ``fn(..., grad=False)`` computes the loss alone (its
    gradient None, no partials): :meth:`value`.
    """

    fn: Callable[..., tuple[Array, Array, Any]]
    spec: Any
    axis: int | None = None
    broadcasts_cotangent = True  # its VJP is broadcast_vjp (not a field)
    masked: bool = False
    targets: Slot | None = None

    def _inputs(self, aux: tuple[Array, ...], params: tuple[Array, ...]) -> tuple[Array, ...]:
        inputs = aux[:-1] if self.masked else aux
        return inputs if self.targets is None else (params[self.targets.index], *inputs)

    def value(self, xp: Any, logits: Array, aux: tuple[Array, ...], params: tuple[Array, ...]) -> Array:
        loss = self.fn(xp, logits, *self._inputs(aux, params), bind(self.spec, params), grad=False)[0]
        return xp.where(aux[-1], loss, 0.0) if self.masked else loss

    def forward(self, xp: Any, logits: Array, aux: tuple[Array, ...], params: tuple[Array, ...],
                wanted: Wanted) -> tuple[Array, tuple[Array, ...]]:
        loss, dloss, partials = self.fn(xp, logits, *self._inputs(aux, params), bind(self.spec, params))
        residuals = (dloss, *take_partials(partials, wanted))
        if self.masked:
            mask = aux[-1]
            loss = xp.where(mask, loss, 0.0)
            residuals = tuple(xp.where(mask, r, 0.0) for r in residuals)
        return loss, residuals

    def vjp(self, xp: Any, residuals: tuple[Array, ...], cotangent: Array, wanted: Wanted, *,
            consume: bool = False) -> Grads:
        return broadcast_vjp(xp, residuals, cotangent, wanted, self.axis, consume=consume)


def broadcast_vjp(xp: Any, residuals: tuple[Array, ...], cotangent: Array, wanted: Wanted, axis: int | None, *,
                  consume: bool = False) -> Grads:
    """The VJP of a loss whose element i depends on element (row) i only, from residuals
    ``(dloss, *partials)``: the cotangent, broadcast along ``axis``, times each; with ``consume``
    (see the module doc) in ``dloss`` itself, no fresh array."""
    dloss, *partials = residuals
    if isinstance(cotangent, float) and cotangent == 1.0 and not any(wanted):
        return dloss, no_grads(len(wanted))  # the number 1 (value_and_grad of a sum): nothing to multiply
    scale = expand(xp, cotangent, axis)
    if consume:
        dloss *= scale
        return dloss, reduce_partials(xp, wanted, scale, tuple(partials))
    return scale * dloss, reduce_partials(xp, wanted, scale, tuple(partials))


def expand(xp: Any, x: Any, axis: int | None) -> Any:
    """``x`` with a length-1 ``axis`` inserted (a no-op for ``axis=None``, a Python scalar or a 0-d
    array, which broadcast as they are)."""
    if axis is None or isinstance(x, (int, float)) or x.ndim == 0:
        return x
    return xp.expand_dims(x, axis=axis)


@dataclass(frozen=True)
class FromProbabilities:
    """Run a logit kernel on probabilities (``from_logits=False``).

    The probabilities are clipped to ``[eps, 1 − eps]`` of the compute dtype and mapped to logits
    (``log p − log(1 − p)`` for sigmoid, ``log p`` for softmax, which renormalises a row that does not
    sum to 1); the gradient follows by the chain rule and is 0 where the clip is active. ``checked``: the
    probabilities were read and lie in [0, 1] (eagerly, ``LossPlan``); else one outside makes its element NaN.
    """

    kernel: Any
    link: str  # "sigmoid" or "softmax"
    checked: bool = False

    def forward(self, xp: Any, probs: Array, aux: tuple[Array, ...], params: tuple[Array, ...],
                wanted: Wanted) -> tuple[Array, tuple[Array, ...]]:
        clipped = self._clipped(xp, probs)
        inside = clipped == probs  # the clip is inactive (a NaN, or one marked NaN, is not inside: 0)
        sigmoid = self.link == "sigmoid"
        dlogits_dprobs = 1.0 / (clipped * (1.0 - clipped)) if sigmoid else 1.0 / clipped
        out, residuals = self.kernel.forward(xp, self._logits(xp, clipped), aux, params, wanted)
        return out, residuals + (xp.where(inside, dlogits_dprobs, 0.0),)

    def value(self, xp: Any, probs: Array, aux: tuple[Array, ...], params: tuple[Array, ...]) -> Array:
        return value_of(self.kernel, xp, self._logits(xp, self._clipped(xp, probs)), aux, params)

    def _clipped(self, xp: Any, probs: Array) -> Array:
        eps = float(xp.finfo(probs.dtype).eps)
        clipped = xp.clip(probs, eps, 1.0 - eps)
        if self.checked:
            return clipped
        # outside [0, 1] is an error eagerly (LossPlan); traced, it must show as NaN, not be clipped away
        return xp.where((probs < 0.0) | (probs > 1.0), math.nan, clipped)

    def _logits(self, xp: Any, clipped: Array) -> Array:
        if self.link == "sigmoid":
            return xp.log(clipped) - xp.log1p(-clipped)
        return xp.log(clipped)

    def vjp(self, xp: Any, residuals: tuple[Array, ...], cotangent: Array, wanted: Wanted, *,
            consume: bool = False) -> Grads:
        *inner, chain = residuals
        grad, params = self.kernel.vjp(xp, tuple(inner), cotangent, wanted, consume=consume)
        if consume:
            grad *= chain
            return grad, params
        return grad * chain, params


@dataclass(frozen=True)
class Summed:
    """The sum of an elementwise kernel's output, inside the kernel: a fused backend (PyTorch's
    compiled path) then never writes the per-element losses, only their sum and the gradient.

    Its VJP is the inner one with the scalar cotangent, which broadcasts against the gradient.
    """

    kernel: Any

    def forward(self, xp: Any, logits: Array, aux: tuple[Array, ...], params: tuple[Array, ...],
                wanted: Wanted) -> tuple[Array, tuple[Array, ...]]:
        out, residuals = self.kernel.forward(xp, logits, aux, params, wanted)
        return xp.sum(out), residuals

    def value(self, xp: Any, logits: Array, aux: tuple[Array, ...], params: tuple[Array, ...]) -> Array:
        return xp.sum(value_of(self.kernel, xp, logits, aux, params))

    def vjp(self, xp: Any, residuals: tuple[Array, ...], cotangent: Array, wanted: Wanted, *,
            consume: bool = False) -> Grads:
        return self.kernel.vjp(xp, residuals, cotangent, wanted, consume=consume)


def takes_number_cotangent(kernel: Any) -> bool:
    """Whether the kernel's VJP takes a cotangent given as a number (the number 1: nothing multiplied), as
    :func:`broadcast_vjp` does; a kernel says so with ``broadcasts_cotangent``."""
    if isinstance(kernel, FromProbabilities):
        return takes_number_cotangent(kernel.kernel)
    return bool(getattr(kernel, "broadcasts_cotangent", False))


def summable(kernel: Any) -> bool:
    """Whether ``Summed(kernel)`` is valid: the VJP takes a broadcast cotangent (elementwise kernels)."""
    if isinstance(kernel, FromProbabilities):
        return summable(kernel.kernel)
    return isinstance(kernel, Elementwise)
