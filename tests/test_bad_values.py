"""NaN logits stay in their own elements; empty and all-ignored batches give 0 loss, 0 gradient and no
warnings. On every library, through ``value_and_grad`` and the framework's own autodiff."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import assert_close
from libs import LIBS

import focal

pytestmark = pytest.mark.x64  # float64 data, compared to 1e-12: JAX in 64-bit mode
RNG = np.random.default_rng(31)
X = RNG.normal(size=(5, 4)) * 3
BINARY = (RNG.random((5, 4)) > 0.6).astype(np.float64)
LABELS = np.array([0, 3, 1, 2, 1])
NAN_AT = (1, 2)  # the poisoned logit: row 1 (label 3), class 2

# (function, targets, params, elementwise): elementwise losses put the NaN in one element, row losses in one row
VARIANTS = [
    (focal.sigmoid_focal_loss, BINARY, {"gamma": 2.0}, True),
    (focal.sigmoid_focal_loss, BINARY, {"gamma": 0.5, "form": "split"}, True),
    (focal.focal_loss_star, BINARY, {}, True),
    (focal.asymmetric_loss, BINARY, {}, True),
    (focal.softmax_focal_loss, LABELS, {"gamma": 2.0, "alpha": [0.2, 0.4, 0.6, 0.8]}, False),
    (focal.softmax_focal_loss, np.eye(4)[LABELS], {"gamma": 0.5}, False),
    (focal.poly1_cross_entropy, LABELS, {}, False),
    (focal.focal_loss_with_negatives, LABELS, {}, False),
    (focal.hard_truncated_loss, BINARY, {}, True),
    (focal.hard_truncated_loss, LABELS, {"activation": "softmax"}, False),
    (focal.soft_truncated_loss, BINARY, {}, True),
    (focal.varifocal_loss, BINARY * 0.7, {}, True),
    (focal.quality_focal_loss, BINARY * 0.7, {}, True),
    (focal.poly1_focal_loss, BINARY, {}, True),
    (focal.distribution_focal_loss, np.array([0.5, 2.5, 1.0, 0.2, 3.0]), {}, False),
]
IDS = ["sigmoid", "sigmoid-split", "star", "asl", "softmax-labels", "softmax-dense", "poly1-ce", "negatives",
       "hard-truncated", "hard-truncated-softmax", "soft-truncated", "varifocal", "quality", "poly1-focal", "dfl"]
# one loss per class over the batch, so not in the per-element NaN test; nothing counted and no smoothing is 0/0
EMPTY = VARIANTS + [(focal.focal_tversky_loss, LABELS, {"smooth": 0.0}, False)]


def _grad(lib, fn, x, t, params):
    """The gradient of the summed loss by the library's autodiff, or ``value_and_grad`` without one."""
    if lib.autodiff:
        return lib.numpy(lib.grad(lambda v: fn(v, t, reduction="sum", **params), x))
    return lib.numpy(focal.value_and_grad(fn)(x, t, reduction="sum", **params)[1])


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("fn,targets,params,elementwise", VARIANTS, ids=IDS)
def test_a_nan_logit_poisons_its_own_element_only(lib, fn, targets, params, elementwise, poison):
    """NaN makes its element (row) NaN; ±inf makes it whatever the limit gives, inf or NaN; the others
    keep their values either way."""
    poisoned = X.copy()
    poisoned[NAN_AT] = poison
    x, t = lib.array(poisoned), lib.array(targets)
    loss = lib.numpy(fn(x, t, reduction="none", **params))
    grad = _grad(lib, fn, x, t, params)
    expected_loss = fn(X, targets, reduction="none", **params)
    _, expected_grad = focal.value_and_grad(fn)(X, targets, reduction="sum", **params)
    bad_loss = np.zeros(loss.shape, bool)
    bad_grad = np.zeros(grad.shape, bool)
    if elementwise:
        bad_loss[NAN_AT] = bad_grad[NAN_AT] = True
    else:
        bad_loss[NAN_AT[0]] = bad_grad[NAN_AT[0]] = True
    if np.isnan(poison):
        assert np.isnan(loss[bad_loss]).all() and np.isnan(grad[bad_grad]).any()
    assert_close(loss[~bad_loss], expected_loss[~bad_loss], 1e-12, "the other elements' loss")
    assert_close(grad[~bad_grad], expected_grad[~bad_grad], 1e-12, "the other elements' gradient")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("fn,targets,params,elementwise", EMPTY, ids=IDS + ["tversky-unsmoothed"])
