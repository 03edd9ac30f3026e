"""Identities between variants that must hold exactly (to rounding), on every library."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import CROSS_RTOL, assert_close

import focal

RNG = np.random.default_rng(5)
X = RNG.normal(size=(7, 5)) * 3
HARD = (RNG.random((7, 5)) > 0.6).astype(np.float64)
SOFT = RNG.random((7, 5))
LABELS = RNG.integers(0, 5, size=7)
ONEHOT = np.eye(5)[LABELS]


def _both(lib, dtype, fn, t, **kw):
    value, grad = focal.value_and_grad(fn)(lib.array(X, dtype), lib.array(t, None if t.dtype.kind == "i" else dtype),
                                           **kw)
    return lib.numpy(value), lib.numpy(grad)


def _same(lib, dtype, left, right):
    for a, b, what in zip(left, right, ("value", "grad")):
        assert_close(a, b, CROSS_RTOL[dtype], what)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_gamma0_is_cross_entropy_and_split_equals_pt_on_hard_labels(lib, dtype, gamma):
    _same(lib, dtype, _both(lib, dtype, focal.sigmoid_focal_loss, HARD, gamma=gamma, form="split"),
          _both(lib, dtype, focal.sigmoid_focal_loss, HARD, gamma=gamma, form="pt"))
    if gamma == 0.0:
        p = 1 / (1 + np.exp(-X))
        bce = -(HARD * np.log(p) + (1 - HARD) * np.log(1 - p))
        value, _ = _both(lib, dtype, focal.sigmoid_focal_loss, HARD, gamma=0.0, alpha=None)
        assert_close(value, bce.mean(), 10 * CROSS_RTOL[dtype], "gamma=0 is BCE")
        log_p = X - np.log(np.exp(X).sum(-1, keepdims=True))
        value, _ = _both(lib, dtype, focal.softmax_focal_loss, LABELS, gamma=0.0)
        assert_close(value, -log_p[np.arange(7), LABELS].mean(), 10 * CROSS_RTOL[dtype], "gamma=0 is CE")


def test_split_differs_from_pt_on_soft_labels():
    pt = focal.sigmoid_focal_loss(X, SOFT, reduction="none")
    split = focal.sigmoid_focal_loss(X, SOFT, form="split", reduction="none")
    assert np.max(np.abs(pt - split)) > 1e-2


def test_soft_truncated_k1_is_split_focal_gamma1(lib, dtype):
    for t in (HARD, SOFT):
        _same(lib, dtype, _both(lib, dtype, focal.soft_truncated_loss, t, k=1.0),
              _both(lib, dtype, focal.sigmoid_focal_loss, t, form="split", gamma=1.0, alpha=None))


def test_focal_star_gamma1_beta0_is_cross_entropy(lib, dtype):
    _same(lib, dtype, _both(lib, dtype, focal.focal_loss_star, HARD, gamma=1.0, beta=0.0),
          _both(lib, dtype, focal.sigmoid_focal_loss, HARD, gamma=0.0, alpha=None))


def test_negatives_with_sigmoid_is_split_focal_on_one_hot(lib, dtype):
    for t in (LABELS, ONEHOT):
        _same(lib, dtype, _both(lib, dtype, focal.focal_loss_with_negatives, t, activation="sigmoid", reduction="sum"),
              _both(lib, dtype, focal.sigmoid_focal_loss, ONEHOT, form="split", reduction="sum"))


def test_poly1_ce_with_epsilon0_and_poly1_focal_gamma0(lib, dtype):
    _same(lib, dtype, _both(lib, dtype, focal.poly1_cross_entropy, LABELS, epsilon=0.0),
          _both(lib, dtype, focal.softmax_focal_loss, LABELS, gamma=0.0))
    _same(lib, dtype, _both(lib, dtype, focal.poly1_focal_loss, LABELS, epsilon=1.5, gamma=0.0, alpha=None,
                            activation="softmax"),
          _both(lib, dtype, focal.poly1_cross_entropy, LABELS, epsilon=1.5))


def test_integer_labels_equal_their_one_hot(lib, dtype):
    for fn, kw in [(focal.softmax_focal_loss, {"gamma": 0.5, "alpha": [0.2, 1.0, 0.5, 0.3, 2.0]}),
                   (focal.softmax_focal_loss, {"gamma": [1.0, 2.0, 0.0, 0.5, 3.0]}),
                   (focal.poly1_cross_entropy, {}), (focal.focal_loss_with_negatives, {}),
                   (focal.focal_tversky_loss, {})]:
        _same(lib, dtype, _both(lib, dtype, fn, LABELS, **kw), _both(lib, dtype, fn, ONEHOT, **kw))


def test_hard_truncated_margin_bounds(lib, dtype):
    """m = 1 never truncates (plain CE); m = 0 truncates every sample (p_t > 0 always)."""
    _same(lib, dtype, _both(lib, dtype, focal.hard_truncated_loss, HARD, margin=1.0),
          _both(lib, dtype, focal.sigmoid_focal_loss, HARD, gamma=0.0, alpha=None))
    value, grad = _both(lib, dtype, focal.hard_truncated_loss, HARD, margin=0.0)
    assert value == 0.0 and np.all(grad == 0.0)


def test_class_balanced_alpha():
    counts = np.array([1000.0, 100.0, 10.0, 1.0])
    w = focal.class_balanced_alpha(counts, beta=0.99)
    expected = (1 - 0.99) / (1 - 0.99 ** counts)
    np.testing.assert_allclose(w, expected * 4 / expected.sum(), rtol=1e-12)
    assert np.all(np.diff(w) > 0) and w.sum() == pytest.approx(4.0)
    np.testing.assert_allclose(focal.class_balanced_alpha([3, 5], beta=0.0), [1.0, 1.0])
    with pytest.raises(ValueError, match="counts must be >= 1"):
        focal.class_balanced_alpha(np.array([0.0, 2.0]))
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\)"):
        focal.class_balanced_alpha([1, 2], beta=1.0)


def test_class_balanced_alpha_keeps_the_library(lib):
    w = focal.class_balanced_alpha(lib.array(np.array([10.0, 2.0, 1.0])))
    assert lib.is_native(w)
    np.testing.assert_allclose(lib.numpy(w), focal.class_balanced_alpha([10.0, 2.0, 1.0]), rtol=1e-6)
