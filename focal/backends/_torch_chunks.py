"""PyTorch's plain path for a large elementwise kernel: the same kernel, run on slices of the leading axis.

Eagerly each array-API call of a kernel writes a fresh array of the input's size; on a CPU a 20 MB array
that glibc has handed back to the system must be faulted in again, page by page. The sigmoid kernel holds
six such arrays at its peak, over glibc's trim threshold, so every call faulted in 120-180 MB (65536x80,
2 cores: 88 ms, 45 of them page faults, against torchvision's 62). On slices of about ``CHUNK_ELEMENTS``
the temporaries are half a MB, reused from one slice to the next and warm in the cache; only the loss and
the gradient are written at full size (25 ms against torchvision's 62 on the same input). On the CPU only:
a GPU would pay a launch per slice and operation. Elements are independent, so each element's loss and
gradient are the same to the last bit (a summed loss adds the slices' sums: the order of the summation
differs). Not for kernels that reduce along the leading axis, nor where hyperparameter gradients are wanted
(their partials may broadcast), nor under torch.func transforms or a compiler.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .._kernel import Elementwise, Summed, value_of
from . import _torch_namespace as xp
from ._torch_namespace import _wrapped

# 512 KB of float32 per temporary, inside a core's L2 cache; on 65536x80, 2 cores (python -m focal bench, plain
# path): 1 << 17 gave 25 ms, 1 << 18 29-36 ms, 1 << 20 39-53 ms, unsliced 88 ms
CHUNK_ELEMENTS = int(os.environ.get("FOCAL_TORCH_CHUNK", 1 << 17))


def _elementwise(kernel: Any) -> Elementwise | None:
    inner = kernel.kernel if isinstance(kernel, Summed) else kernel
    return inner if isinstance(inner, Elementwise) else None


def applies(kernel: Any, logits: torch.Tensor, wanted: tuple[Any, ...]) -> bool:
    inner = _elementwise(kernel)
    return (inner is not None and logits.device.type == "cpu" and logits.ndim >= 1
            and logits.numel() >= 2 * CHUNK_ELEMENTS
            and (inner.axis is None or inner.axis % logits.ndim != 0) and not any(wanted)
            and not torch.compiler.is_compiling() and not _wrapped(logits))


def _rows(x: Any, start: int, stop: int, rows: int, ndim: int) -> Any:
    """``x``'s slice for rows [start, stop) where it has the leading axis; as it is where it broadcasts."""
    if isinstance(x, torch.Tensor) and x.ndim == ndim and x.shape[0] == rows:
        return x[start:stop]
    return x


def forward(kernel: Any, logits: torch.Tensor, aux: tuple[Any, ...], params: tuple[Any, ...],
            wanted: tuple[Any, ...], *, loss_only: bool = False, into: torch.Tensor | None = None
            ) -> tuple[Any, tuple[Any, ...]]:
    """``kernel.forward`` over slices of rows (:func:`applies` holds): the loss (or its sum) and the residuals;
    with ``loss_only`` the loss alone (each slice's kernel ``value``: no residuals). ``into``: the first residual
    (the gradient) is written there, slice by slice (the logits themselves where the caller owns them: each slice's
    logits are read before its gradient is written over them)."""
    rows, ndim = logits.shape[0], logits.ndim
    step = max(1, CHUNK_ELEMENTS // max(1, logits[0].numel()))
    summed = isinstance(kernel, Summed)
    out: Any = None
    residuals: list[torch.Tensor] = []
    for start in range(0, rows, step):
        stop = min(start + step, rows)
        inputs = (xp, logits[start:stop], tuple(_rows(a, start, stop, rows, ndim) for a in aux),
                  tuple(_rows(p, start, stop, rows, ndim) for p in params))
        part, parts = (value_of(kernel, *inputs), ()) if loss_only else kernel.forward(*inputs, wanted)
        if start == 0:
            out = part if summed else part.new_empty((rows, *part.shape[1:]))
            residuals = [into if into is not None and i == 0 else r.new_empty((rows, *r.shape[1:]))
                         for i, r in enumerate(parts)]  # none with loss_only
        elif summed:
            out = out + part
        if not summed:
            out[start:stop] = part
        for full, r in zip(residuals, parts):
            full[start:stop] = r
    return out, tuple(residuals)


def forward_owned(kernel: Any, logits: torch.Tensor, aux: tuple[Any, ...], params: tuple[Any, ...],
                  wanted: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]] | None:
    """``kernel.forward`` of logits the caller owns and lets go of (a fused linear loss's block,
    ``focal._plan.LossPlan.compute``): over slices of rows with the gradient written over the logits, one array of
    their size where the kernel's own temporaries would be several (the sigmoid kernel's eight); None where
    :func:`applies` does not hold (the caller runs the kernel whole)."""
    if not applies(kernel, logits, wanted) or logits.requires_grad or not logits.is_contiguous():
        return None
    return forward(kernel, logits, aux, params, wanted, into=logits)
