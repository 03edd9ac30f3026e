"""Saturated logits and the gamma grid: finite everywhere, equal across libraries, right to the last digits.

Logits run over [-1e4, 1e4] and gamma over {0, 0.5, 1, 2, 5}, with hard and soft targets. The
naive ``(1 − p_t)**γ`` gives NaN gradients here for γ < 1; a 150-digit mpmath reference gives the
true values, so a finite but wrong number fails as well.
"""

from __future__ import annotations

import itertools

import mp_reference
import numpy as np
import pytest
from helpers import CROSS_RTOL, REFERENCE_RTOL, assert_close

import focal

LOGITS = np.array([-1e4, -1e3, -100.0, -30.0, -17.0, -5.0, 0.0, 5.0, 17.0, 30.0, 100.0, 1e3, 1e4])
GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]
TARGETS = [0.0, 1.0, 0.3]


def _sigmoid_grid():
    x, y = np.meshgrid(LOGITS, TARGETS, indexing="ij")
    return x, y


def _softmax_grid():
    rows = [[v, 0.0, -v] for v in LOGITS] + [[v, v, -v] for v in LOGITS] + [[v, v - 40.0, 0.0] for v in LOGITS]
    z = np.array(rows)
    labels = np.arange(z.shape[0]) % 3
    return z, labels


def _mp_sigmoid(gamma, alpha):
    x, y = _sigmoid_grid()
    pairs = [mp_reference.sigmoid_focal(a, b, alpha, gamma) for a, b in zip(x.ravel(), y.ravel())]
    return np.array([p[0] for p in pairs]).reshape(x.shape), np.array([p[1] for p in pairs]).reshape(x.shape)


def _mp_softmax(gamma):
    z, labels = _softmax_grid()
    pairs = [mp_reference.softmax_focal(row, int(t), gamma) for row, t in zip(z, labels)]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


_MP_CACHE: dict = {}


def _mp(kind, gamma, alpha=None):
    key = (kind, gamma, alpha)
    if key not in _MP_CACHE:
        _MP_CACHE[key] = _mp_sigmoid(gamma, alpha) if kind == "sigmoid" else _mp_softmax(gamma)
    return _MP_CACHE[key]


def _assert_matches_mp(actual, expected, dtype, what):
    """float64: within 1e-12 of the true value (relative, with an absolute floor of 1e-300).
    float32: within 1e-5 relative, with a floor of the dtype's tiny where the true value underflows."""
    rtol, floor = (1e-12, 1e-300) if dtype == "float64" else (1e-5, 1e-37)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=floor, err_msg=what)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_sigmoid_extremes(lib, dtype, gamma):
    x, y = _sigmoid_grid()
    alpha = 0.25
    value, grad = focal.value_and_grad(focal.sigmoid_focal_loss)(
        lib.array(x, dtype), lib.array(y, dtype), alpha=alpha, gamma=gamma, reduction="none")
    value, grad = lib.numpy(value), lib.numpy(grad)
    assert np.isfinite(value).all() and np.isfinite(grad).all()
    true_value, true_grad = _mp("sigmoid", gamma, alpha)
    _assert_matches_mp(value, true_value, dtype, f"sigmoid value gamma={gamma}")
    _assert_matches_mp(grad, true_grad, dtype, f"sigmoid grad gamma={gamma}")
    if lib.autodiff:
        targets = lib.array(y, dtype)
        auto = lib.numpy(lib.grad(lambda v: lib.sum(focal.sigmoid_focal_loss(
            v, targets, alpha=alpha, gamma=gamma, reduction="none")), lib.array(x, dtype)))
        assert_close(auto, grad, CROSS_RTOL[dtype], "framework autodiff")


@pytest.mark.parametrize("gamma", GAMMAS)
def test_softmax_extremes(lib, dtype, gamma):
    z, labels = _softmax_grid()
    value, grad = focal.value_and_grad(focal.softmax_focal_loss)(
        lib.array(z, dtype), lib.array(labels), gamma=gamma, reduction="none")
    value, grad = lib.numpy(value), lib.numpy(grad)
    assert np.isfinite(value).all() and np.isfinite(grad).all()
    true_value, true_grad = _mp("softmax", gamma)
    _assert_matches_mp(value, true_value, dtype, f"softmax value gamma={gamma}")
    _assert_matches_mp(grad, true_grad, dtype, f"softmax grad gamma={gamma}")
    if lib.autodiff:
        targets = lib.array(labels)
        auto = lib.numpy(lib.grad(lambda v: lib.sum(focal.softmax_focal_loss(
            v, targets, gamma=gamma, reduction="none")), lib.array(z, dtype)))
        assert_close(auto, grad, CROSS_RTOL[dtype], "framework autodiff")


def test_naive_formula_really_fails_here():
    """The grid is a real test: the chain rule through the textbook ``(1 − p)**γ`` (what autodiff of
    torchvision's or optax's expression computes) is NaN in float32 at x ≥ 17 for γ = 0.5."""
    x = np.array([17.0, 30.0, 100.0], dtype=np.float32)
    gamma = np.float32(0.5)
    with np.errstate(all="ignore"):
        p = np.float32(1) / (np.float32(1) + np.exp(-x))
        one_minus_p = np.float32(1) - p
        d_modulator = gamma * one_minus_p ** (gamma - 1) * (-p * one_minus_p)
    assert np.isnan(d_modulator).all()
    value, grad = focal.value_and_grad(focal.sigmoid_focal_loss)(x, np.ones(3, np.float32), gamma=0.5,
                                                                  reduction="none")
    assert np.isfinite(grad).all() and np.all(grad <= 0)


