"""Second derivatives and ``torch.func`` in PyTorch, every loss: a double backward (``create_graph=True``:
``torch.autograd.functional.hessian``, a MAML inner step, a gradient penalty), forward mode (``torch.func.jvp``,
``torch.func.hessian``) and per-sample gradients (``vmap(grad)``) equal the central differences of the core's
analytic gradient (NumPy, float64), on the plain path and on the default path's compiled forward. Never a silent
zero: a Hessian of zeros where the reference's is not fails every comparison here."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from helpers import assert_close, record_fused_runs
from second_order import TARGETS as KINDS
from second_order import central_differences, logits_for, losses

import focal

torch = pytest.importorskip("torch")
from focal.backends import _torch_fused as fused  # noqa: E402

CASES = [pytest.param(case, fn, params, name, t, id=f"{case}-{name}")
         for case, fn, params, kind in losses() for name, t in KINDS[kind].items()]
LR = 0.3  # the MAML inner step's learning rate


@functools.cache
def _expected(case: str, target: str) -> np.ndarray:
    """The reference Hessian (central differences of the analytic gradient, float64), once per case."""
    _, fn, params, name, t = next(c.values for c in CASES if c.values[0] == case and c.values[3] == target)
    return central_differences(fn, params, logits_for(fn), t)


@pytest.fixture(autouse=True)
def plain_path(monkeypatch):
    monkeypatch.setattr(fused, "_enabled", False)


def _as(t: np.ndarray, dtype) -> torch.Tensor:
    return torch.as_tensor(t) if t.dtype.kind == "i" else torch.as_tensor(t, dtype=dtype)


def _grad(fn, params, x, t) -> np.ndarray:
    return np.asarray(focal.value_and_grad(fn)(x, t, **params)[1])


@pytest.mark.parametrize("case,fn,params,name,t", CASES)
def test_double_backward_and_forward_mode_equal_the_reference(case, fn, params, name, t):
    x = logits_for(fn)
    shape, n = x.shape, x.size
    expected = _expected(case, name)
    assert np.abs(expected).max() > 0
    xt, tt = torch.as_tensor(x), _as(t, torch.float64)

    def loss(v):
        return fn(v, tt, **params)

    hessians = {
        "autograd.functional.hessian (create_graph)": torch.autograd.functional.hessian(loss, xt),
        "torch.func.hessian (jacfwd over jacrev)": torch.func.hessian(loss)(xt),
        "jacrev over jacrev": torch.func.jacrev(torch.func.jacrev(loss))(xt),
    }
    for route, hessian in hessians.items():
        assert_close(hessian.reshape(n, n).numpy(), expected, 1e-6, route)

    grad = _grad(fn, params, x, t)
    # a gradient penalty: d/dx |∇L|² = 2 H ∇L
    leaf = xt.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(leaf), leaf, create_graph=True)
    assert_close(g.detach().numpy(), grad, 1e-12, "create_graph's gradient")
    (penalty,) = torch.autograd.grad(g.square().sum(), leaf)
    assert_close(penalty.numpy().ravel(), 2 * expected @ grad.ravel(), 1e-6, "gradient penalty")
    # MAML: one inner step, then the outer gradient through it: (I − lr H(x)) ∇L(x − lr ∇L(x))
    leaf = xt.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(leaf), leaf, create_graph=True)
    (outer,) = torch.autograd.grad(loss(leaf - LR * g), leaf)
    after = _grad(fn, params, x - LR * grad, t).ravel()
    assert_close(outer.numpy().ravel(), after - LR * expected @ after, 1e-6, "MAML outer gradient")
    # forward mode: J·v of the loss is ⟨∇L, v⟩; of the gradient, H v
    v = np.cos(np.arange(n)).reshape(shape)
    _, tangent = torch.func.jvp(loss, (xt,), (torch.as_tensor(v),))
    assert_close(tangent.numpy(), np.vdot(grad, v), 1e-12, "torch.func.jvp")
    _, hv = torch.func.jvp(torch.func.grad(loss), (xt,), (torch.as_tensor(v),))
    assert_close(hv.numpy().ravel(), expected @ v.ravel(), 1e-6, "jvp of grad (H v)")
    assert_close(torch.func.jacfwd(loss)(xt).numpy(), grad, 1e-12, "jacfwd")


@pytest.mark.parametrize("case,fn,params,name,t", CASES)
def test_per_sample_gradients_under_vmap(case, fn, params, name, t):
    """``vmap(grad(loss))`` over rows: each row's gradient of the loss of that row alone."""
    x = logits_for(fn)
    per_sample = torch.func.vmap(torch.func.grad(lambda v, y: fn(v[None], y[None], **params)))(
        torch.as_tensor(x), _as(t, torch.float64))
    expected = np.stack([_grad(fn, params, x[i:i + 1], t[i:i + 1])[0] for i in range(len(x))])
    assert_close(per_sample.numpy(), expected, 1e-12, "per-sample gradients")


