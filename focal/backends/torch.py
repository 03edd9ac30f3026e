"""PyTorch: the core's gradient wired in as a ``torch.autograd.Function``.

The function is written in the ``setup_context`` style so ``torch.func.grad``/``vmap`` accept it;
the forward returns the kernel's residuals as extra, non-differentiable outputs, saved for backward.
Hyperparameters given as tensors are inputs too: the kernel computes the partials of those that
require a gradient, and backward returns their gradients beside the logits' one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch.autograd import forward_ad

from .._hyper import wanted_slots
from .._kernel import value_of
from . import _torch_chunks as chunks
from . import _torch_differentiable as differentiable
from . import _torch_fused as fused
from . import _torch_namespace as xp
from ._base import Array, Backend, linear_second_order_message, no_gradient_message
from ._torch_namespace import _wrapped as wrapped


class _Apply(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(kernel: Any, wanted: tuple[Any, ...], names: tuple[str, ...], num_aux: int, logits: Array,
                *arrays: Array) -> Any:
        out, residuals = _plain_forward(kernel, logits, arrays[:num_aux], arrays[num_aux:], wanted)
        return (out, *residuals)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.kernel, ctx.wanted, ctx.names, ctx.num_aux = inputs[:4]
        arrays = [t for t in inputs[4:] if isinstance(t, torch.Tensor)]
        ctx.logits_shape = inputs[4].shape
        ctx.out_like = (output[0].shape, output[0].dtype, output[0].device)
        # not under a compiler nor where tensors have no memory (fake, meta), nor a torch.func transform: then never
        # consumed
        ctx.input_memory = None if torch.compiler.is_compiling() or any(wrapped(t) or _memoryless(t) for t in arrays
                                                                        ) else {
            t.untyped_storage().data_ptr() for t in arrays}
        ctx.mark_non_differentiable(*output[1:])
        # the inputs too (references, no copy): a backward that is itself differentiated runs the kernel again
        # from them (_differentiable_vjp)
        ctx.num_residuals = len(output) - 1
        ctx.save_for_backward(*output[1:], *inputs[4:])
        # the residual outputs never get a gradient: don't let autograd fill one with zeros for each
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: Any, grad_out: Array | None, *_grad_residuals: Array) -> Any:
        if grad_out is None:  # grads are not materialized: nothing flowed back into the loss
            return (None,) * (5 + ctx.num_aux + len(ctx.wanted))
        saved = tuple(ctx.saved_tensors)
        residuals, inputs = saved[:ctx.num_residuals], saved[ctx.num_residuals:]
        if _differentiated(grad_out):
            grad, grads = _differentiable_vjp(ctx.kernel, ctx.wanted, ctx.num_aux, inputs, grad_out)
        else:
            grad, grads = ctx.kernel.vjp(xp, residuals, grad_out, ctx.wanted,
                                         consume=_consumable(residuals[0], grad_out, ctx))
            if torch.compiler.is_compiling():
                grad = _kept_by_a_compiled_backward(grad, inputs[0])
        return (None, None, None, None, grad) + (None,) * ctx.num_aux + grads


class _ApplyForwardMode(_Apply):
    """:class:`_Apply` with forward mode (``torch.func.jvp``, ``jacfwd``, ``torch.func.hessian``'s outer level,
    ``torch.autograd.forward_ad``); apart, because dynamo refuses to trace a Function that defines ``jvp`` (a
    caller's ``torch.compile`` gets :class:`_Apply`)."""

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        _Apply.setup_context(ctx, inputs, output)
        ctx.save_for_forward(*output[1:])

    @staticmethod
    def jvp(ctx: Any, *tangents: Array | None) -> Any:
        # forward mode (torch.func.jvp, jacfwd, torch.func.hessian's outer level): J·t, the kernel's VJP (linear in
        # the cotangent) transposed; the residual outputs carry no tangent (a backward under this level runs the
        # kernel again from its inputs: _differentiated)
        for name, slot, tangent in zip(ctx.names, ctx.wanted, tangents[5 + ctx.num_aux:]):
            if slot is None and tangent is not None:
                raise TypeError(no_gradient_message(name))
        out_tangent = _transposed_vjp(ctx.kernel, ctx.wanted, tuple(ctx.saved_tensors), ctx.out_like, tangents[4],
                                      tangents[5 + ctx.num_aux:])
        return (out_tangent, *(None for _ in range(len(ctx.saved_tensors))))


def autocasting(device_type: str) -> bool:
    """Whether ``torch.autocast`` is on for the device type (asking for one it has no autocast for, ``meta``,
    raises)."""
    return torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)


