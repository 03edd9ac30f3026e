"""PyTorch's backward takes the cotangent's product in the saved gradient itself where autograd frees it after
(focal/backends/torch.py, ``_consumable``): never where the graph is kept or recorded, never in an input's memory."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close

import focal

torch = pytest.importorskip("torch")
from focal.backends import _torch_fused as fused  # noqa: E402
from focal.backends import torch as torch_backend  # noqa: E402

RNG = np.random.default_rng(23)
LOGITS = RNG.normal(size=(6, 5, 4)) * 3.0
LABELS = RNG.integers(0, 5, size=(6, 4))
BINARY = (RNG.random((6, 5, 4)) < 0.3).astype(np.float64)
CASES = [
    ("softmax", focal.softmax_focal_loss, LABELS, {"axis": 1}),
    ("sigmoid", focal.sigmoid_focal_loss, BINARY, {}),
]


@pytest.fixture
def consumed(monkeypatch):
    """The plain path, and a list of what each backward decided."""
    monkeypatch.setattr(fused, "_enabled", False)
    decisions: list[bool] = []
    real = torch_backend._consumable
    monkeypatch.setattr(torch_backend, "_consumable", lambda *a: decisions.append(real(*a)) or decisions[-1])
    return decisions


def _expected(fn, targets, params):
    return focal.value_and_grad(fn)(LOGITS, targets, **params)


@pytest.mark.parametrize("name,fn,targets,params", CASES, ids=[c[0] for c in CASES])
def test_a_plain_backward_consumes_and_leaves_the_inputs_alone(consumed, name, fn, targets, params):
    x, t = torch.as_tensor(LOGITS).requires_grad_(True), torch.as_tensor(targets)
    fn(x, t, **params).backward()
    assert consumed == [True]
    _, grad = _expected(fn, targets, params)
    assert_close(x.grad.numpy(), grad, 1e-12, f"{name} gradient")
    np.testing.assert_array_equal(x.detach().numpy(), LOGITS)
    np.testing.assert_array_equal(t.numpy(), targets)


@pytest.mark.parametrize("name,fn,targets,params", CASES, ids=[c[0] for c in CASES])
def test_retain_graph_backward_twice_gives_the_same_gradient(consumed, name, fn, targets, params):
    x, t = torch.as_tensor(LOGITS).requires_grad_(True), torch.as_tensor(targets)
    value = fn(x, t, **params)
    (first,) = torch.autograd.grad(value, x, retain_graph=True)
    (second,) = torch.autograd.grad(value, x)
    assert consumed == [False, True]
    _, grad = _expected(fn, targets, params)
    assert_close(first.numpy(), grad, 1e-12, f"{name} first gradient")
    assert_close(second.numpy(), grad, 1e-12, f"{name} second gradient")


@pytest.mark.parametrize("name,fn,targets,params", CASES, ids=[c[0] for c in CASES])
def test_create_graph_runs_the_kernel_again_from_the_inputs(consumed, name, fn, targets, params):
    """With ``create_graph`` the backward is recorded: it runs the kernel again from the saved inputs (the gradient's
    graph: tests/test_torch_second_order.py), consumes nothing and leaves the inputs alone."""
    x, t = torch.as_tensor(LOGITS).requires_grad_(True), torch.as_tensor(targets)
    (grad,) = torch.autograd.grad(fn(x, t, **params), x, create_graph=True)
    assert consumed == [] and grad.requires_grad
    np.testing.assert_array_equal(x.detach().numpy(), LOGITS)
    _, expected = _expected(fn, targets, params)
    assert_close(grad.detach().numpy(), expected, 1e-12, f"{name} gradient")
