"""``detach_modulator=True``: the modulating factor computed from the logits held constant (RT-DETR's and D-FINE's VFL,
timm's ``disable_torch_grad_focal_loss``). First derivatives meet the float64 references (their factor from the real
part, which the complex step sees no derivative through) in test_values / test_cross_backend (``*-detach`` cases).
Here the orders above: the Hessian of each framework equals that of the reference with the factor frozen at the
point (central differences of its complex-step gradient), never the derivative of the detached gradient field; a
mixed derivative in a γ tensor keeps the factor's γ-dependence; a naive PyTorch formula with ``.detach()``
differentiated by torch agrees; the wrappers carry the switch."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import reference
from helpers import assert_close, import_or_skip

import focal

RNG = np.random.default_rng(23)
X = RNG.normal(size=(5, 4)) * 2.0
X[0] = 0.0  # a zero-initialised head's row
HARD = (RNG.random((5, 4)) > 0.5).astype(np.float64)
SOFT = RNG.random((5, 4))
QUALITY = HARD * RNG.uniform(0.1, 1.0, (5, 4))
LABELS = np.array([0, 3, 1, 2, 3])
ROWS = RNG.dirichlet(np.ones(4), size=5)

# (id, focal loss, reference, parameters, targets): the mean loss, whose reference is reduced over every element
# (sigmoid losses) or every row (softmax)
CASES = [
    ("sigmoid-hard", focal.sigmoid_focal_loss, reference.sigmoid_focal, {}, HARD),
    ("sigmoid-soft-g0.5", focal.sigmoid_focal_loss, reference.sigmoid_focal, {"gamma": 0.5, "alpha": 0.4}, SOFT),
    ("sigmoid-split-soft", focal.sigmoid_focal_loss, reference.sigmoid_focal, {"form": "split", "gamma": 1.5}, SOFT),
    ("asl-hard", focal.asymmetric_loss, reference.asymmetric, {"gamma_pos": 1.0}, HARD),
    ("asl-soft-g2.5", focal.asymmetric_loss, reference.asymmetric, {"gamma_neg": 2.5, "clip": 0.02}, SOFT),
    ("vfl", focal.varifocal_loss, reference.varifocal, {}, QUALITY),
    ("softmax-labels", focal.softmax_focal_loss, reference.softmax_focal, {"alpha": [0.2, 0.5, 1.0, 0.7]}, LABELS),
    ("softmax-soft-g0.5", focal.softmax_focal_loss, reference.softmax_focal, {"gamma": 0.5}, ROWS),
]
IDS = [c[0] for c in CASES]
DETACH = {"detach_modulator": True}


def _reference_mean(ref, params, t, frozen):
    def loss(v):
        return np.mean(ref(v, t, **params, detach_modulator=frozen))
    return loss


@functools.cache
def _frozen_hessian(case_id: str) -> np.ndarray:
    """The Hessian of the reference loss with its factor frozen at X: central differences of its complex-step
    gradient."""
    _, _, ref, params, t = CASES[IDS.index(case_id)]
    loss = _reference_mean(ref, params, t, X)
    out = np.zeros((X.size, X.size))
    step = 1e-5
    for i in range(X.size):
        bump = np.zeros(X.size)
        bump[i] = step
        up = reference.gradient(loss, X + bump.reshape(X.shape))
        down = reference.gradient(loss, X - bump.reshape(X.shape))
        out[:, i] = (up - down).ravel() / (2 * step)
    return out


def test_the_frozen_hessian_is_not_the_detached_gradients_derivative():
    """The check below can fail: the central differences of the detached gradient (whose factor moves with the
    logits) differ from the frozen Hessian by the factor's own derivative."""
    _, fn, _, params, t = CASES[0]
    moving = np.zeros((X.size, X.size))
    grad = focal.value_and_grad(fn)
    for i in range(X.size):
        bump = np.zeros(X.size)
        bump[i] = 1e-5
        up = grad(X + bump.reshape(X.shape), t, **params, **DETACH)[1]
        down = grad(X - bump.reshape(X.shape), t, **params, **DETACH)[1]
        moving[:, i] = (np.asarray(up) - np.asarray(down)).ravel() / 2e-5
    frozen = _frozen_hessian(CASES[0][0])
    assert np.max(np.abs(moving - frozen)) > 0.1 * np.max(np.abs(frozen))


