"""PyTorch: the core's gradient wired in as a ``torch.autograd.Function``.

The function is written in the ``setup_context`` style so ``torch.func.grad``/``vmap`` accept it;
the forward returns the kernel's residuals as extra, non-differentiable outputs, saved for backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from . import _torch_fused as fused
from . import _torch_namespace as xp
from ._base import Array, Backend


class _Apply(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(kernel: Any, logits: Array, *aux: Array) -> Any:
        out, residuals = kernel.forward(xp, logits, *aux)
        return (out, *residuals)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.kernel = inputs[0]
        ctx.num_aux = len(inputs) - 2
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(*output[1:])
        # the residual outputs never get a gradient: don't let autograd fill one with zeros for each
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: Any, grad_out: Array | None, *_grad_residuals: Array) -> Any:
        if grad_out is None:  # grads are not materialized: nothing flowed back into the loss
            return (None,) * (ctx.num_aux + 2)
        grad = ctx.kernel.vjp(xp, tuple(ctx.saved_tensors), grad_out)
        return (None, grad) + (None,) * ctx.num_aux


class _ApplyFused(torch.autograd.Function):
    """The fused path: compiled forward (the loss only) and compiled backward (recomputed from the
    inputs, which autograd saves without a copy)."""

    @staticmethod
    def forward(kernel: Any, logits: Array, *aux: Array) -> Any:
        return fused.run("value", kernel, logits, *aux)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.kernel = inputs[0]
        ctx.save_for_backward(*inputs[1:])

    @staticmethod
    def backward(ctx: Any, grad_out: Array) -> Any:
        logits, *aux = ctx.saved_tensors
        return (None, fused.run("backward", ctx.kernel, grad_out, logits, *aux)) + (None,) * len(aux)


class TorchBackend(Backend):
    name = "torch"

    def owns(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor)

    def result_dtype(self, logits: Array) -> Any:
        # torch.autocast runs losses in float32 and returns float32 (its own losses are on that list);
        # the gradient still reaches the half logits in their dtype
        if logits.dtype in (torch.float16, torch.bfloat16) and torch.is_autocast_enabled(logits.device.type):
            return torch.float32
        return logits.dtype

    def extrema(self, x: Array) -> tuple[Array, Array]:
        return torch.aminmax(x)  # one pass over x, not two

    def is_concrete(self, x: Array) -> bool:
        if torch.compiler.is_compiling():
            return False
        return not torch._C._functorch.is_batchedtensor(x)

    def apply(self, kernel: Any, logits: Array, aux: Sequence[Array]) -> Array:
        if not (torch.is_grad_enabled() and logits.requires_grad):
            # no gradient wanted: no autograd.Function (less overhead, and dynamo then never
            # meets it without a gradient, where it mistakes the function's ctx for its first argument)
            if fused.wanted(logits):
                return fused.run("value", kernel, logits, *aux)
            return kernel.forward(xp, logits, *aux)[0]
        if fused.wanted(logits):
            return _ApplyFused.apply(kernel, logits, *aux)
        return _Apply.apply(kernel, logits, *aux)[0]

    def stop_gradient(self, x: Array) -> Array:
        return x.detach()


BACKEND = TorchBackend(xp)