def test_soft_target_modulator_does_not_underflow():
    """Soft y = 0.3 at x = ±1e4 still has 1 − p_t ≥ 0.3: the loss there is ~0.3^γ · |x| · α_t."""
    for (xv, gamma) in itertools.product([1e4, -1e4], GAMMAS):
        value = float(focal.sigmoid_focal_loss(np.array([xv]), np.array([0.3]), alpha=None, gamma=gamma,
                                               reduction="sum"))
        true, _ = mp_reference.sigmoid_focal(xv, 0.3, None, gamma)
        assert value == pytest.approx(true, rel=1e-12)


def _variant_grid():
    x, y = _sigmoid_grid()
    z, labels = _softmax_grid()
    soft_rows = np.abs(np.sin(np.arange(z.size).reshape(z.shape))) + 0.1
    soft_rows = soft_rows / soft_rows.sum(-1, keepdims=True)
    distances = (np.arange(z.shape[0]) % 3) * 0.9
    binary = [
        (focal.sigmoid_focal_loss, {"form": "split", "gamma": 0.5}),
        (focal.sigmoid_focal_loss, {"gamma": focal.flsd53}),
        (focal.sigmoid_focal_loss, {"gamma": [0.0, 0.5, 5.0]}),
        (focal.focal_loss_star, {}),
        (focal.hard_truncated_loss, {}),
        (focal.soft_truncated_loss, {"k": 2.0}),
        (focal.poly1_focal_loss, {"gamma": 0.5}),
        (focal.asymmetric_loss, {"gamma_pos": 0.5}),
        (focal.asymmetric_loss, {"clip": 0.0}),  # the fuzz run found its gradient NaN/inf once 1 − p underflowed
        (focal.quality_focal_loss, {}),
        (focal.varifocal_loss, {"gamma": 0.5}),
        (focal.focal_tversky_loss, {"activation": "sigmoid"}),
    ]
    rows = [
        (focal.softmax_focal_loss, {"gamma": [0.0, 0.5, 5.0]}, labels),
        (focal.softmax_focal_loss, {"gamma": focal.flsd53}, labels),
        (focal.softmax_focal_loss, {"gamma": 0.5}, soft_rows),
        (focal.softmax_focal_loss, {"reduced_threshold": 0.5, "gamma": 0.5}, labels),
        (focal.softmax_focal_loss, {"normalized": True, "gamma": 0.5}, labels),
        (focal.focal_loss_with_negatives, {"gamma": 0.5}, labels),
        (focal.focal_loss_with_negatives, {"activation": "sigmoid"}, soft_rows),
        (focal.hard_truncated_loss, {"activation": "softmax"}, labels),
        (focal.soft_truncated_loss, {"activation": "softmax"}, labels),
        (focal.poly1_focal_loss, {"activation": "softmax", "gamma": 0.5}, soft_rows),
        (focal.poly1_cross_entropy, {}, labels),
        (focal.distribution_focal_loss, {}, distances),
        (focal.focal_tversky_loss, {}, labels),
    ]
    return [(fn, kw, x, y) for fn, kw in binary] + [(fn, kw, z, t) for fn, kw, t in rows]


VARIANT_GRID = _variant_grid()


@pytest.mark.parametrize("index", range(len(VARIANT_GRID)))
def test_every_variant_finite_and_equal_at_extremes(lib, dtype, index):
    fn, kw, x, t = VARIANT_GRID[index]
    integer = t.dtype.kind == "i"
    value, grad = focal.value_and_grad(fn)(lib.array(x, dtype), lib.array(t, None if integer else dtype),
                                           reduction="sum", **kw)
    value, grad = lib.numpy(value), lib.numpy(grad)
    assert np.isfinite(value) and np.isfinite(grad).all(), f"{fn.__name__} {kw}"
    ref_value, ref_grad = focal.value_and_grad(fn)(x.astype(dtype), t if integer else t.astype(dtype),
                                                   reduction="sum", **kw)
    assert_close(value, ref_value, CROSS_RTOL[dtype], "value")
    assert_close(grad, ref_grad, CROSS_RTOL[dtype], "grad")


# a row whose winner leaves the others less than float32's smallest normal (a logit gap beyond 87):
# the dense-target losses need log(1 − p_winner) there, which log1mexp would floor at log(tiny)
GAP_X = np.array([[0.0, 100.0, 0.0, 10.0], [-53.7, 219.0, 51.7, 129.6], [0.3, 1.0, 0.2, 0.5]])
GAP_T = np.eye(4)[[3, 3, 0]]
DENSE = [(focal.focal_loss_with_negatives, {}), (focal.softmax_focal_loss, {"gamma": 0.5}),
         (focal.poly1_focal_loss, {"activation": "softmax"}), (focal.poly1_cross_entropy, {})]


@pytest.mark.parametrize("fn,kw", DENSE, ids=[f"{fn.__name__}" for fn, _ in DENSE])
def test_float32_dense_targets_past_the_smallest_normal_match_float64(lib, fn, kw):
    value, grad = focal.value_and_grad(fn)(lib.array(GAP_X, "float32"), lib.array(GAP_T, "float32"),
                                           reduction="none", **kw)
    expected_value, expected_grad = focal.value_and_grad(fn)(GAP_X, GAP_T, reduction="none", **kw)
    assert_close(lib.numpy(value), expected_value, REFERENCE_RTOL["float32"], "value")
    assert_close(lib.numpy(grad), expected_grad, REFERENCE_RTOL["float32"], "grad")
