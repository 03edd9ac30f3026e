"""A CPU's stand-ins for a GPU, for tests/test_devices.py: PyTorch's ``meta`` device and a fake ``cuda:0``
(``FakeTensorMode``), a record of what a call reads back or makes on another device, and a backward that runs in
this thread (the autograd engine runs a ``cuda`` backward on a device thread, which needs a real GPU).

On ``meta`` and the fake ``cuda:0`` a read of a value raises, as a mix of devices does; :class:`Watch` also names
each one (and each array made on a device other than the logits'), so that a new array made without the logits'
device, or a new host read, fails a test the day it is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils import _pytree
from torch.utils._python_dispatch import TorchDispatchMode

# what makes the host wait for the device: an op whose output depends on the values (tags) and the ops that
# read a value or a shape that depends on the values
_READS = {"aten._local_scalar_dense", "aten.is_nonzero", "aten.item", "aten.nonzero", "aten.equal",
          "aten.masked_select", "aten.unique", "aten._unique2", "aten.unique_consecutive"}


def reads_back(func: Any) -> bool:
    tags = getattr(func, "tags", ())
    name = str(func.overloadpacket) if hasattr(func, "overloadpacket") else str(func)
    return (torch.Tag.data_dependent_output in tags or torch.Tag.dynamic_output_shape in tags
            or name in _READS)


# the operations that bring host data in: their CPU arrays may only be copied to the device (prim.* ones read
# metadata: a tensor's device)
_HOST_DATA = {"aten.lift_fresh", "aten.lift_fresh_copy", "aten.lift"}
_COPIES = {"aten._to_copy", "aten.copy_", "aten.to", "aten._copy_from"}


def _name(func: Any) -> str:
    return str(func.overloadpacket) if hasattr(func, "overloadpacket") else str(func)


class Watch(TorchDispatchMode):
    """Records every operation that reads a value back (``reads``), every array made on (or read from) a device of
    another type than ``device``'s (``elsewhere``), and every copy of host data to the device (``copies``: whether it
    is asynchronous), so that :meth:`assert_clean` can say which."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.device_type = torch.device(device).type
        self.reads: list[str] = []
        self.elsewhere: list[str] = []
        self.copies: list[tuple[str, bool]] = []

    def _other(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor) and x.device.type != self.device_type

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = _name(func)
        if reads_back(func):
            self.reads.append(str(func))
        out = func(*args, **kwargs)
        outputs = [leaf for leaf in _pytree.tree_leaves(out) if isinstance(leaf, torch.Tensor)]
        inputs = [leaf for leaf in _pytree.tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor)]
        if name in _COPIES and any(map(self._other, inputs)) and not any(map(self._other, outputs)):
            self.copies.append((str(func), bool(kwargs.get("non_blocking", False))))
        elif name not in _HOST_DATA and not name.startswith("prim.") and any(map(self._other, inputs + outputs)):
            where = sorted({str(t.device) for t in inputs + outputs if self._other(t)})
            self.elsewhere.append(f"{func} on {', '.join(where)}")
        return out

    def assert_clean(self) -> None:
        assert not self.reads, f"host reads: {self.reads}"
        assert not self.elsewhere, f"arrays on another device: {self.elsewhere}"
        blocking = [op for op, asynchronous in self.copies if not asynchronous]
        assert not blocking, f"copies to the device that wait for it: {blocking}"


@contextlib.contextmanager
def on(device: str) -> Iterator[None]:
    """``"meta"`` as it is, or ``"cuda"`` faked: a ``FakeTensorMode``, whose tensors must be made inside the block."""
    if device == "meta":
        yield
        return
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        yield


def tensor(a: Any, device: str, **kwargs: Any) -> torch.Tensor:
    """``a`` (NumPy) as a tensor on ``device`` (inside :func:`on` for the fake ``cuda``)."""
    return torch.as_tensor(a, **kwargs).to(device)


def _raw_outputs(node: Any, grads: Sequence[Any]) -> tuple[Any, ...]:
    """A node's gradients for its inputs, in the order of ``node.next_functions``."""
    forward = getattr(node, "_forward_cls", None)
    if forward is None:  # a built-in node is callable
        out = node(*grads)
        return out if isinstance(out, tuple) else (out,)
    # an autograd.Function's backward returns one gradient per forward input, tensors or not: the tests' Functions
    # are focal's, whose inputs that are not tensors come first (kernel, wanted, names, num_aux) but for a fused linear
    # loss's bias of None, after hidden and weight
    raw = tuple(node.apply(*grads))
    extra = len(raw) - len(node.next_functions)
    if forward.__name__ == "_ApplyLinear" and extra == 3:  # (kernel, wanted, hidden, weight, None, *aux)
        return raw[2:4] + raw[5:]
    return raw[extra:]


def backward_here(loss: torch.Tensor, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
    """``torch.autograd.grad(loss, inputs)`` for a scalar ``loss``, each node's backward called in this thread (where
    a fake ``cuda`` tensor's backward can run: the engine's device thread cannot start without a GPU)."""
    order: list[Any] = []
    seen: set[Any] = set()

    def visit(node: Any) -> None:  # a depth-first order, reversed below: each node after every node feeding it
        stack = [(node, False)]
        while stack:
            current, done = stack.pop()
            if done:
                order.append(current)
                continue
            if current is None or current in seen:
                continue
            seen.add(current)
            stack.append((current, True))
            stack.extend((nxt, False) for nxt, _ in current.next_functions)

    visit(loss.grad_fn)
    with torch.no_grad():  # as the engine runs a backward that records no graph (no create_graph)
        return _run_nodes(order, loss, inputs)


def _run_nodes(order: list[Any], loss: torch.Tensor, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
    pending: dict[Any, dict[int, torch.Tensor]] = {loss.grad_fn: {0: torch.ones_like(loss)}}
    leaves: dict[int, torch.Tensor] = {}
    for node in reversed(order):
        incoming = pending.pop(node, None)
        if not incoming:
            continue
        if type(node).__name__ == "AccumulateGrad":
            leaves[id(node.variable)] = incoming[0]
            continue
        grads = [incoming.get(i) for i in range(max(incoming) + 1)]
        for (nxt, slot), grad in zip(node.next_functions, _raw_outputs(node, grads)):
            if nxt is None or grad is None:
                continue
            held = pending.setdefault(nxt, {})
            held[slot] = grad if slot not in held else held[slot] + grad
    return [leaves.get(id(x)) for x in inputs]


def gradients(loss: torch.Tensor, inputs: Sequence[torch.Tensor], device: str) -> list[torch.Tensor | None]:
    """The gradients of a scalar ``loss`` w.r.t. ``inputs``: autograd's on ``meta`` (its engine runs it on the CPU's
    thread), :func:`backward_here` on the fake ``cuda``."""
    if not inputs:
        return []
    return list(torch.autograd.grad(loss, inputs)) if device == "meta" else backward_here(loss, inputs)
