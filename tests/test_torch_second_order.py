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
from second_order import OPT_BINARY, OPT_LABELS, OPT_X, OPTIONS, RNG, central_differences, logits_for, losses
from second_order import TARGETS as KINDS

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


LINEAR_GEN = np.random.default_rng(8)
HIDDEN, WEIGHT, BIAS = (LINEAR_GEN.normal(size=s) for s in ((7, 4), (5, 4), (5,)))
LINEAR_LABELS = np.array([0, 1, 2, 3, 4, 0, -100])
LINEAR_BINARY = (LINEAR_GEN.random((7, 5)) > 0.5).astype(np.float64)
ROW_WEIGHTS = np.arange(7.0)
LINEAR_CASES = {
    "softmax ignore_index": (focal.linear_softmax_focal_loss, focal.softmax_focal_loss, LINEAR_LABELS,
                             {"ignore_index": -100}),
    "softmax smoothing gamma 0.5": (focal.linear_softmax_focal_loss, focal.softmax_focal_loss,
                                    np.abs(LINEAR_LABELS) % 5, {"label_smoothing": 0.1, "gamma": 0.5}),
    "softmax none": (focal.linear_softmax_focal_loss, focal.softmax_focal_loss, np.abs(LINEAR_LABELS) % 5,
                     {"reduction": "none"}),
    "sigmoid": (focal.linear_sigmoid_focal_loss, focal.sigmoid_focal_loss, LINEAR_BINARY, {}),
    "sigmoid normalizer": (focal.linear_sigmoid_focal_loss, focal.sigmoid_focal_loss, LINEAR_BINARY,
                           {"normalizer": 4.0}),
}


@pytest.mark.parametrize("case", LINEAR_CASES)
def test_the_fused_linear_losses_second_derivatives(case):
    """A recorded backward (``create_graph``) of a fused linear loss runs its chunks again through the unfused
    loss's own path: the Hessian over (hidden, weight, bias) equals the unfused loss's of ``hidden @ weight.T +
    bias`` (whose own is tested above), chunks of 3 rows over 7, with and without a reduction."""
    fused_loss, unfused, t, params = LINEAR_CASES[case]
    targets = _as(t, torch.float64)
    rows = torch.as_tensor(ROW_WEIGHTS)

    def reduced(loss):
        return (loss * rows).sum() if params.get("reduction") == "none" else loss

    def fused(h, w, b):
        return reduced(fused_loss(h, w, targets, bias=b, chunk_size=3, **params))

    def plain(h, w, b):
        loss = unfused(h @ w.T + b, targets, **params)
        return reduced(loss.sum(-1) if loss.ndim == 2 else loss)

    inputs = tuple(torch.as_tensor(x) for x in (HIDDEN, WEIGHT, BIAS))
    ours, expected = (torch.autograd.functional.hessian(f, inputs) for f in (fused, plain))
    for i in range(3):
        for j in range(3):
            assert_close(ours[i][j].numpy(), expected[i][j].numpy(), 1e-10, f"block {i}, {j}")


def test_the_fused_linear_losses_refuse_nested_torch_func_transforms():
    """Under torch.func their chunks' autodiff cannot be taken again: a clear error, never the silent zero of a graph
    of saved gradients; the first derivative under torch.func.grad is unchanged."""
    hidden, weight = torch.as_tensor(HIDDEN), torch.as_tensor(WEIGHT)
    labels = torch.as_tensor(np.abs(LINEAR_LABELS) % 5)
    with pytest.raises(NotImplementedError, match="no second derivative.*torch.func"):
        torch.func.jacrev(torch.func.grad(lambda h: focal.linear_softmax_focal_loss(h, weight, labels)))(hidden)
    assert_close(torch.func.grad(lambda h: focal.linear_softmax_focal_loss(h, weight, labels))(hidden).numpy(),
                 torch.func.grad(lambda h: focal.softmax_focal_loss(h @ weight.T, labels))(hidden).numpy(), 1e-12,
                 "func.grad")


@pytest.mark.parametrize("name,fn,t,params", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_options_second_derivatives(name, fn, t, params):
    """The options whose gradient differs, at a row of ties: double backward and torch.func.hessian."""
    expected = central_differences(fn, params, OPT_X, t)
    n = OPT_X.size
    targets = _as(t, torch.float64)
    torch_params = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in params.items()}

    def loss(v):
        return fn(v, targets, **torch_params)

    x = torch.as_tensor(OPT_X)
    assert_close(torch.autograd.functional.hessian(loss, x).reshape(n, n).numpy(), expected, 1e-6, "create_graph")
    assert_close(torch.func.hessian(loss)(x).reshape(n, n).numpy(), expected, 1e-6, "torch.func.hessian")