def test_an_empty_batch_is_zero_loss_and_zero_gradient_without_warnings(lib, fn, targets, params, elementwise,
                                                                          reduction):
    empty_targets = np.asarray(targets)[:0]
    x, t = lib.array(X[:0]), lib.array(empty_targets)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = focal.value_and_grad(fn)(x, t, reduction=reduction, **params)
        assert float(lib.numpy(value)) == 0.0 and lib.numpy(grad).shape == (0, 4)
        if lib.autodiff:
            assert lib.numpy(lib.grad(lambda v: fn(v, t, reduction=reduction, **params), x)).shape == (0, 4)


@pytest.mark.parametrize("fn", [focal.softmax_focal_loss, focal.poly1_cross_entropy, focal.focal_tversky_loss],
                         ids=["softmax", "poly1-ce", "tversky"])
def test_an_all_ignored_batch_is_zero_loss_and_zero_gradient_without_warnings(lib, fn):
    x, t = lib.array(X), lib.array(np.full(5, -100))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = focal.value_and_grad(fn)(x, t, ignore_index=-100)
        assert float(lib.numpy(value)) == 0.0
        assert_close(lib.numpy(grad), np.zeros(X.shape), 1e-12, "gradient")
        if lib.autodiff:
            assert_close(lib.numpy(lib.grad(lambda v: fn(v, t, ignore_index=-100), x)), np.zeros(X.shape), 1e-12,
                         "framework gradient")


# the losses over a class axis, with probability targets: over no classes every sum is empty
NO_CLASSES = [
    (focal.softmax_focal_loss, {"gamma": 2.0, "alpha": 0.25}),
    (focal.softmax_focal_loss, {"label_smoothing": 0.1}),
    (focal.softmax_focal_loss, {"where": np.zeros((5, 0), bool)}),
    (focal.poly1_cross_entropy, {"epsilon": 2.0}),
    (focal.focal_loss_with_negatives, {}),
    (focal.hard_truncated_loss, {"activation": "softmax"}),
    (focal.soft_truncated_loss, {"activation": "softmax"}),
]


@pytest.mark.parametrize("fn,params", NO_CLASSES,
                         ids=["softmax", "softmax-smoothed", "softmax-where", "poly1-ce", "negatives",
                              "hard-truncated", "soft-truncated"])
def test_no_classes_is_zero_loss_per_row_and_an_empty_gradient(lib, fn, params):
    """A class axis of length 0 with probability targets (what ``x[mask]`` gives when the mask is all False:
    optax's own PolyLoss test hits it one time in 32) is an empty sum, 0 per row, as optax computes it; the
    framework's ``max`` over no classes is never reached."""
    x, t = lib.array(np.zeros((5, 0))), lib.array(np.zeros((5, 0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        per_row = lib.numpy(fn(x, t, reduction="none", **params))
        value, grad = focal.value_and_grad(fn)(x, t, reduction="mean", **params)
    assert_close(per_row.reshape(-1), np.zeros(per_row.size), 0.0, "loss per row")
    assert float(lib.numpy(value)) == 0.0 and lib.numpy(grad).shape == (5, 0)
    if lib.autodiff:
        assert lib.numpy(lib.grad(lambda v: fn(v, t, reduction="sum", **params), x)).shape == (5, 0)


def test_no_classes_with_class_indices_is_an_error_naming_the_axis():
    with pytest.raises(ValueError, match=r"0 classes along axis=1 \(shape \(5, 0\)\): integer class indices"):
        focal.softmax_focal_loss(np.zeros((5, 0)), np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="0 classes along axis=1"):
        focal.poly1_cross_entropy(np.zeros((5, 0)), np.full(5, -100), axis=1, ignore_index=-100)


EXTREMES = np.array([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, 745.0, -745.0, 1e-320, 88.0, -88.0, 30.0])


@pytest.mark.parametrize("lib", [lib for lib in LIBS if lib.name in ("numpy", "array_api_strict")],
                         ids=lambda lib: lib.id)
@pytest.mark.parametrize("fn,targets,params,elementwise", EMPTY, ids=IDS + ["tversky-unsmoothed"])
def test_no_runtime_warning_from_focal_on_any_input(lib, fn, targets, params, elementwise):
    """NumPy's ``RuntimeWarning: invalid value`` (and overflow, divide) never comes from focal's own arithmetic:
    every loss, its value and its gradient, on logits holding NaN, ±inf, ±1e308, subnormals and saturating values
    (the NaN/inf rules still hold: tests above)."""
    logits = np.resize(EXTREMES, X.size).reshape(X.shape)
    x, t = lib.array(logits), lib.array(targets)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for reduction in ("none", "mean"):
            fn(x, t, reduction=reduction, **params)
            focal.value_and_grad(fn)(x, t, reduction=reduction, **params)