_PLAIN = (torch.Tensor, torch.nn.Parameter)


def _fake(x: torch.Tensor) -> bool:
    """Whether ``x`` is a fake tensor (``FakeTensorMode``, a compiler's tracing): metadata without memory. A plain
    tensor is none (the test every eager call makes: a type check, not ``is_fake``'s 2 µs)."""
    if type(x) in _PLAIN:
        return False
    fake = sys.modules.get("torch._subclasses.fake_tensor")  # loaded wherever a fake tensor can exist
    return fake is not None and fake.is_fake(x)


def _memoryless(x: torch.Tensor) -> bool:
    return x.device.type == "meta" or _fake(x)


def _plain_forward(kernel: Any, logits: Array, aux: tuple[Array, ...], params: tuple[Array, ...],
                   wanted: tuple[Any, ...]) -> tuple[Array, tuple[Array, ...]]:
    if chunks.applies(kernel, logits, wanted):
        return chunks.forward(kernel, logits, aux, params, wanted)
    return kernel.forward(xp, logits, aux, params, wanted)


UNDER_COMPILED_TRANSFORMS = (
    "focal's PyTorch losses cannot be traced by torch.compile inside a torch.func transform (grad, vmap, jvp, "
    "jacrev, hessian): dynamo would inline the loss's forward and differentiate it in place of its analytic gradient "
    "(NaN at saturated float32 logits, half the gradient at a logit of 0). Call the transform outside torch.compile, "
    "or compile a step that calls loss.backward() / torch.autograd.grad")


def _refuse_a_compiled_transform() -> None:
    """Tracing a torch.func transform, dynamo sees no ``requires_grad`` and inlines an ``autograd.Function``'s
    forward, whose autodiff then replaces the analytic gradient (NaN at saturated float32 logits, half the gradient
    at a logit of exactly 0, no second derivative): an error instead (a graph break would not do: dynamo cannot
    resume inside a transform, and crashes on its wrapped tensors)."""
    raise NotImplementedError(UNDER_COMPILED_TRANSFORMS)


def _kept_by_a_compiled_backward(grad: Array, x: Array) -> Array:
    """``grad`` (the same values: a NaN input's gradient is NaN) read beside the whole of ``x`` in a caller's
    compiled backward, so that AOTAutograd saves ``x`` itself, which requires a gradient: a second backward through
    the compiled region then raises AOTAutograd's "does not currently support double backward" (as for PyTorch's own
    compiled ``F.cross_entropy``) instead of returning no gradient (a Hessian of zeros) from a backward that read
    saved residuals alone. Inductor fuses it into the gradient's loop (2 cores: +0.4% on 65536 x 80 sigmoid, +1.2%
    on 2 x 19 x 256 x 512 softmax, fwd+bwd)."""
    return torch.where(torch.isnan(x), x.to(grad.dtype), grad)


def _differentiating_transform() -> bool:
    """Whether forward-mode AD or a torch.func ``grad``/``jvp`` level is active (``vmap`` alone keeps autograd's
    ``requires_grad``, as plain autograd)."""
    if forward_ad._current_level >= 0:
        return True
    if not torch._C._are_functorch_transforms_active():
        return False
    return any(i.key() in _DIFFERENTIATING for i in torch._C._functorch.get_interpreter_stack() or ())


def _has_tangent(x: Array) -> bool:
    """Whether forward mode carries a tangent for ``x`` (``torch.func.jvp``, ``forward_ad``): a gradient of it is then
    asked for, though ``requires_grad`` says no."""
    return forward_ad._current_level >= 0 and forward_ad.unpack_dual(x).tangent is not None