@pytest.mark.parametrize("which", ["gamma", "alpha"])
def test_mixed_second_derivatives_in_a_hyperparameter_tensor(which):
    """γ or α a tensor that requires grad: the Hessian over (logits, hyperparameter), every block, against central
    differences of the analytic gradient in the hyperparameter and second differences of the loss."""
    base = {"gamma": 1.5, "alpha": 0.3}
    labels = np.abs(OPT_LABELS) % 4

    def numpy_loss(x, value):
        return float(focal.softmax_focal_loss(x, labels, **{**base, which: value}))

    def numpy_grad(x, value):
        return np.asarray(focal.value_and_grad(focal.softmax_focal_loss)(x, labels, **{**base, which: value})[1])

    h, value = 1e-5, base[which]
    mixed = (numpy_grad(OPT_X, value + h) - numpy_grad(OPT_X, value - h)) / (2 * h)
    step = 1e-4
    own = (numpy_loss(OPT_X, value + step) - 2 * numpy_loss(OPT_X, value) + numpy_loss(OPT_X, value - step)) / step**2
    t = torch.as_tensor(labels)

    def loss(x, hyper):
        return focal.softmax_focal_loss(x, t, **{**base, which: hyper})

    hxx, hxp, hpx, hpp = (b for row in torch.autograd.functional.hessian(
        loss, (torch.as_tensor(OPT_X), torch.as_tensor(value, dtype=torch.float64))) for b in row)
    assert_close(hxx.reshape(OPT_X.size, OPT_X.size).numpy(), central_differences(
        focal.softmax_focal_loss, {**base}, OPT_X, labels), 1e-6, "d2/dx2")
    assert_close(hxp.numpy(), mixed, 1e-6, "d2/dx d" + which)
    assert_close(hpx.numpy(), mixed, 1e-6, "d2/d" + which + " dx")
    # (the loss is linear in α: its second derivative 0, the differences' rounding ~1e-8)
    np.testing.assert_allclose(hpp.numpy(), own, rtol=1e-4, atol=1e-6, err_msg="d2/d" + which + "2")
    forward = torch.func.jacfwd(torch.func.grad(loss, argnums=1), argnums=0)(
        torch.as_tensor(OPT_X), torch.as_tensor(value, dtype=torch.float64))
    assert_close(forward.numpy(), mixed, 1e-6, "jacfwd over grad, d" + which)


NAIVE = {
    "sigmoid hard": (lambda v, y: _naive_sigmoid(v, y), OPT_X, np.abs(OPT_BINARY)),
    "sigmoid soft": (lambda v, y: _naive_sigmoid(v, y), OPT_X, RNG.random((6, 4))),
    "softmax": (lambda v, y: _naive_softmax(v, y, 0.0), OPT_X, np.abs(OPT_LABELS) % 4),
    "softmax smoothed": (lambda v, y: _naive_softmax(v, y, 0.1), OPT_X, np.abs(OPT_LABELS) % 4),
}


def _naive_sigmoid(v, y, alpha=0.25, gamma=2.0):
    p = torch.sigmoid(v)
    p_t = y * p + (1 - y) * (1 - p)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(v, y, reduction="none")
    return ((alpha * y + (1 - alpha) * (1 - y)) * (1 - p_t) ** gamma * bce).mean()


def _naive_softmax(v, labels, smoothing, gamma=2.0):
    log_p = torch.log_softmax(v, dim=-1)
    target = torch.nn.functional.one_hot(labels, v.shape[-1]).double() * (1 - smoothing) + smoothing / v.shape[-1]
    return (-(target * (1 - log_p.exp()) ** gamma * log_p).sum(-1)).mean()


@pytest.mark.parametrize("case", NAIVE)
def test_equal_to_the_naive_formula_differentiated_by_torch(case):
    """The issue's reproduction: the same loss written naively in torch ops, differentiated by torch itself, float64:
    the Hessian, the MAML outer gradient and the gradient penalty to 1e-7 relative."""
    naive, x, t = NAIVE[case]
    ours = focal.sigmoid_focal_loss if case.startswith("sigmoid") else functools.partial(
        focal.softmax_focal_loss, alpha=None, label_smoothing=0.1 if "smoothed" in case else 0.0)
    y = _as(t, torch.float64)
    xt = torch.as_tensor(x)
    n = x.size
    assert_close(torch.autograd.functional.hessian(lambda v: ours(v, y), xt).reshape(n, n).numpy(),
                 torch.autograd.functional.hessian(lambda v: naive(v, y), xt).reshape(n, n).numpy(), 1e-7, "Hessian")
    results = []
    for loss in (lambda v: ours(v, y), lambda v: naive(v, y)):
        leaf = xt.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(leaf), leaf, create_graph=True)
        (outer,) = torch.autograd.grad(loss(leaf - LR * g), leaf, retain_graph=True)
        (penalty,) = torch.autograd.grad(g.square().sum(), leaf)
        results.append((outer.numpy(), penalty.numpy()))
    assert_close(results[0][0], results[1][0], 1e-7, "MAML outer gradient")
    assert_close(results[0][1], results[1][1], 1e-7, "gradient penalty")


