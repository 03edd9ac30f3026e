"""PyTorch: the core's gradient wired in as a ``torch.autograd.Function``.

The function is written in the ``setup_context`` style so ``torch.func.grad``/``vmap`` accept it;
the forward returns the gradient as a second, non-differentiable output, saved for backward.
"""

from __future__ import annotations

from typing import Any, Sequence

import array_api_compat.torch as xp
import torch

from ._base import Array, Backend, Kernel, cotangent_times_grad


class _Elementwise(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(kernel: Kernel, expand_axis: int | None, logits: Array, *aux: Array) -> Any:
        return kernel(xp, logits, *aux)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.expand_axis = inputs[1]
        ctx.num_aux = len(inputs) - 3
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(output[1])

    @staticmethod
    def backward(ctx: Any, grad_loss: Array, _grad_dloss: Array) -> Any:
        (dloss,) = ctx.saved_tensors
        grad = cotangent_times_grad(xp, grad_loss, dloss, ctx.expand_axis)
        return (None, None, grad) + (None,) * ctx.num_aux


class TorchBackend(Backend):
    name = "torch"

    def owns(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor)

    def is_concrete(self, x: Array) -> bool:
        if torch.compiler.is_compiling():
            return False
        return not torch._C._functorch.is_batchedtensor(x)

    def elementwise(self, kernel: Kernel, logits: Array, aux: Sequence[Array], expand_axis: int | None) -> Array:
        return _Elementwise.apply(kernel, expand_axis, logits, *aux)[0]

    def stop_gradient(self, x: Array) -> Array:
        return x.detach()


BACKEND = TorchBackend(xp)