@pytest.mark.x64
@pytest.mark.parametrize("case_id", IDS)
def test_jax_hessian(case_id):
    jax, jnp = import_or_skip("jax"), import_or_skip("jax.numpy")
    _, fn, _, params, t = CASES[IDS.index(case_id)]
    y = jnp.asarray(t)
    def loss(v):
        return fn(v, y, **params, **DETACH)

    routes = (("jax.hessian", jax.hessian(loss)), ("jit(jacrev(grad))", jax.jit(jax.jacrev(jax.grad(loss)))))
    for route, hessian in routes:
        h = np.asarray(hessian(jnp.asarray(X))).reshape(X.size, X.size)
        assert_close(h, _frozen_hessian(case_id), 1e-6, route)


def test_jax_float32_hessian():
    """x64 off, JAX's default."""
    jax, jnp = import_or_skip("jax"), import_or_skip("jax.numpy")
    for case_id in ("sigmoid-soft-g0.5", "asl-hard", "softmax-labels"):
        _, fn, _, params, t = CASES[IDS.index(case_id)]
        y = jnp.asarray(t) if t.dtype.kind == "i" else jnp.asarray(t, dtype=jnp.float32)
        h = jax.hessian(lambda v, y=y, fn=fn, params=params: fn(v, y, **params, **DETACH))(
            jnp.asarray(X, dtype=jnp.float32))
        assert h.dtype == jnp.float32
        assert_close(np.asarray(h, dtype=np.float64).reshape(X.size, X.size), _frozen_hessian(case_id), 2e-3, case_id)


@pytest.mark.parametrize("case_id", IDS)
def test_torch_double_backward_and_forward_mode(case_id):
    torch = import_or_skip("torch")
    _, fn, _, params, t = CASES[IDS.index(case_id)]
    y = torch.as_tensor(t)

    def loss(v):
        return fn(v, y, **params, **DETACH)

    x = torch.as_tensor(X)
    expected = _frozen_hessian(case_id)
    assert_close(torch.autograd.functional.hessian(loss, x).reshape(X.size, X.size).numpy(), expected, 1e-6,
                 "create_graph")
    assert_close(torch.func.hessian(loss)(x).reshape(X.size, X.size).numpy(), expected, 1e-6, "torch.func.hessian")


@pytest.mark.parametrize("case_id", IDS)
def test_tensorflow_nested_tapes(monkeypatch, case_id):
    tf = import_or_skip("tensorflow")
    from focal.backends import tensorflow as tf_backend

    _, fn, _, params, t = CASES[IDS.index(case_id)]
    y = tf.constant(t)
    for fused in (False, True):  # the plain kernel eagerly; the XLA-compiled fused path in a tf.function
        monkeypatch.setattr(tf_backend, "FUSED_MIN_ELEMENTS", 0 if fused else 1 << 30)

        def hessian(v):
            with tf.GradientTape(persistent=True) as outer:
                outer.watch(v)
                with tf.GradientTape() as inner:
                    inner.watch(v)
                    loss = fn(v, y, **params, **DETACH)
                g = inner.gradient(loss, v)
            return outer.jacobian(g, v, experimental_use_pfor=False)

        run = tf.function(hessian, autograph=False) if fused else hessian
        h = run(tf.constant(X)).numpy().reshape(X.size, X.size)
        assert_close(h, _frozen_hessian(case_id), 1e-6, "fused XLA path" if fused else "eager")


MIXED = [
    ("sigmoid gamma", focal.sigmoid_focal_loss, reference.sigmoid_focal, {"gamma": 1.5}, "gamma", SOFT),
    ("asl clip", focal.asymmetric_loss, reference.asymmetric, {"gamma_pos": 1.0, "clip": 0.05}, "clip", HARD),
    ("asl gamma_neg", focal.asymmetric_loss, reference.asymmetric, {"gamma_neg": 2.5}, "gamma_neg", SOFT),
    ("vfl gamma", focal.varifocal_loss, reference.varifocal, {"gamma": 1.5}, "gamma", QUALITY),
    ("softmax gamma", focal.softmax_focal_loss, reference.softmax_focal, {"gamma": 1.5}, "gamma", LABELS),
]


