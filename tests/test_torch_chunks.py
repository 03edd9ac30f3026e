"""PyTorch's plain path runs a large elementwise kernel on slices of rows (focal/backends/_torch_chunks.py): each
element's loss and gradient must be the unsliced kernel's to the last bit, whatever broadcasts beside the logits."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close

import focal

torch = pytest.importorskip("torch")
from focal.backends import _torch_chunks as chunks  # noqa: E402
from focal.backends import _torch_fused as fused  # noqa: E402

RNG = np.random.default_rng(17)
SHAPE = (37, 11)  # with 40 elements a slice: 3 rows each, the last slice 1 row
LOGITS = RNG.normal(size=SHAPE) * 3.0
BINARY = (RNG.random(SHAPE) < 0.2).astype(np.float64)
IGNORED = np.where(RNG.random(SHAPE) < 0.1, -100.0, BINARY)
CASES = [
    ("gamma=2", BINARY, {}),
    ("gamma=0.5 alpha", BINARY, {"gamma": 0.5, "alpha": 0.25}),
    ("weight per element", BINARY, {"weight": RNG.random(SHAPE)}),
    ("weight per class", BINARY, {"weight": RNG.random(SHAPE[1])}),
    ("pos_weight", BINARY, {"pos_weight": RNG.random(SHAPE[1]) * 3.0}),
    ("ignore_index", IGNORED, {"ignore_index": -100}),
]


def _run(targets, params, reduction, chunk, monkeypatch):
    monkeypatch.setattr(fused, "_enabled", False)
    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", chunk)
    sliced = []
    real = chunks.forward
    monkeypatch.setattr(chunks, "forward", lambda *a: sliced.append(1) or real(*a))
    x = torch.as_tensor(LOGITS).requires_grad_(True)
    tensors = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in params.items()}
    value = focal.sigmoid_focal_loss(x, torch.as_tensor(targets), reduction=reduction, **tensors)
    (grad,) = torch.autograd.grad(value.sum(), x)
    return value.detach().numpy(), grad.numpy(), bool(sliced)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("name,targets,params", CASES, ids=[c[0] for c in CASES])
def test_sliced_equals_whole(monkeypatch, name, targets, params, reduction):
    whole_value, whole_grad, sliced = _run(targets, params, reduction, 10**9, monkeypatch)
    assert not sliced
    value, grad, sliced = _run(targets, params, reduction, 40, monkeypatch)
    assert sliced, "the large input was not sliced"
    # to the last bits but for torch's own kernels: their vectorised body and scalar tail round exp an ulp apart on
    # some CPUs (an AMD EPYC with AVX2: 1 element of 407 in the last slice), so within a few ulps
    assert_close(grad, whole_grad, 2e-15, f"{name} {reduction} gradient")
    if reduction == "none":
        assert_close(value, whole_value, 2e-15, f"{name} {reduction}")
    else:  # the slices' sums, added: another order of summation
        assert_close(value, whole_value, 1e-13, f"{name} {reduction}")
    expected, expected_grad = focal.value_and_grad(focal.sigmoid_focal_loss)(LOGITS, targets, reduction=reduction,
                                                                             **params)
    assert_close(value, expected, 1e-12, "value against value_and_grad")
    if reduction != "none":  # value_and_grad's gradient is of the reduced loss
        assert_close(grad, expected_grad, 1e-12, "gradient against value_and_grad")


def test_not_sliced_where_a_hyperparameter_gradient_is_wanted(monkeypatch):
    """The partials of a hyperparameter may broadcast: the kernel runs whole, and the gradient still reaches it."""
    monkeypatch.setattr(fused, "_enabled", False)
    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", 40)
    sliced = []
    real = chunks.forward
    monkeypatch.setattr(chunks, "forward", lambda *a: sliced.append(1) or real(*a))
    gamma = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    value = focal.sigmoid_focal_loss(torch.as_tensor(LOGITS), torch.as_tensor(BINARY), gamma=gamma)
    (d_gamma,) = torch.autograd.grad(value, gamma)
    assert not sliced
    h = 1e-6
    numeric = (focal.sigmoid_focal_loss(LOGITS, BINARY, gamma=1.5 + h)
               - focal.sigmoid_focal_loss(LOGITS, BINARY, gamma=1.5 - h)) / (2 * h)
    assert_close(d_gamma.numpy(), numeric, 1e-6, "d/dgamma")