def _differentiated(grad_out: Array) -> bool:
    """Whether this backward is itself differentiated: recorded (``create_graph=True``: a Hessian, a MAML inner
    step, a gradient penalty), or run under a torch.func transform that differentiates it (a ``grad`` or ``jvp``
    level other than the one running it: ``jacrev`` over ``jacrev``, ``torch.func.hessian``, ``grad`` of ``grad``).
    The saved residuals are constants to autodiff; only the kernel run again from its inputs carries the second
    derivative. ``torch.func.grad`` alone and ``vmap(grad)`` run their backward with grad mode on but record nothing
    of it: first order, the residuals."""
    if torch.compiler.is_compiling():
        return torch.is_grad_enabled()
    stack = torch._C._functorch.get_interpreter_stack()
    if stack:
        running = torch._C._functorch.maybe_get_level(grad_out)
        levels = [(i.key(), i.level()) for i in stack]
        if any(key in _DIFFERENTIATING and level != running for key, level in levels):
            return True
        if (_GRAD, running) in levels:  # torch.func.grad's own level: its autograd.grad always records
            return False
    return torch.is_grad_enabled() or forward_ad._current_level >= 0


_GRAD = torch._C._functorch.TransformType.Grad
_DIFFERENTIATING = (_GRAD, torch._C._functorch.TransformType.Jvp)


def _differentiable_vjp(kernel: Any, wanted: tuple[Any, ...], num_aux: int, inputs: tuple[Array, ...],
                        grad_out: Array) -> Any:
    """The kernel's VJP computed from its inputs with differentiable operations only: autodiff of the analytic
    gradient (as JAX differentiates the JVP rule), never of the loss's naive formula. Only where a graph is asked
    for: the first-order backward reads the saved residuals."""
    logits, aux, params = inputs[0], inputs[1:1 + num_aux], inputs[1 + num_aux:]
    with torch.enable_grad():
        _, residuals = kernel.forward(differentiable, logits, aux, params, wanted)
        return kernel.vjp(differentiable, residuals, grad_out, wanted)


def _transposed_vjp(kernel: Any, wanted: tuple[Any, ...], residuals: tuple[Array, ...], out_like: Any,
                    logits_tangent: Array | None, params_tangents: Sequence[Array | None]) -> Array:
    """``J·t`` from the kernel's VJP ``u ↦ Jᵀu``: the gradient of ``⟨Jᵀu, t⟩`` w.r.t. ``u`` (the VJP is linear in
    ``u``, so this is exact and any ``u`` serves: zeros)."""
    shape, dtype, device = out_like
    with torch.enable_grad():
        cotangent = torch.zeros(shape, dtype=dtype, device=device, requires_grad=True)
        grad, grads = kernel.vjp(xp, residuals, cotangent, wanted)
        pairs = [(g, t) for g, t in zip((grad, *grads), (logits_tangent, *params_tangents))
                 if g is not None and t is not None]
        if not pairs:
            return torch.zeros(shape, dtype=dtype, device=device)
        (out,) = torch.autograd.grad([g for g, _ in pairs], cotangent, [t.to(g.dtype) for g, t in pairs],
                                     allow_unused=True)
    return torch.zeros(shape, dtype=dtype, device=device) if out is None else out


def _keeps_graph() -> bool:
    """Whether this backward was asked to keep the graph (``retain_graph``): a private query of autograd's (as
    AOTAutograd uses it); where it is missing, assume so and never consume."""
    query = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if query is None else bool(query())


def _consumable(gradient: torch.Tensor, grad_out: torch.Tensor, ctx: Any) -> bool:
    """Whether the backward may take the cotangent's product in the saved gradient itself (one fresh array the size
    of the logits less, each step). Only where autograd frees the saved tensors after this call (no
    ``retain_graph``), no graph of the backward is recorded (no ``create_graph``), no torch.func transform batches
    either, the dtypes agree, and the gradient is an array of its own: not a view, not the memory of an input."""
    if (ctx.input_memory is None or _keeps_graph() or torch.is_grad_enabled() or wrapped(gradient)
            or wrapped(grad_out) or gradient.dtype != grad_out.dtype or gradient._base is not None
            or gradient.shape != ctx.logits_shape):
        return False
    return gradient.untyped_storage().data_ptr() not in ctx.input_memory