def test_first_order_transforms_read_the_saved_gradient(monkeypatch):
    """``torch.func.grad``, ``vmap(grad)`` and a plain backward run the kernel once (the forward's saved gradient);
    only a differentiated backward runs it again."""
    from focal.backends import torch as torch_backend

    runs: list[int] = []
    real = torch_backend._differentiable_vjp
    monkeypatch.setattr(torch_backend, "_differentiable_vjp", lambda *a: runs.append(1) or real(*a))
    x, labels = torch.as_tensor(OPT_X), torch.as_tensor(np.abs(OPT_LABELS) % 4)

    def loss(v):
        return focal.softmax_focal_loss(v, labels)

    torch.func.grad(loss)(x)
    torch.func.vmap(torch.func.grad(lambda v, y: focal.softmax_focal_loss(v[None], y[None])))(x, labels)
    leaf = x.clone().requires_grad_(True)
    loss(leaf).backward()
    assert runs == []
    torch.func.jacrev(torch.func.grad(loss))(x)
    assert runs


def test_torch_func_inside_torch_compile_refuses():
    """dynamo inlines an autograd.Function's forward under a torch.func transform and differentiates it instead of
    its backward (compiled ``torch.func.grad`` was NaN at saturated float32 logits): an error naming why."""
    x, labels = torch.as_tensor(OPT_X, dtype=torch.float32), torch.as_tensor(np.abs(OPT_LABELS) % 4)
    compiled = torch.compile(torch.func.grad(lambda v: focal.softmax_focal_loss(v, labels)), backend="eager",
                             fullgraph=True)
    with pytest.raises(Exception, match="inside a torch.func transform"):
        compiled(x)


@pytest.mark.parametrize("route", ["create_graph", "torch.func.hessian"])
def test_a_bad_label_is_nan_in_its_own_rows_of_the_hessian(route):
    """Where values are not read (the ``nan`` mode, an accelerator's default), a label outside [0, C) makes its row's
    loss and its gradient's row NaN; in the Hessian its own block shows NaN (forward mode leaves the derivative of the
    one NaN-marked entry at the row's safe label finite), NaN reaches no entry that pairs two other rows, and those
    equal the reference's. (An entry pairing the bad row with another is 0 · NaN on one side: NaN.)"""
    labels = np.abs(OPT_LABELS) % 4
    bad = labels.copy()
    bad[3] = 7
    x, n, c = torch.as_tensor(OPT_X), OPT_X.size, OPT_X.shape[1]
    with focal.set_value_checks("nan"):
        loss = functools.partial(focal.softmax_focal_loss, targets=torch.as_tensor(bad))
        hessian = (torch.autograd.functional.hessian(loss, x) if route == "create_graph" else
                   torch.func.hessian(loss)(x)).reshape(n, n).numpy()
        gradient = torch.func.grad(loss)(x).numpy()
    assert np.isnan(gradient[3]).all() and np.isfinite(np.delete(gradient, 3, axis=0)).all()
    in_row = np.zeros(n, dtype=bool)
    in_row[3 * c:4 * c] = True
    assert np.isnan(hessian[np.ix_(in_row, in_row)]).sum() >= c * (c - 1)
    others = np.ix_(~in_row, ~in_row)
    expected = central_differences(focal.softmax_focal_loss, {}, OPT_X, labels)
    assert_close(hessian[others], expected[others], 1e-6, "the other rows")


@pytest.mark.parametrize("loss", ["softmax", "sigmoid", "linear"])
def test_a_hessian_through_a_compiled_loss_raises(loss):
    """PyTorch's AOTAutograd has no double backward of a compiled region. Our compiled backward keeps the logits
    (``_kept_by_a_compiled_backward``), so a Hessian through a ``torch.compile``d loss raises AOTAutograd's error, as
    for PyTorch's own compiled losses, where it returned no gradient (zeros in ``autograd.functional.hessian``); the
    compiled first derivative is unchanged."""
    labels = torch.as_tensor(np.abs(OPT_LABELS) % 4)
    weight = torch.as_tensor(RNG.normal(size=(4, 3)))
    fn = {"softmax": lambda v: focal.softmax_focal_loss(v, labels),
          "sigmoid": lambda v: focal.sigmoid_focal_loss(v, torch.as_tensor(np.abs(OPT_BINARY))),
          "linear": lambda v: focal.linear_softmax_focal_loss(v[:, :3], weight, labels)}[loss]
    x = torch.as_tensor(OPT_X)
    with pytest.raises(RuntimeError, match="does not currently support double backward"):
        torch.autograd.functional.hessian(torch.compile(fn, backend="aot_eager", fullgraph=True), x)
    torch._dynamo.reset()
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    leaf, eager_leaf = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    compiled(leaf).backward()
    fn(eager_leaf).backward()
    assert_close(leaf.grad.numpy(), eager_leaf.grad.numpy(), 1e-12, "compiled first derivative")