@pytest.mark.parametrize("case,fn,params,name,t", CASES)
def test_float32_hessians_finite_at_saturated_logits(case, fn, params, name, t):
    """PyTorch's common dtype, at logits up to ±100: finite, and the float64 reference to float32's tolerance."""
    x, n = logits_for(fn), logits_for(fn).size
    xt, tt = torch.as_tensor(x, dtype=torch.float32), _as(t, torch.float32)
    for route, hessian in {"create_graph": torch.autograd.functional.hessian(lambda v: fn(v, tt, **params), xt),
                           "torch.func.hessian": torch.func.hessian(lambda v: fn(v, tt, **params))(xt)}.items():
        hessian = hessian.reshape(n, n).double().numpy()
        assert np.isfinite(hessian).all(), (route, np.argwhere(~np.isfinite(hessian)))
        assert_close(hessian, _expected(case, name), 2e-3, route)


def test_the_default_paths_compiled_forward_has_the_same_second_derivatives(monkeypatch):
    """Large inputs' compiled forward (after the warm-up calls): the double backward runs the plain kernel again."""
    calls = record_fused_runs(monkeypatch)
    monkeypatch.setattr(fused, "COMPILE", functools.partial(torch.compile, dynamic=None, backend="eager"))
    for case, fn, params, name, t in (c.values for c in CASES if c.id in ("sigmoid-g2.0-soft", "softmax-g0.5-hard",
                                                                        "softmax-options-g2.0-hard")):
        x = logits_for(fn)
        hessian = torch.autograd.functional.hessian(lambda v: fn(v, _as(t, torch.float64), **params),
                                                    torch.as_tensor(x))
        assert_close(hessian.reshape(x.size, x.size).numpy(), _expected(case, name), 1e-6, case)
    assert "forward" in calls


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_the_fused_linear_losses_refuse_a_recorded_backward(loss):
    """No second derivative through the chunked gradients: a clear error, never the silent zero of a graph of saved
    gradients; the first derivative under torch.func.grad is unchanged."""
    rng = np.random.default_rng(5)
    hidden, weight = torch.as_tensor(rng.normal(size=(6, 4))), torch.as_tensor(rng.normal(size=(5, 4)))
    targets = torch.as_tensor(rng.integers(0, 5, 6)) if loss == "softmax" else torch.as_tensor(
        (rng.random((6, 5)) > 0.5).astype(np.float64))
    fused_loss = focal.linear_softmax_focal_loss if loss == "softmax" else focal.linear_sigmoid_focal_loss
    unfused = focal.softmax_focal_loss if loss == "softmax" else focal.sigmoid_focal_loss
    leaf = hidden.clone().requires_grad_(True)
    with pytest.raises(NotImplementedError, match="no second derivative.*create_graph=True"):
        torch.autograd.grad(fused_loss(leaf, weight, targets), leaf, create_graph=True)
    with pytest.raises(NotImplementedError, match="no second derivative"):
        torch.autograd.functional.hessian(lambda h: fused_loss(h, weight, targets), hidden)
    assert_close(torch.func.grad(lambda h: fused_loss(h, weight, targets))(hidden).numpy(),
                 torch.func.grad(lambda h: unfused(h @ weight.T, targets))(hidden).numpy(), 1e-12, "func.grad")
