"""array-api-compat's torch namespace, with the functions the core calls with a Python scalar
written directly in torch ops.

array-api-compat's ``maximum``/``minimum``/``where``/``clip`` promote dtypes through
``torch.result_type``, which ``torch.compile`` cannot trace inside an ``autograd.Function``
(a graph break, so ``fullgraph=True`` fails). A Python scalar beside a tensor already takes the
tensor's dtype in torch, which is what the standard asks, so the plain ops are enough.
"""

from __future__ import annotations

import builtins
from typing import Any

import torch
from array_api_compat.torch import *  # noqa: F401,F403 - the rest of the namespace, unchanged
from array_api_compat.torch import __array_api_version__  # noqa: F401


def _scalar(x: Any) -> bool:
    return isinstance(x, (builtins.int, builtins.float)) and not isinstance(x, builtins.bool)


def maximum(x1: Any, x2: Any, /) -> torch.Tensor:
    if _scalar(x2):
        return torch.clamp_min(x1, x2)
    if _scalar(x1):
        return torch.clamp_min(x2, x1)
    return torch.maximum(x1, x2)


def minimum(x1: Any, x2: Any, /) -> torch.Tensor:
    if _scalar(x2):
        return torch.clamp_max(x1, x2)
    if _scalar(x1):
        return torch.clamp_max(x2, x1)
    return torch.minimum(x1, x2)


def where(condition: torch.Tensor, x1: Any, x2: Any, /) -> torch.Tensor:
    return torch.where(condition, x1, x2)


def sign(x: torch.Tensor, /) -> torch.Tensor:
    # torch.sign(NaN) is 0; array-api-compat writes the standard's NaN through a boolean mask, which torch.func.vmap
    # cannot batch (per-sample gradients): a where instead
    return torch.where(torch.isnan(x), x, torch.sign(x))


def clip(x: torch.Tensor, /, min: Any = None, max: Any = None) -> torch.Tensor:  # noqa: A002
    return torch.clamp(x, min, max)


# Not in the standard: fused primitives the core takes where a namespace has them (focal._binary.sigmoid_parts,
# focal._numerics.softmax_and_max)
sigmoid = torch.sigmoid


def softmax(x: torch.Tensor, /, *, axis: int, overwrite: bool = False) -> torch.Tensor:
    # written into x where the core says it is its own and dead (a fused linear loss's chunk): the kernel reads
    # each row's maximum and sum before it writes the row, so an aliased output is exact (tested against torch's
    # own softmax); never where autograd or a transform could read x after
    if overwrite and not (torch.compiler.is_compiling() or x.requires_grad or _wrapped(x)):
        return torch.softmax(x, dim=axis, out=x)
    return torch.softmax(x, dim=axis)


def take_along_axis(x: torch.Tensor, indices: torch.Tensor, /, *, axis: int = -1) -> torch.Tensor:
    # torch.take_along_dim takes int64 indices only (Keras passes int32 labels), and wraps negative ones with a
    # remainder pass; the core's indices are in range, so where no broadcast is needed a plain gather does
    indices = indices if indices.dtype == torch.int64 else indices.long()
    if indices.ndim == x.ndim and builtins.all(i == n for d, (i, n) in enumerate(zip(indices.shape, x.shape))
                                      if d != axis % x.ndim):
        return torch.gather(x, axis, indices)
    return torch.take_along_dim(x, indices, dim=axis)


def _wrapped(x: Any) -> bool:
    """Whether ``x`` is a torch.func transform's wrapper (batched under vmap, tracked under grad)."""
    return isinstance(x, torch.Tensor) and torch._C._functorch.is_functorch_wrapped_tensor(x)


# Not in the standard: NumPy's put_along_axis, but functional unless the core says ``x`` is its own and dead
# (``overwrite``). Eagerly, one scatter of a row's worth of values where the standard needs a where over every
# element; compiled, that where (against an iota), which fuses into the loops around it where a scatter cannot.
def set_along_axis(x: torch.Tensor, indices: torch.Tensor, values: Any, /, *, axis: int,
                   overwrite: bool = False) -> torch.Tensor:
    if torch.compiler.is_compiling():
        shape = [1] * x.ndim
        shape[axis] = x.shape[axis]
        classes = torch.arange(x.shape[axis], device=x.device, dtype=indices.dtype).reshape(shape)
        return torch.where(indices == classes, values, x)
    indices = indices if indices.dtype == torch.int64 else indices.long()
    if not isinstance(values, torch.Tensor):
        values = torch.full((), values, dtype=x.dtype, device=x.device)
    values = values.expand(indices.shape)
    # under torch.func transforms x may be batched where indices or values are not: no writing into it there; nor
    # where autograd records it (a backward run again to be differentiated: torch.py's _differentiable_vjp)
    if overwrite and not (x.requires_grad or _wrapped(x) or _wrapped(indices) or _wrapped(values)):
        return x.scatter_(axis, indices, values)
    return torch.scatter(x, axis, indices, values)


def matmul_add_tn(total: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``total + a.T @ b`` in place (``focal._linear``'s accumulation of ``d weight``): one pass over ``total``, no
    product of its size; operands of another dtype (bfloat16 into a float32 total) cast to it first, a chunk's size
    (a bfloat16 product the size of ``total`` and its add took twice as long: 41 against 21 ms at 128 x 32000 x 512
    on 2 cores, as PyTorch's own chunked loss does on the CPU)."""
    if a.dtype != total.dtype:
        return total.addmm_(a.T.to(total.dtype), b.to(total.dtype))
    return total.addmm_(a.T, b)


def matmul_add(total: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``total + a @ b`` in place (``focal._linear.matmul_add``: ``d hidden`` over blocks of classes)."""
    if a.dtype != total.dtype:
        return total.add_(torch.matmul(a, b))
    return total.addmm_(a, b)


def exp_in_place(x: torch.Tensor) -> torch.Tensor:
    """``exp(x)`` written into ``x`` where the core says it is its own and dead (``focal._numerics.exp_in_place``);
    a new tensor where autograd, a transform or a compiler could read ``x`` after."""
    if torch.compiler.is_compiling() or x.requires_grad or _wrapped(x):
        return torch.exp(x)
    return x.exp_()


def forward_owned(kernel: Any, logits: torch.Tensor, aux: tuple[Any, ...], params: tuple[Any, ...],
                  wanted: tuple[Any, ...]) -> Any:
    """Not in the standard: an elementwise kernel over slices of logits the core owns (``_torch_chunks``)."""
    from . import _torch_chunks

    return _torch_chunks.forward_owned(kernel, logits, aux, params, wanted)
