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


# where values are not read (an accelerator's default): the float targets' NaN marking (two comparisons, an or, a
# where: four passes), integer labels marked by the kernel as they are read (none)
UNREAD_BUDGETS = [
    ("sigmoid gamma=2", focal.sigmoid_focal_loss, ANCHORS, "binary", {"reduction": "sum"}, (35, 23, 1)),
    ("softmax labels axis=1", focal.softmax_focal_loss, SEGMENTATION, "labels", {"axis": 1, "reduction": "sum"},
     (6, 3, 0)),
]
RUNS = [pytest.param(*b, "auto", id=b[0]) for b in BUDGETS] + [
    pytest.param(*b, "nan", id=f"{b[0]}, nothing read") for b in UNREAD_BUDGETS]


@pytest.mark.parametrize(("name", "loss", "shape", "kind", "params", "budgets", "checks"), RUNS)
def test_plain_path_passes_within_budget(monkeypatch, name, loss, shape, kind, params, budgets, checks):
    monkeypatch.setattr(fused, "_enabled", False)  # the plain path, as without a compiler
    monkeypatch.setattr(focal._value_checks._State, "mode", checks)
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


# --- every case of the benchmark matrix (python -m focal bench --matrix): its loss and option, on its data -------

def _matrix_case_ops(case, grad: bool) -> tuple[collections.Counter, float]:
    from focal.commands import matrix_cases as mc
    from focal.commands import matrix_frameworks as mf

    torch_mode = mf.Torch("torch eager")
    x, d = torch_mode.convert(mc.make(case, scale=0.002, channels_first=True))
    loss = mf.ours(case, torch_mode.axis)
    x = x.double().requires_grad_(grad)
    d = {k: v.double() if v.is_floating_point() else v for k, v in d.items()}
    with FullSizeOps(x.numel()) as counter:
        value = loss(x, d)
        if grad:
            torch.autograd.grad(value, x)
    return counter.ops, float(value.detach())


def _counts(ops: collections.Counter) -> tuple[int, int, int]:
    fresh = sum(n for op, n in ops.items() if op not in VIEWS and not op.split(".")[1].endswith("_"))
    return sum(ops.values()), fresh, ops["aten.where.self"]


# (operations, fresh arrays, wheres) of one forward+backward, then of the loss alone (no gradient wanted), per case:
# the counts at the commit that wrote them (issue 21); a change may lower them, never raise them
MATRIX_BUDGETS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "sigmoid_focal_loss": ((31, 19, 0), (20, 15, 0)),
    "sigmoid γ=0.5": ((35, 25, 0), (23, 18, 0)),
    "sigmoid per-class γ": ((35, 25, 0), (23, 18, 0)),
    "sigmoid form=split": ((35, 34, 0), (22, 22, 0)),
    "sigmoid label_smoothing=0.1": ((33, 21, 0), (22, 17, 0)),
    "sigmoid ignore_index=-1": ((35, 23, 3), (23, 18, 2)),
    "sigmoid from_logits=False": ((43, 30, 1), (25, 20, 0)),
    "sigmoid pos_weight": ((39, 27, 0), (26, 21, 0)),
    # the factor held constant: its derivative never computed (fewer passes than the default's)
    "sigmoid detach_modulator": ((24, 16, 0), (20, 15, 0)),
    "quality_focal_loss": ((34, 33, 0), (23, 23, 0)),
    "varifocal_loss": ((34, 33, 2), (21, 21, 1)),
    "varifocal detach_modulator": ((31, 30, 2), (21, 21, 1)),
    "asymmetric_loss": ((56, 55, 4), (32, 32, 1)),
    "asymmetric detach_modulator": ((38, 37, 1), (32, 32, 1)),
    "poly1_focal_loss": ((37, 25, 0), (23, 18, 0)),
    "focal_loss_star": ((19, 18, 0), (15, 15, 0)),
    "hard_truncated_loss": ((27, 26, 2), (21, 21, 1)),
    "soft_truncated_loss": ((42, 41, 0), (26, 26, 0)),
    "focal_loss_with_negatives sigmoid": ((35, 34, 0), (22, 22, 0)),
    "softmax_focal_loss": ((5, 1, 0), (2, 1, 0)),
    "softmax per-class α": ((5, 2, 0), (2, 1, 0)),
    "softmax per-class γ": ((5, 2, 0), (2, 1, 0)),
    "softmax ignore_index=255": ((6, 2, 1), (2, 1, 0)),
    "softmax label_smoothing=0.1": ((32, 30, 4), (19, 18, 3)),
    "softmax probability targets": ((30, 28, 3), (17, 16, 2)),
    "softmax where (class mask)": ((9, 4, 3), (4, 2, 1)),
    "softmax normalized": ((9, 6, 0), (6, 3, 0)),
    "softmax detach_modulator": ((5, 1, 0), (2, 1, 0)),
    "softmax from_logits=False": ((12, 7, 1), (4, 3, 0)),
    "poly1_cross_entropy": ((5, 1, 0), (2, 1, 0)),
    # a term for every class (its smoothing's share), labels kept as labels: fewer than label_smoothing's dense path
    "softmax_asymmetric_loss": ((26, 21, 1), (16, 14, 1)),
    "focal_loss_with_negatives": ((43, 35, 8), (22, 20, 4)),
    "hard_truncated_loss softmax": ((5, 1, 0), (2, 1, 0)),
    "soft_truncated_loss softmax": ((5, 1, 0), (2, 1, 0)),
    "focal_tversky_loss": ((27, 25, 1), (23, 21, 1)),
    "distribution_focal_loss": ((9, 4, 0), (5, 4, 0)),
}


def _matrix_cases():
    from focal.commands.matrix_cases import CASES

    return CASES


@pytest.mark.parametrize("case", _matrix_cases(), ids=lambda c: c.name)
def test_every_kernel_passes_within_budget(monkeypatch, case):
    """Every loss and main option of the matrix on the plain PyTorch path: its full-size operations within a written
    budget, and the loss alone (``torch.no_grad``-like: no gradient wanted) fewer than with its gradient, and the
    same loss."""
    monkeypatch.setattr(fused, "_enabled", False)
    (with_grad, value), (without, alone_value) = _matrix_case_ops(case, True), _matrix_case_ops(case, False)
    # the loss alone is a second code path (kernels' value): it gives the same loss, float64
    assert alone_value == pytest.approx(value, rel=1e-12), f"{case.name}: the loss alone {alone_value}, {value}"
    both, alone = _counts(with_grad), _counts(without)
    assert case.name in MATRIX_BUDGETS, f"{case.name}: no budget written; counts {both}, {alone}"
    budget_both, budget_alone = MATRIX_BUDGETS[case.name]
    assert all(c <= b for c, b in zip(both, budget_both)), f"{case.name}: forward+backward {both} > {budget_both}"
    assert all(c <= b for c, b in zip(alone, budget_alone)), f"{case.name}: loss alone {alone} > {budget_alone}"
    assert alone[0] < both[0], f"{case.name}: the loss alone costs {alone[0]} operations, with its gradient {both[0]}"
