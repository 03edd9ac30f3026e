"""The torch namespace for a kernel run again to be differentiated (``torch.py``'s ``_differentiable_vjp``: a
double backward, ``torch.func.hessian``): PyTorch then differentiates the core's analytic gradient op by op, and
three of its rules give a wrong or NaN second derivative there, as JAX's do (``_jax_namespace`` says why and gives
JAX the same three):

- ``divide``: ``d(a/b) = da/b − a·db/b²``; ``b²`` overflows once ``b`` is below the square root of the smallest
  normal, where ``a·db`` underflows: NaN. Here ``(da − (a/b)·db)/b``, and 0 for a zero cotangent where ``a/b``
  overflows (a ``where``'s branch not taken, which reverse mode sends zeros).
- ``abs``: PyTorch's derivative at 0 is 0; the core's ``exp(−|x|)`` takes the branch of ``x ≥ 0``: here ``+1``.
- ``minimum``/``maximum`` with a number: at a tie PyTorch's ``clamp`` passes the tensor's derivative; the core's
  ``min(x, 0)`` and its floors are the number's branch there: here 0.

The first-order path never uses this module (its ``clamp``s are one pass each, and dynamo refuses a Function with a
``jvp``); every value is the plain namespace's.
"""

from __future__ import annotations

import builtins
from typing import Any

import torch

from . import _torch_namespace as _plain

# the core writes nothing in place here (focal._numerics.scale_in_place): autograd records every operation
records = True


def __getattr__(name: str) -> Any:
    return getattr(_plain, name)


def stop_gradient(x: torch.Tensor) -> torch.Tensor:
    """focal._numerics.held: a quantity held constant (``detach_modulator``); the plain namespace records nothing."""
    return x.detach()


def abs(x: torch.Tensor, /) -> torch.Tensor:  # noqa: A001 - the standard's name
    return torch.where(x >= 0, x, -x)


def _number(x: Any) -> bool:
    return isinstance(x, (builtins.int, builtins.float)) and not isinstance(x, builtins.bool)


def _number_side(x: torch.Tensor, c: float) -> torch.Tensor:
    """``c`` where ``x`` is not NaN (a NaN stays: the core's NaN marks must survive a floor)."""
    return torch.where(torch.isnan(x), x, c)


def minimum(x1: Any, x2: Any, /) -> torch.Tensor:
    if _number(x1):
        x1, x2 = x2, x1
    if _number(x2):
        return torch.where(x1 < x2, x1, _number_side(x1, x2))
    return torch.minimum(x1, x2)


def maximum(x1: Any, x2: Any, /) -> torch.Tensor:
    if _number(x1):
        x1, x2 = x2, x1
    if _number(x2):
        return torch.where(x1 > x2, x1, _number_side(x1, x2))
    return torch.maximum(x1, x2)


class _Divide(torch.autograd.Function):
    """``a / b`` whose derivatives are ``(da − (a/b)·db)/b``, of every order (its backward is made of itself)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.div(a, b)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        a, b = ctx.saved_tensors
        scaled = divide(grad, b)
        da = scaled.sum_to_size(a.shape) if ctx.needs_input_grad[0] else None
        # a zero cotangent gives zero, even where a / b overflows: the branch a where did not take (reverse mode
        # sends it zeros) must not make the one it took NaN; forward mode's select never reads it
        db = torch.where(scaled == 0, 0.0, -(scaled * divide(a, b))).sum_to_size(b.shape) if ctx.needs_input_grad[
            1] else None
        return da, db

    @staticmethod
    def jvp(ctx: Any, da: torch.Tensor | None, db: torch.Tensor | None) -> torch.Tensor:
        a, b = ctx.saved_tensors
        tangent = torch.zeros((), dtype=torch.result_type(a, b), device=b.device) if da is None else da
        if db is not None:
            tangent = tangent - divide(a, b) * db
        return divide(tangent, b)


def divide(x1: Any, x2: Any, /) -> torch.Tensor:
    if _number(x1) or _number(x2):
        like = x2 if _number(x1) else x1
        x1, x2 = (torch.as_tensor(x, dtype=like.dtype, device=like.device) if _number(x) else x for x in (x1, x2))
    return _Divide.apply(x1, x2)