class _ApplyCompiledForward(_Apply):
    """The fused path: the forward (loss and residuals) compiled into one loop, the backward :class:`_Apply`'s
    (the cotangent's product taken in the saved gradient itself)."""

    @staticmethod
    def forward(kernel: Any, wanted: tuple[Any, ...], names: tuple[str, ...], num_aux: int, logits: Array,
                *arrays: Array) -> Any:
        out, residuals = fused.run("forward", kernel, wanted, logits, arrays[:num_aux], arrays[num_aux:])
        return (out, *residuals)


class _ApplyLinear(torch.autograd.Function):
    """A fused linear loss (``focal._linear``): with a summed output the forward's gradients, saved and scaled by
    the cotangent in the backward; with one loss per row the inputs, saved for the backward to run the chunks
    again."""

    @staticmethod
    def forward(kernel: Any, wanted: tuple[bool, bool, bool], hidden: Array, weight: Array, bias: Array | None,
                *aux: Array) -> Any:
        out, residuals = kernel.forward(xp, hidden, weight, bias, aux, wanted)
        return (out, *(r for r in residuals if r is not None))

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.kernel, ctx.wanted = inputs[0], inputs[1]
        ctx.has_bias = inputs[4] is not None
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(*inputs[2:4], *((inputs[4],) if ctx.has_bias else ()), *inputs[5:], *output[1:])
        ctx.num_aux = len(inputs) - 5
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: Any, grad_out: Array | None, *_grad_residuals: Array) -> Any:
        if grad_out is None:
            return (None,) * (5 + ctx.num_aux)
        saved = list(ctx.saved_tensors)
        hidden, weight = saved[0], saved[1]
        bias = saved[2] if ctx.has_bias else None
        start = 2 + ctx.has_bias
        aux, rest = tuple(saved[start:start + ctx.num_aux]), iter(saved[start + ctx.num_aux:])
        residuals = tuple(next(rest) if want else None for want in ctx.wanted) if ctx.kernel.reduce else ()
        if _differentiated(grad_out):
            # the saved gradients carry no graph: the loss again, through the unfused path's autodiff
            if torch._C._are_functorch_transforms_active():
                raise NotImplementedError(LINEAR_SECOND_ORDER)
            return (None, None, *_linear_gradients_with_graph(ctx.kernel, ctx.wanted, hidden, weight, bias, aux,
                                                              grad_out)) + (None,) * ctx.num_aux
        # the saved gradients are the forward's own arrays: scaled in place unless autograd keeps them for another
        # backward (retain_graph), records this one (create_graph), or a compiler traces it
        consume = not (torch.compiler.is_compiling() or _keeps_graph() or torch.is_grad_enabled()
                       or any(wrapped(r) for r in residuals if r is not None) or grad_out.dtype != hidden.dtype)
        grads = ctx.kernel.vjp(xp, (hidden, weight, bias, aux), residuals, grad_out, ctx.wanted, consume=consume)
        if torch.compiler.is_compiling():
            grads = tuple(g if g is None else _kept_by_a_compiled_backward(g, x)
                          for g, x in zip(grads, (hidden, weight, bias)))
        return (None, None, *grads) + (None,) * ctx.num_aux


def _linear_gradients_with_graph(kernel: Any, wanted: tuple[bool, ...], hidden: Array, weight: Array,
                                 bias: Array | None, aux: tuple[Array, ...], grad_out: Array) -> tuple[Any, ...]:
    """A fused linear loss's gradients for a recorded backward (``create_graph=True``), themselves recorded."""
    inputs = [x for x, want in zip((hidden, weight, bias), wanted) if want]
    with torch.enable_grad():
        value = kernel.value_through_autodiff(xp, hidden, weight, bias, aux)
        grads = iter(torch.autograd.grad(value, inputs, grad_out, create_graph=True))
    return tuple(next(grads) if want else None for want in wanted)


