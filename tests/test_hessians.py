"""Second derivatives under JAX, as its users take them: ``jax.hessian`` (forward over reverse through the
core's custom JVP, so JAX differentiates the analytic gradient) is finite for every loss at logits up to
±100, γ in {0, 0.5, 1, 2}, hard and soft targets, in float32 with x64 off (JAX's default) and in float64
with x64 on, and equals central differences of the analytic gradient (NumPy, float64)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, import_or_skip
from second_order import CASES, GAMMAS, OPT_X, OPTIONS, central_differences, logits_for, targets_as

import focal


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fn,params,targets", CASES)
def test_hessian_finite_and_equal_to_central_differences(fn, params, targets, dtype):
    """Hard and soft targets (where the loss takes both), each against its own central differences."""
    jax, jnp = import_or_skip("jax"), import_or_skip("jax.numpy")
    assert jnp.zeros(1, dtype=dtype).dtype == dtype, "x64 is on for float64 only (tests/conftest.py)"
    x = logits_for(fn)
    hessian_of = jax.jit(jax.hessian(lambda v, y: fn(v, y, **params)))  # one compile for targets of one dtype
    for name, t in targets.items():
        hessian = np.asarray(hessian_of(jnp.asarray(x, dtype=dtype), targets_as(jnp, t, dtype)),
                             dtype=np.float64).reshape(x.size, x.size)
        assert np.isfinite(hessian).all(), (name, np.argwhere(~np.isfinite(hessian)))
        expected = central_differences(fn, params, x, t)
        assert_close(hessian, expected, 1e-6 if dtype == "float64" else 2e-3, f"Hessian, {name} targets")


@pytest.mark.x64
def test_quality_focal_hessian_where_the_prediction_equals_the_target():
    """QFL's ``|y − p|^β`` with the paper's β = 2 is smooth where ``p = y`` (a zero-initialised head and IoU
    targets of 0.5): there its Hessian is ``2 (dp/dx)² BCE + …``, not the 0 of ``exp(β log |y − p|)``."""
    jax, jnp = import_or_skip("jax"), import_or_skip("jax.numpy")
    x, t = np.array([[0.0, 0.0, 1.0]]), np.array([[0.5, 0.3, 0.2]])
    hessian = np.asarray(jax.hessian(lambda v: focal.quality_focal_loss(v, jnp.asarray(t)))(jnp.asarray(x)))
    assert_close(hessian.reshape(3, 3), central_differences(focal.quality_focal_loss, {}, x, t), 1e-6, "Hessian")


@pytest.mark.parametrize("case", ["sigmoid", "softmax"])
def test_the_reported_hessians_eagerly(case):
    """The two Hessians first reported NaN (x64 off, not jitted): sigmoid γ = 0.5 at logits ±50 with hard labels,
    softmax at logits (60, −40, 0) with the target at the maximum, for every γ."""
    jax, jnp = import_or_skip("jax"), import_or_skip("jax.numpy")
    if case == "sigmoid":
        x, y = jnp.asarray([[50.0, -50.0]]), jnp.asarray([[1.0, 0.0]])
        losses = [lambda v: focal.sigmoid_focal_loss(v, y, gamma=0.5)]
    else:
        x, y = jnp.asarray([[60.0, -40.0, 0.0]]), jnp.asarray([0])
        losses = [lambda v, g=g: focal.softmax_focal_loss(v, y, gamma=g) for g in GAMMAS]
    for loss in losses:
        assert np.isfinite(np.asarray(jax.hessian(loss)(x))).all()


@pytest.mark.x64
@pytest.mark.parametrize("name,fn,t,params", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_options_hessians(name, fn, t, params):
    """The options whose gradient differs (ignore_index, where, weights, normalizer, per-class α and γ), at a row
    of ties: ``jax.hessian`` and reverse over reverse (``jacrev(grad)``)."""
    jax, jnp = import_or_skip("jax"), import_or_skip("jax.numpy")
    jax_params = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in params.items()}
    targets = jnp.asarray(t)
    expected = central_differences(fn, params, OPT_X, t)
    n = OPT_X.size
    for route in (jax.hessian, lambda f: jax.jacrev(jax.grad(f))):
        hessian = route(lambda v: fn(v, targets, **jax_params))(jnp.asarray(OPT_X))
        assert_close(np.asarray(hessian).reshape(n, n), expected, 1e-6, name)


@pytest.mark.x64
@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_the_fused_linear_losses_refuse_second_order(loss):
    """Their backward reads gradients saved by the forward: differentiated again it would give zeros (it did), so it
    raises, naming the unfused loss; the first derivative is unchanged."""
    jax, jnp = import_or_skip("jax"), import_or_skip("jax.numpy")
    rng = np.random.default_rng(4)
    hidden, weight = jnp.asarray(rng.normal(size=(6, 4))), jnp.asarray(rng.normal(size=(5, 4)))
    targets = jnp.asarray(rng.integers(0, 5, 6)) if loss == "softmax" else jnp.asarray(rng.random((6, 5)) > 0.5)
    fused = focal.linear_softmax_focal_loss if loss == "softmax" else focal.linear_sigmoid_focal_loss
    for route in (jax.hessian, lambda f: jax.jacrev(jax.grad(f)), lambda f: lambda h: jax.jvp(jax.grad(f), (h,), (h,))):
        with pytest.raises(NotImplementedError, match="no second derivative in JAX.*unfused"):
            route(lambda h: fused(h, weight, targets))(hidden)
    unfused = focal.softmax_focal_loss if loss == "softmax" else focal.sigmoid_focal_loss
    assert_close(np.asarray(jax.jit(jax.grad(lambda h: fused(h, weight, targets)))(hidden)),
                 np.asarray(jax.grad(lambda h: unfused(h @ weight.T, targets))(hidden)), 1e-12, "first order")
