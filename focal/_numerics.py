"""Numerically stable building blocks, written once in array-API calls.

The array API standard has no softplus, log-sigmoid or logsumexp, so they are built here from
``log1p``, ``exp``, ``expm1`` and ``maximum`` in forms that stay finite for logits of any size.
Every function takes the namespace ``xp`` first and never imports a framework.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Array = Any
_LN2 = math.log(2.0)


def tiny(xp: Any, x: Array) -> float:
    """The smallest normal number of ``x``'s dtype: the floor for logs of quantities that underflow."""
    return float(xp.finfo(x.dtype).smallest_normal)


def device_of(x: Array) -> Any:
    """``x``'s device (the standard's ``x.device``), for an array made to meet ``x``; None where ``x`` gives none (a
    JAX tracer, whose compile places what it makes; an array sharded over several devices; NumPy 1)."""
    try:
        return x.device
    except Exception:  # noqa: BLE001 - JAX raises AttributeError for a tracer, ValueError for a sharded array
        return None


def stops_gradients(xp: Any) -> bool:
    """Whether autodiff records the kernel's operations in this namespace (JAX's, TensorFlow's, PyTorch's double
    backward), so that an array held constant (:func:`held`) needs its own computation."""
    return hasattr(xp, "stop_gradient")


def held(xp: Any, x: Array) -> Array:
    """``x`` as a constant to autodiff, of every order: the namespace's ``stop_gradient`` where autodiff records the
    kernel (:func:`stops_gradients`), else ``x`` itself (NumPy, and PyTorch's first-order forward, which records
    nothing)."""
    return xp.stop_gradient(x) if stops_gradients(xp) else x


def log_sigmoid_pair(xp: Any, x: Array) -> tuple[Array, Array]:
    """``(log σ(x), log σ(−x))``, sharing one ``log1p(exp(−|x|))``.

    ``log σ(x) = min(x, 0) − log1p(exp(−|x|))``; ``log σ(−x) = (min(x, 0) − x) − log1p(exp(−|x|))``, where
    ``min(x, 0) − x`` is exact (0 or −x) and, at x = 0, takes the branch of ``x ≥ 0`` as ``|x|`` does, so
    JAX's derivatives of it are those of one branch (``_jax_namespace``).
    """
    softplus_neg_abs = xp.log1p(xp.exp(-xp.abs(x)))
    lower = xp.minimum(x, 0.0)
    log_p = lower - softplus_neg_abs
    log_q = (lower - x) - softplus_neg_abs
    return log_p, log_q


def finite_max(xp: Any, z: Array, axis: int) -> Array:
    """The rows' maximum along ``axis`` (keepdims), 0 where it is not finite (a row of ``-inf``, or with a NaN): a
    row shifted by it is not ``inf − inf`` throughout."""
    if z.shape[axis] == 0:  # no classes: a maximum has no identity, and every sum over the row is empty (0)
        return xp.sum(z, axis=axis, keepdims=True)
    m = xp.max(z, axis=axis, keepdims=True)
    return xp.where(xp.isfinite(m), m, 0.0)


def softmax_parts(xp: Any, z: Array, axis: int, m: Array | None = None) -> tuple[Array, Array, Array]:
    """``(z − m, exp(z − m), log1p(s))`` along ``axis``: ``log p = (z − m) − log1p(s)`` and
    ``p = exp(z − m) / (1 + s)``, from one ``exp`` per element and one ``log1p`` per row.

    With ``m = max(z)``, ``s`` sums ``exp(z − m)`` over every entry but one maximum; writing
    ``log(1 + s)`` as ``log1p(s)`` keeps ``log p`` of the winning class exact when ``s`` is below
    the dtype's epsilon (plain ``log(sum)`` rounds it to 0). ``m`` is :func:`finite_max` (given where the caller
    reads it too).
    """
    m = finite_max(xp, z, axis) if m is None else m
    shifted = z - m
    exps = xp.exp(shifted)
    # a product with a 0/1 mask, not a where: an eager where costs ten multiplications on PyTorch's CPU
    masked = xp.astype(shifted != 0.0, z.dtype)
    ties = z.shape[axis] - xp.sum(masked, axis=axis, keepdims=True)
    masked *= exps
    others = xp.sum(masked, axis=axis, keepdims=True)
    rest = others + xp.maximum(ties - 1.0, 0.0)
    return shifted, exps, xp.log1p(rest)


def scale_in_place(xp: Any, a: Array, b: Any) -> Array:
    """``a * b``, written into ``a`` (a fresh array fewer; ``a`` is the caller's own and dead), except in a namespace
    whose operations autograd records (``records``: PyTorch's kernel run again to be differentiated), where an
    earlier operation may have saved ``a`` for its derivative."""
    if getattr(xp, "records", False):
        return a * b
    a *= b
    return a


def add_in_place(xp: Any, a: Array, b: Any) -> Array:
    """``a + b``, written into ``a`` where :func:`scale_in_place` would write (``a`` the caller's own and dead)."""
    if getattr(xp, "records", False):
        return a + b
    a += b
    return a


def exp_in_place(xp: Any, a: Array) -> Array:
    """``exp(a)``, written into ``a`` (the caller's own and dead) where the namespace offers it (PyTorch's
    ``exp_``), else a new array."""
    native = getattr(xp, "exp_in_place", None)
    return xp.exp(a) if native is None or getattr(xp, "records", False) else native(a)


