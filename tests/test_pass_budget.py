"""A deterministic guard on speed: the full-size array operations that one forward and backward dispatches on the plain
PyTorch path (no compiler), counted with a dispatch hook. Each is a pass over memory; a change that adds one fails
here, a change that removes one lowers the budget. (Times are the benchmarks' business, never a test's.)"""

from __future__ import annotations

import collections

import numpy as np
import pytest

import focal

torch = pytest.importorskip("torch")
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from focal.backends import _torch_fused as fused  # noqa: E402

RNG = np.random.default_rng(41)


class FullSizeOps(TorchDispatchMode):
    """Counts the operators whose result has at least ``size`` elements."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size, self.ops = size, collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        results = out if isinstance(out, (tuple, list)) else (out,)
        if any(isinstance(r, torch.Tensor) and r.numel() >= self.size for r in results):
            self.ops[str(func)] += 1
        return out


def full_size_ops(loss, logits: np.ndarray, targets: np.ndarray, **params) -> collections.Counter:
    x = torch.as_tensor(logits, dtype=torch.float32).requires_grad_(True)
    t = torch.as_tensor(targets)
    with FullSizeOps(x.numel()) as counter:
        value = loss(x, t, **params)
        torch.autograd.grad(value, x)
    return counter.ops


# (loss, logits shape, targets, params, budgets): the counts at 0.2.0 were 36, 56 and 13 operations, with 2, 6 and 5
# wheres. The budgets: operations in all; fresh full-size arrays (each one faults its memory in on the CPU, three
# times the cost of an update in place); wheres (on PyTorch's CPU, one costs ten multiplications)
ANCHORS = (256, 80)
SEGMENTATION = (2, 19, 16, 32)
BUDGETS = [
    ("sigmoid gamma=2", focal.sigmoid_focal_loss, ANCHORS, "binary", {"reduction": "sum"}, (31, 20, 0)),
    ("sigmoid gamma=0.5", focal.sigmoid_focal_loss, ANCHORS, "binary", {"gamma": 0.5, "reduction": "sum"},
     (35, 25, 0)),
    ("softmax labels axis=1", focal.softmax_focal_loss, SEGMENTATION, "labels", {"axis": 1, "reduction": "sum"},
     (6, 3, 0)),
]
VIEWS = {"aten.expand.default", "aten.view.default", "aten.unsqueeze.default", "aten.squeeze.dim"}


@pytest.mark.parametrize(("name", "loss", "shape", "kind", "params", "budgets"), BUDGETS, ids=[b[0] for b in BUDGETS])
def test_plain_path_passes_within_budget(monkeypatch, name, loss, shape, kind, params, budgets):
    monkeypatch.setattr(fused, "_enabled", False)  # the plain path, as without a compiler
    logits = RNG.normal(size=shape)
    if kind == "binary":
        targets = (RNG.random(shape) < 0.05).astype(np.float32)
    else:
        targets = RNG.integers(0, shape[1], size=(shape[0], *shape[2:]))
    ops = full_size_ops(loss, logits, targets, **params)
    fresh = sum(n for op, n in ops.items() if op not in VIEWS and not op.split(".")[1].endswith("_"))
    wheres = ops["aten.where.self"]
    counts = (sum(ops.values()), fresh, wheres)
    assert all(c <= b for c, b in zip(counts, budgets)), f"{name}: (operations, fresh arrays, wheres) {counts}, " \
                                                          f"budget {budgets}: {ops}"


def test_the_counter_counts_what_torch_dispatches():
    """The hook itself: ``x * y + x`` over full-size arrays is two operations; a reduction's scalar is not one."""
    x = torch.ones(64, 8, requires_grad=True)
    with FullSizeOps(x.numel()) as counter:
        value = (x * x + x).sum()
    assert sum(counter.ops.values()) == 2 and float(value.detach()) == 1024.0