@pytest.mark.parametrize("fn,ref,params,name,t", [m[1:] for m in MIXED], ids=[m[0] for m in MIXED])
def test_a_hyperparameter_tensor_keeps_its_derivatives_through_the_factor(fn, ref, params, name, t):
    """A hyperparameter tensor that requires grad (γ, ASL's clip or γ⁻): ∂L/∂θ and the mixed ∂²L/∂θ∂x go through
    the factor (it depends on θ); only the logits' dependence is held. Against the reference: the complex step in
    x (the factor from the real part), central differences in θ."""
    torch = import_or_skip("torch")
    value = params[name]

    def reference_grad(v):
        return reference.gradient(_reference_mean(ref, {**params, name: v}, t, True), X)

    def reference_loss(v):
        return float(np.mean(ref(X, t, **{**params, name: v})))

    h = 1e-6
    mixed = (reference_grad(value + h) - reference_grad(value - h)) / (2 * h)
    d_theta = (reference_loss(value + h) - reference_loss(value - h)) / (2 * h)
    theta = torch.tensor(value, dtype=torch.float64, requires_grad=True)
    x = torch.as_tensor(X).requires_grad_(True)
    loss = fn(x, torch.as_tensor(t), **{**params, name: theta}, **DETACH)
    gx, g_theta = torch.autograd.grad(loss, (x, theta), create_graph=True)
    assert_close(gx.detach().numpy(), reference_grad(value), 1e-10, "d/dx")
    assert_close(g_theta.detach().numpy(), d_theta, 1e-6, "d/d" + name)
    weights = torch.as_tensor(np.random.default_rng(5).normal(size=X.shape))
    (mixed_torch,) = torch.autograd.grad((gx * weights).sum(), theta, retain_graph=True)
    assert_close(mixed_torch.numpy(), np.sum(mixed * weights.numpy()), 1e-5, "d2/d" + name + " dx")
    # the other order: the derivative of ∂L/∂θ (the kernel's partial) w.r.t. the logits
    (other_order,) = torch.autograd.grad(g_theta, x)
    assert_close(other_order.numpy(), mixed, 1e-5, "d2/dx d" + name)


def test_equal_to_a_naive_pytorch_formula_with_detach():
    """RT-DETR's negatives' weight written naively (``sigmoid(x).detach()``) and torchvision-style focal with
    ``p_t.detach()``, differentiated by torch to second order, equal ours."""
    torch = import_or_skip("torch")
    x0 = torch.as_tensor(X)
    q = torch.as_tensor(QUALITY)
    hard = torch.as_tensor(HARD)

    def naive_vfl(v):
        weight = 0.75 * torch.sigmoid(v).detach() ** 2 * (q == 0) + q * (q > 0)
        return (torch.nn.functional.binary_cross_entropy_with_logits(v, q, reduction="none") * weight).mean()

    def naive_focal(v):
        p = torch.sigmoid(v)
        p_t = (p * hard + (1 - p) * (1 - hard)).detach()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(v, hard, reduction="none")
        return ((0.25 * hard + 0.75 * (1 - hard)) * (1 - p_t) ** 2 * bce).mean()

    for name, naive, ours in (("vfl", naive_vfl, lambda v: focal.varifocal_loss(v, q, **DETACH)),
                              ("focal", naive_focal, lambda v: focal.sigmoid_focal_loss(v, hard, **DETACH))):
        for route in ("grad", "hessian"):
            take = (torch.func.grad if route == "grad" else torch.autograd.functional.hessian)
            expected = take(naive)(x0) if route == "grad" else take(naive, x0)
            actual = take(ours)(x0) if route == "grad" else take(ours, x0)
            assert_close(actual.numpy(), expected.numpy(), 1e-10, f"{name} {route}")


def test_the_default_differentiates_through_the_factor():
    """Without the switch the gradient is the loss's own (the factor's derivative in it): they differ."""
    _, with_factor = focal.value_and_grad(focal.varifocal_loss)(X, QUALITY)
    _, held = focal.value_and_grad(focal.varifocal_loss)(X, QUALITY, **DETACH)
    expected = reference.gradient(_reference_mean(reference.varifocal, {}, QUALITY, False), X)
    assert_close(np.asarray(with_factor), expected, 1e-10, "default")
    assert np.max(np.abs(np.asarray(held) - expected)) > 0.1 * np.max(np.abs(expected))


@pytest.mark.parametrize("bad", ["yes", 1, None, np.array(True)])
def test_the_switch_is_a_bool(bad):
    with pytest.raises(TypeError, match=r"detach_modulator must be True or False, got"):
        focal.sigmoid_focal_loss(X, HARD, detach_modulator=bad)


def test_the_wrappers_carry_it():
    """The PyTorch criterion and the Keras loss take the switch and give the functional API's gradient; Keras's
    config round-trips it."""
    torch = import_or_skip("torch")
    import focal.torch as ft

    x = torch.as_tensor(X).requires_grad_(True)
    ft.VarifocalLoss(detach_modulator=True)(x, torch.as_tensor(QUALITY)).backward()
    _, expected = focal.value_and_grad(focal.varifocal_loss)(X, QUALITY, **DETACH)
    assert_close(x.grad.numpy(), np.asarray(expected), 1e-12, "focal.torch")
    keras = import_or_skip("keras")
    import focal.keras as fk

    loss = fk.AsymmetricLoss(detach_modulator=True)
    assert loss.get_config()["detach_modulator"] is True
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert again.get_config()["detach_modulator"] is True