def softmax_and_max(xp: Any, z: Array, axis: int, m: Array, *, overwrite: bool = False) -> tuple[Array, Array]:
    """``(softmax(z), its maximum)`` along ``axis`` (the maximum with a length-1 axis), given the rows' finite
    maximum ``m``: the framework's own fused ``softmax`` where the namespace offers one (ours for PyTorch: one pass,
    one array), else ``exp(z − m)`` scaled by the reciprocal of its sum, in place. ``overwrite``: ``z`` is the
    caller's own and read by nothing after (a fused linear loss's chunk of logits): written over where the library
    can (PyTorch's softmax into its input, NumPy's shift in place), one array of ``z``'s size fewer.

    Without the framework's softmax the maximum is ``max(exp(z − m))`` times the reciprocal: the same number as
    ``max(p)`` (a product with a positive number rounds monotonically), read before ``p`` exists, so that a compiler
    fuses ``p`` into its readers: one array of ``z``'s size where XLA otherwise held ``exp(z − m)`` and ``p``
    together (4096 x 512 -> 32000 in chunks of 128 rows: 40 -> 24 MiB of temporaries)."""
    native = getattr(xp, "softmax", None)
    if native is not None:
        p = native(z, axis=axis, overwrite=overwrite)
        return p, xp.max(p, axis=axis, keepdims=True)
    if overwrite and not getattr(xp, "records", False):
        z -= m
        e = xp.exp(z)
        del z
    else:
        e = xp.exp(z - m)
    inverse = 1.0 / xp.sum(e, axis=axis, keepdims=True)
    top = xp.max(e, axis=axis, keepdims=True) * inverse
    e *= inverse
    return e, top


def log_softmax(xp: Any, z: Array, axis: int) -> Array:
    """``log softmax(z)`` along ``axis``, accurate even where one class takes almost all the mass
    (see :func:`softmax_parts`)."""
    shifted, _, log_total = softmax_parts(xp, z, axis)
    return shifted - log_total


def log1mexp(xp: Any, log_p: Array) -> Array:
    """``log(1 − exp(l))`` for ``l ≤ 0`` (Mächler 2012), floored at ``log(tiny)`` where it underflows.

    ``log(−expm1(l))`` is accurate for ``l > −ln 2`` and ``log1p(−exp(l))`` below; each branch's
    argument is clamped so the branch that is not selected never evaluates ``log(0)``.
    """
    near_one = log_p > -_LN2
    upper = xp.log(xp.maximum(-xp.expm1(log_p), tiny(xp, log_p)))
    # a where, not minimum(l, −ln 2): at l = −ln 2 (p = 1/2, a tie of two classes) a minimum's derivative is half
    # of l's, and JAX's Hessian differentiates this
    lower = xp.log1p(-xp.exp(xp.where(near_one, -_LN2, log_p)))
    return xp.where(near_one, upper, lower)


def neg_log_over_one_minus(xp: Any, log_p: Array) -> Array:
    """``−log(p) / (1 − p) = l / expm1(l)`` for ``l = log p ≤ 0``: 1 at ``p = 1``, no ``0/0``.

    This ratio turns the softmax focal gradient's ``γ p (1 − p)^(γ−1) log p`` into
    ``γ p (1 − p)^γ · ratio``, which stays finite for ``γ < 1`` as ``p → 1``.
    """
    small = log_p > -1e-3
    safe = xp.where(small, -1.0, log_p)
    series = 1.0 - log_p / 2.0 + log_p * log_p / 12.0
    return xp.where(small, series, safe / xp.expm1(safe))


def neg_log_over(xp: Any, log_p: Array, one_minus_p: Array) -> Array:
    """``−log(p) / (1 − p)`` from ``log p`` and ``1 − p`` as the caller has them, both exact (three operations
    against :func:`neg_log_over_one_minus`'s thirteen); 1, its limit as p → 1, where ``1 − p`` is below the
    smallest normal."""
    floor = tiny(xp, one_minus_p)
    # xp.divide: its derivative (JAX's Hessian) must not square a 1 − p that is this small (_jax_namespace)
    return xp.where(one_minus_p >= floor, xp.divide(-log_p, xp.maximum(one_minus_p, floor)), 1.0)


# γ (or β) given as a whole number up to this: powers by multiplication, no log, no exp
_MAX_MULTIPLIED_POWER = 8


def small_integer(gamma: Any) -> int | None:
    """γ as an int where it is a number, whole and up to 8 (computed by multiplication), else None."""
    if isinstance(gamma, float) and gamma.is_integer() and 0.0 <= gamma <= _MAX_MULTIPLIED_POWER:
        return int(gamma)
    return None


def integer_power(base: Array, power: int) -> Any:
    """``base ** power`` by repeated squaring (1.0 for power 0)."""
    result: Any = 1.0
    square = base
    while power:
        if power & 1:
            result = square if isinstance(result, float) else result * square
        power >>= 1
        if power:
            square = square * square
    return result


def power(xp: Any, base: Array, log_base: Callable[[], Array], exponent: Any) -> Any:
    """``base ** exponent`` from the base and its log (both exact; the log asked for only where it is read): by
    multiplication where the exponent is a whole number up to 8 given as a number (the common γ = 2: one product
    for an exp and a product), else ``exp(exponent · log base)``."""
    whole = small_integer(exponent)
    return xp.exp(exponent * log_base()) if whole is None else integer_power(base, whole)
