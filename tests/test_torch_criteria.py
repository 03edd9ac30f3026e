"""``focal.torch``: one nn.Module per loss, the same numbers as the functional API."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import run_script

import focal

torch = pytest.importorskip("torch")
import focal.torch as ft  # noqa: E402

RNG = np.random.default_rng(17)
X = torch.as_tensor(RNG.normal(size=(4, 3, 5)) * 2)  # (N, C, d)
LABELS = torch.as_tensor(RNG.integers(0, 3, size=(4, 5)))
BINARY = torch.as_tensor((RNG.random((4, 3, 5)) > 0.6).astype(np.float64))

CRITERIA = [
    (ft.SoftmaxFocalLoss, focal.softmax_focal_loss, LABELS, {"gamma": 0.5, "alpha": [0.2, 1.0, 2.3]}),
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


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bfloat16", "float16"])
def test_autocast_gives_a_float32_loss_and_the_float32_gradient(dtype):
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 4)
    x, labels = torch.randn(64, 6), torch.randint(0, 4, (64,))
    criterion = ft.SoftmaxFocalLoss(gamma=2.0, alpha=[0.25, 0.5, 1.0, 2.0])
    with torch.autocast("cpu", dtype=dtype):
        logits = model(x)
        loss = criterion(logits, labels)
    assert logits.dtype == dtype and loss.dtype == torch.float32
    loss.backward()
    amp_grad = model.weight.grad.clone()
    model.zero_grad()
    logits = model(x)
    expected, dlogits = focal.value_and_grad(focal.softmax_focal_loss)(
        logits.detach().double(), labels, gamma=2.0, alpha=[0.25, 0.5, 1.0, 2.0], axis=1)
    expected_grad = dlogits.float().T @ x
    assert torch.isfinite(amp_grad).all()
    # the logits themselves were rounded to `dtype`: a few units of its precision apart
    np.testing.assert_allclose(float(loss.detach()), float(expected), rtol=2e-2)
    np.testing.assert_allclose(amp_grad.numpy(), expected_grad.numpy(), rtol=0.05,
                               atol=0.02 * float(expected_grad.abs().max()))


def test_distributed_data_parallel_gradients_equal_one_process():
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch built without gloo")
    runs = run_script("torch_ddp.py")
    for name in ("softmax", "retinanet"):  # retinanet: the global number of positives, all-reduced
        run = runs[name]
        assert run["grad_norm"] > 0.1, name
        assert run["max_grad_difference"] < 1e-12 * run["grad_norm"] * 100, name
        assert run["mean_of_rank_losses"] == pytest.approx(run["full_loss"], rel=1e-12), name
    # each process dividing by its own count (3 and 1 positives) is far off: the check above can fail
    unsynced = runs["retinanet-unsynced"]
    assert unsynced["max_grad_difference"] > 0.05 * unsynced["grad_norm"]


def test_torch_func_grad_and_vmap_over_a_criterion():
    from torch.func import grad, vmap

    criterion = ft.SoftmaxFocalLoss(gamma=2.0, alpha=[0.2, 0.3, 0.5])
    x, labels = X[:, :, 0], LABELS[:, 0]  # (N, C) logits
    _, expected = focal.value_and_grad(focal.softmax_focal_loss)(x, labels, gamma=2.0, alpha=[0.2, 0.3, 0.5], axis=1)
    np.testing.assert_allclose(grad(lambda v: criterion(v, labels))(x).numpy(), expected.numpy(), rtol=1e-12)
    per_example = vmap(lambda v, t: criterion(v[None], t[None]))(x, labels)
    expected = focal.softmax_focal_loss(x, labels, gamma=2.0, alpha=[0.2, 0.3, 0.5], axis=1, reduction="none")
    np.testing.assert_allclose(per_example.numpy(), expected.numpy(), rtol=1e-12)


def test_num_positives_normalizer_counts_the_positive_targets():
    x = torch.randn(6, 3, dtype=torch.float64)
    targets = torch.zeros(6, 3, dtype=torch.float64)
    targets[[0, 2, 5], [1, 1, 0]] = 1.0
    criterion = ft.SigmoidFocalLoss(reduction="sum", normalizer="num_positives", sync=True)  # no group: local
    expected = focal.sigmoid_focal_loss(x.numpy(), targets.numpy(), reduction="sum") / 3.0
    assert float(criterion(x, targets)) == pytest.approx(float(expected), rel=1e-12)
    assert float(criterion(x, torch.zeros_like(targets))) == pytest.approx(
        float(focal.sigmoid_focal_loss(x.numpy(), np.zeros((6, 3)), reduction="sum")), rel=1e-12)  # at least 1
    assert "normalizer='num_positives', sync=True" in repr(criterion)
    with pytest.raises(ValueError, match="normalizer.*'num_positives'.*'count'"):
        ft.SigmoidFocalLoss(normalizer="count")
    with pytest.raises(TypeError, match="num_positives.*int64"):
        ft.SoftmaxFocalLoss(normalizer="num_positives")(x, torch.tensor([0, 1, 2, 0, 1, 2]))
