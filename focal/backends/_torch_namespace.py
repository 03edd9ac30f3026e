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


def clip(x: torch.Tensor, /, min: Any = None, max: Any = None) -> torch.Tensor:  # noqa: A002
    return torch.clamp(x, min, max)


# Not in the standard: a fused primitive the core takes where a namespace has it (focal._binary.sigmoid_parts)
sigmoid = torch.sigmoid


def take_along_axis(x: torch.Tensor, indices: torch.Tensor, /, *, axis: int = -1) -> torch.Tensor:
    # torch.take_along_dim takes int64 indices only; the standard takes any integer dtype (Keras passes int32 labels)
    return torch.take_along_dim(x, indices if indices.dtype == torch.int64 else indices.long(), dim=axis)