LINEAR_SECOND_ORDER = linear_second_order_message("PyTorch", "a torch.func transform over another")


class TorchBackend(Backend):
    name = "torch"

    def owns(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor)

    def device(self, x: Array) -> Any:
        return x.device  # not array_api_compat.device: its type checks are lru_cached, which dynamo warns of

    def result_dtype(self, logits: Array) -> Any:
        # torch.autocast runs losses in float32 and returns float32 (its own losses are on that list);
        # the gradient still reaches the half logits in their dtype
        if logits.dtype in (torch.float16, torch.bfloat16) and autocasting(logits.device.type):
            return torch.float32
        return logits.dtype

    def from_host(self, value: Any, dtype: Any, device: Any) -> Array:
        host = torch.as_tensor(value, dtype=dtype)
        if device is None or device.type == "cpu":
            return host
        # a blocking copy from the host's memory synchronises with the device (torch.cuda.set_sync_debug_mode
        # reports it); an asynchronous one from pageable memory is staged before it returns, so the host's array
        # may go at once
        return host.to(device, non_blocking=True)

    def extrema(self, x: Array) -> tuple[Array, Array]:
        return torch.aminmax(x)  # one pass over x, not two

    def is_concrete(self, x: Array) -> bool:
        if torch.compiler.is_compiling():
            return False
        # a torch.func transform's wrapper (vmap's batch, grad's or jvp's level) is read by no one, as under a compiler
        return not (wrapped(x) or _memoryless(x))

    def on_host(self, x: Array) -> bool:
        return x.device.type == "cpu"

    def compiles_kernel(self, logits: Array) -> bool:
        return fused.wanted(logits)

    def no_gradient(self, name: str, x: Array) -> Array:
        if x.requires_grad and torch.is_grad_enabled():
            raise TypeError(no_gradient_message(name))
        return x

    def apply(self, kernel: Any, logits: Array, aux: Sequence[Array], params: Sequence[Array],
              slots: Sequence[Any]) -> Array:
        aux, params = tuple(aux), tuple(params)
        recording = torch.is_grad_enabled()
        if torch.compiler.is_compiling() and torch._C._are_functorch_transforms_active():
            _refuse_a_compiled_transform()
        # a torch.func transform that differentiates, or forward-mode AD: whether a tangent or a gradient is asked for
        # is not known here
        transformed = _differentiating_transform()
        wanted = wanted_slots(slots, ((recording and p.requires_grad) or (transformed and _has_tangent(p))
                                      for p in params))
        compiled = not transformed and fused.wanted(logits)
        if not compiled:
            fused.ran_plain(logits)
        if not (transformed or (recording and logits.requires_grad) or any(wanted)):
            # no gradient wanted: no autograd.Function (less overhead, and dynamo then never
            # meets it without a gradient, where it mistakes the function's ctx for its first argument)
            if compiled:
                return fused.run("value", kernel, wanted, logits, aux, params)
            if chunks.applies(kernel, logits, wanted):
                return chunks.forward(kernel, logits, aux, params, wanted, loss_only=True)[0]
            return value_of(kernel, xp, logits, aux, params)
        apply = (_ApplyForwardMode if transformed else _ApplyCompiledForward if compiled else _Apply).apply
        return apply(kernel, wanted, tuple(slot.name for slot in slots), len(aux), logits, *aux, *params)[0]

    def apply_linear(self, kernel: Any, hidden: Array, weight: Array, bias: Array | None,
                     aux: tuple[Array, ...]) -> Array:
        recording = torch.is_grad_enabled()
        wanted = (recording and hidden.requires_grad, recording and weight.requires_grad,
                  bias is not None and recording and bias.requires_grad)
        if not any(wanted):
            return kernel.value(xp, hidden, weight, bias, aux)
        return _ApplyLinear.apply(kernel, wanted, hidden, weight, bias, *aux)[0]

    def quiet(self) -> Any:
        return None  # no floating-point warnings to silence

    def stop_gradient(self, x: Array) -> Array:
        return x.detach()


BACKEND = TorchBackend(xp)
