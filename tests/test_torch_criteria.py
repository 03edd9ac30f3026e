"""``focal.torch``: one nn.Module per loss, the same numbers as the functional API."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import focal

torch = pytest.importorskip("torch")
import focal.torch as ft  # noqa: E402

RNG = np.random.default_rng(17)
X = torch.as_tensor(RNG.normal(size=(4, 3, 5)) * 2)  # (N, C, d)
LABELS = torch.as_tensor(RNG.integers(0, 3, size=(4, 5)))
BINARY = torch.as_tensor((RNG.random((4, 3, 5)) > 0.6).astype(np.float64))

CRITERIA = [
    (ft.SoftmaxFocalLoss, focal.softmax_focal_loss, LABELS, {"gamma": 0.5, "alpha": [0.25, 1.0, 2.0]}),
    (ft.SigmoidFocalLoss, focal.sigmoid_focal_loss, BINARY, {"alpha": None}),
    (ft.FocalLossWithNegatives, focal.focal_loss_with_negatives, LABELS, {"activation": "sigmoid"}),
    (ft.Poly1CrossEntropy, focal.poly1_cross_entropy, LABELS, {"epsilon": 2.0, "ignore_index": 1}),
    (ft.FocalTverskyLoss, focal.focal_tversky_loss, LABELS, {}),
    (ft.AsymmetricLoss, focal.asymmetric_loss, BINARY, {}),
]


@pytest.mark.parametrize("cls,fn,target,params", CRITERIA, ids=[c[0].__name__ for c in CRITERIA])
def test_criterion_equals_functional_with_class_axis_1(cls, fn, target, params):
    criterion = cls(**params)
    expected_params = {**params, "axis": 1} if "axis" in cls.__init__.__signature__.parameters else params
    x = X.clone().requires_grad_(True)
    criterion(x, target).backward()
    value, grad = focal.value_and_grad(fn)(X, target, **expected_params)
    np.testing.assert_allclose(float(criterion(X, target)), float(value), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), grad.numpy(), rtol=1e-10, atol=1e-15)


def test_vectors_are_buffers_state_dict_and_deepcopy():
    criterion = ft.SoftmaxFocalLoss(alpha=[0.25, 1.0, 2.0], gamma=[1.0, 2.0, 0.5])
    assert set(criterion.state_dict()) == {"alpha", "gamma"}
    clone = copy.deepcopy(criterion)
    np.testing.assert_array_equal(clone.alpha.numpy(), [0.25, 1.0, 2.0])
    assert float(clone(X, LABELS)) == float(criterion(X, LABELS))
    other = ft.SoftmaxFocalLoss(alpha=[1.0, 1.0, 1.0], gamma=[0.0, 0.0, 0.0])
    other.load_state_dict(criterion.state_dict())
    assert float(other(X, LABELS)) == float(criterion(X, LABELS))
    assert "axis=1" in repr(criterion)


def test_unknown_parameter_and_bad_value_name_the_argument():
    with pytest.raises(TypeError, match="unexpected parameters.*'gama'"):
        ft.SoftmaxFocalLoss(gama=2.0)
    with pytest.raises(ValueError, match="gamma"):
        ft.SoftmaxFocalLoss(gamma=-1.0)(X, LABELS)


def test_per_call_weight_and_normalizer():
    criterion = ft.SigmoidFocalLoss()
    value = criterion(X, BINARY, normalizer=torch.as_tensor(7.0), weight=2.0)
    expected = focal.sigmoid_focal_loss(X, BINARY, normalizer=7.0, weight=2.0)
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-12)


def test_compile_fullgraph_module():
    criterion = ft.SoftmaxFocalLoss(gamma=2.0)
    torch._dynamo.reset()
    compiled = torch.compile(criterion, fullgraph=True)
    x = X.clone().requires_grad_(True)
    compiled(x, LABELS).backward()
    _, grad = focal.value_and_grad(focal.softmax_focal_loss)(X, LABELS, axis=1)
    np.testing.assert_allclose(x.grad.numpy(), grad.numpy(), rtol=1e-10, atol=1e-15)
