"""Second derivatives under TensorFlow, as its users take them: nested ``GradientTape``s over every loss (eagerly,
in a ``tf.function``, and on the fused XLA path for large inputs) equal central differences of the analytic gradient
(NumPy, float64), hard and soft targets, at logits up to ±100; float32 finite and to its tolerance. Never a silent
zero: before the TF shim's abs, min/max with a number and divide took the core's branches, the sigmoid family's
Hessians were wrong by up to their whole size, silently."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from helpers import assert_close, import_or_skip
from second_order import OPT_X, OPTIONS, central_differences, logits_for, losses
from second_order import TARGETS as KINDS

import focal

tf = import_or_skip("tensorflow")
from focal.backends import tensorflow as tf_backend  # noqa: E402

CASES = [pytest.param(case, fn, params, name, t, id=f"{case}-{name}")
         for case, fn, params, kind in losses() for name, t in KINDS[kind].items()]


@functools.cache
def _expected(case: str, target: str) -> np.ndarray:
    _, fn, params, _, t = next(c.values for c in CASES if c.values[0] == case and c.values[3] == target)
    return central_differences(fn, params, logits_for(fn), t)


def _hessian(fn, params, x: np.ndarray, t: np.ndarray, dtype) -> np.ndarray:
    v = tf.constant(x, dtype=dtype)
    y = tf.constant(t) if t.dtype.kind == "i" else tf.constant(t, dtype=dtype)
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(v)
        with tf.GradientTape() as inner:
            inner.watch(v)
            loss = fn(v, y, **params)
        g = inner.gradient(loss, v)
    return outer.jacobian(g, v, experimental_use_pfor=False).numpy().reshape(x.size, x.size).astype(np.float64)


@pytest.mark.parametrize("case,fn,params,name,t", CASES)
def test_nested_tapes_equal_the_reference(case, fn, params, name, t):
    x = logits_for(fn)
    assert_close(_hessian(fn, params, x, t, tf.float64), _expected(case, name), 1e-6, "nested tapes, float64")
    hessian = _hessian(fn, params, x, t, tf.float32)
    assert np.isfinite(hessian).all(), np.argwhere(~np.isfinite(hessian))
    assert_close(hessian, _expected(case, name), 2e-3, "nested tapes, float32")


@pytest.mark.parametrize("fused", [False, True], ids=["tf.function", "fused XLA path"])
def test_in_a_tf_function_and_on_the_fused_path(monkeypatch, fused):
    """The Hessian of a ``tf.function``; with ``fused`` every input takes the XLA-compiled kernel of large ones."""
    monkeypatch.setattr(tf_backend, "FUSED_MIN_ELEMENTS", 0 if fused else 1 << 30)
    for case, fn, params, name, t in (c.values for c in CASES if c.id in (
            "sigmoid-g0.5-soft", "softmax-options-g2.0-hard", "asl-g2.0-hard", "vfl-g0.5-soft")):
        x = logits_for(fn)
        y = tf.constant(t) if t.dtype.kind == "i" else tf.constant(t)

        @tf.function(autograph=False)
        def hessian(v, fn=fn, params=params, y=y):
            with tf.GradientTape() as outer:
                outer.watch(v)
                with tf.GradientTape() as inner:
                    inner.watch(v)
                    loss = fn(v, y, **params)
                g = inner.gradient(loss, v)
            return outer.jacobian(g, v)

        assert_close(hessian(tf.constant(x)).numpy().reshape(x.size, x.size), _expected(case, name), 1e-6, case)


@pytest.mark.parametrize("name,fn,t,params", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_options_second_derivatives(name, fn, t, params):
    """The options whose gradient differs (ignore_index, where, weights, normalizer, per-class α and γ), at a row
    of ties."""
    tf_params = {k: tf.constant(v) if isinstance(v, np.ndarray) else v for k, v in params.items()}
    assert_close(_hessian(fn, tf_params, OPT_X, t, tf.float64), central_differences(fn, params, OPT_X, t), 1e-6,
                 name)


def test_the_fused_linear_losses_refuse_a_nested_tape():
    """Their backward reads gradients saved by the forward: under an outer tape it raises, naming the unfused loss
    (it raised a bare "Attempt to convert a value (None)"), and a single tape's gradient is unchanged."""
    rng = np.random.default_rng(4)
    hidden, weight = tf.constant(rng.normal(size=(6, 4))), tf.constant(rng.normal(size=(5, 4)))
    labels = tf.constant(rng.integers(0, 5, 6))
    with pytest.raises(NotImplementedError, match="no second derivative in TensorFlow.*unfused"):
        with tf.GradientTape() as outer:
            outer.watch(hidden)
            with tf.GradientTape() as inner:
                inner.watch(hidden)
                loss = focal.linear_softmax_focal_loss(hidden, weight, labels)
            inner.gradient(loss, hidden)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(hidden)
        fused = focal.linear_softmax_focal_loss(hidden, weight, labels)
        unfused = focal.softmax_focal_loss(tf.matmul(hidden, weight, transpose_b=True), labels)
    assert_close(tape.gradient(fused, hidden).numpy(), tape.gradient(unfused, hidden).numpy(), 1e-12, "first order")
