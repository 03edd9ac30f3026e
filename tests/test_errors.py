"""Bad input: a clear error naming the argument, what it got and what was expected."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from libs import LIBS

import focal

RNG = np.random.default_rng(3)
X = RNG.normal(size=(4, 5))
Y = (RNG.random((4, 5)) > 0.5).astype(np.float64)
LABELS = np.array([0, 4, 2, 1])


def _raises(kind, *patterns):
    return pytest.raises(kind, match=".*".join(re.escape(p) for p in patterns))


SIGMOID_BAD = [
    (dict(logits=X.astype(np.int64)), TypeError, ("logits", "floating", "int64")),
    (dict(targets=Y[:, :3]), ValueError, ("targets", "(4, 3)", "(4, 5)")),
    (dict(targets=Y.astype(np.int64) * 2), ValueError, ("targets", "0 or 1", "got 2")),
    (dict(weight=-1.0), ValueError, ("weight", "[0, inf]", "-1.0")),
    (dict(weight=Y - 0.5), ValueError, ("weight", ">= 0", "-0.5")),
    (dict(gamma=-1.0), ValueError, ("gamma", "[0", "-1.0")),
    (dict(gamma=math.nan), ValueError, ("gamma",)),
    (dict(gamma="2"), TypeError, ("gamma", "real number")),
    (dict(alpha=1.5), ValueError, ("alpha", "[0, 1]", "1.5")),
    (dict(alpha=-0.1), ValueError, ("alpha", "[0, 1]")),
    (dict(reduction="avg"), ValueError, ("reduction", "'none', 'mean', 'sum'", "'avg'")),
    (dict(label_smoothing=1.0), ValueError, ("label_smoothing", "[0, 1)", "1.0")),
    (dict(normalizer=-2.0), ValueError, ("normalizer", "-2.0")),
    (dict(normalizer=2.0, reduction="none"), ValueError, ("normalizer", "reduction")),
    (dict(weight=np.ones((3, 5))), ValueError, ("weight", "(3, 5)", "(4, 5)")),
    (dict(logits=[[0.1, 0.2]]), TypeError, ("logits", "array", "list")),
    (dict(targets=Y.tolist()), TypeError, ("targets", "array", "list")),
]

SOFTMAX_BAD = [
    (dict(targets=np.array([0, 1, 2])), ValueError, ("targets", "(3,)", "(4,)", "axis=1")),
    (dict(targets=Y[:, :3]), ValueError, ("targets", "(4, 3)", "(4, 5)")),
    (dict(targets=np.array([0, 5, 1, 2])), ValueError, ("targets", "[0, 5)", "from 5 to 5")),
    (dict(targets=np.array([0, -1, 1, 7])), ValueError, ("targets", "[0, 5)", "from -1 to 7")),
    (dict(targets=np.array([0, -1, 1, 2]), ignore_index=-100), ValueError, ("outside [0, 5)", "ignore_index")),
    (dict(targets=LABELS > 1), ValueError, ("targets", "(4,)", "(4, 5)", "integer class indices of shape (4,)")),
    (dict(targets=np.eye(5, dtype=np.int64)[LABELS] * 3), ValueError, ("targets", "0 or 1", "one-hot", "3")),
    (dict(alpha=[0.25] * 4), ValueError, ("alpha", "(4,)", "(5,)", "one weight per class")),
    (dict(alpha=[0.25, 0.5, -1.2, 0.1, 0.1]), ValueError, ("alpha[2]", "[0, inf)", "-1.2")),
    (dict(alpha=np.array([0.25, 0.5, -1.2, 0.1, 0.1])), ValueError, ("alpha", ">= 0", "got -1.2")),
    (dict(alpha=np.array([0.25, 0.5, np.inf, 0.1, 0.1])), ValueError, ("alpha", "finite")),
    (dict(gamma=[2.0] * 4), ValueError, ("gamma", "(4,)", "(5,)", "one γ per class")),
    (dict(gamma=[2.0, 1.0, -1.0, 0.0, 3.0]), ValueError, ("gamma", "[0", "-1.0")),
    (dict(reduced_threshold=1.5), ValueError, ("reduced_threshold", "1.5")),
    (dict(normalized=True, targets=np.eye(5)[[0, 4, 2, 1]]), TypeError, ("targets", "integer")),
    (dict(alpha=2.0), ValueError, ("alpha", "[0, 1]")),
    (dict(axis=2), ValueError, ("axis=2", "2 dimensions")),
    (dict(axis=1.0), TypeError, ("axis", "int")),
    (dict(ignore_index=0.5), TypeError, ("ignore_index", "int")),
    (dict(gamma=-0.5), ValueError, ("gamma",)),
    (dict(logits=X.astype(np.int32)), TypeError, ("logits", "floating")),
    (dict(weight=np.ones(5)), ValueError, ("weight", "(5,)", "(4,)")),
]


@pytest.mark.parametrize("bad,kind,patterns", SIGMOID_BAD, ids=[str(i) for i in range(len(SIGMOID_BAD))])
def test_sigmoid_bad_input(bad, kind, patterns):
    args = {"logits": X, "targets": Y, **bad}
    with _raises(kind, *patterns):
        focal.sigmoid_focal_loss(args.pop("logits"), args.pop("targets"), **args)


@pytest.mark.parametrize("bad,kind,patterns", SOFTMAX_BAD, ids=[str(i) for i in range(len(SOFTMAX_BAD))])
def test_softmax_bad_input(bad, kind, patterns):
    args = {"logits": X, "targets": LABELS, "axis": 1, **bad}
    with _raises(kind, *patterns):
        focal.softmax_focal_loss(args.pop("logits"), args.pop("targets"), **args)


@pytest.mark.parametrize("lib", [lib for lib in LIBS if lib.name != "numpy"], ids=lambda lib: lib.id)
def test_two_libraries(lib):
    with _raises(TypeError, "targets", "pass arrays of one library"):
        focal.sigmoid_focal_loss(X, lib.array(Y))
    with _raises(TypeError, "weight", "pass arrays of one library"):
        focal.sigmoid_focal_loss(X, Y, weight=lib.array(Y))
    with _raises(TypeError, "alpha", "pass arrays of one library"):
        focal.softmax_focal_loss(X, LABELS, alpha=lib.array(np.full(5, 0.5)))


@pytest.mark.parametrize("lib", LIBS, ids=lambda lib: lib.id)
def test_labels_out_of_range_eagerly(lib):
    with _raises(ValueError, "targets", "outside [0, 5)", "from 9 to 9"):
        focal.softmax_focal_loss(lib.array(X), lib.array(np.array([0, 9, 2, 1])))


@pytest.mark.x64
@pytest.mark.parametrize("lib", [lib for lib in LIBS if lib.autodiff], ids=lambda lib: lib.id)
def test_labels_out_of_range_when_traced_are_nan_for_those_rows_only(lib):
    """Inside jax.jit / tf.function / torch.compile values cannot be checked: the bad rows are NaN."""
    labels = lib.array(np.array([0, 9, 2, -3]))
    per_row = lib.numpy(lib.compile(lambda x: focal.softmax_focal_loss(x, labels, reduction="none"))(lib.array(X)))
    grad = lib.numpy(lib.compile(lambda x: lib.grad(
        lambda v: focal.softmax_focal_loss(v, labels, reduction="sum"), x))(lib.array(X)))
    assert np.isfinite(per_row[[0, 2]]).all() and np.isnan(per_row[[1, 3]]).all()
    assert np.isfinite(grad[[0, 2]]).all() and np.isnan(grad[[1, 3]]).all()
    expected = focal.softmax_focal_loss(X[[0, 2]], np.array([0, 2]), reduction="none")
    np.testing.assert_allclose(per_row[[0, 2]], expected, rtol=1e-10)


def test_value_and_grad_takes_focal_losses_only():
    with _raises(TypeError, "value_and_grad", "focal loss"):
        focal.value_and_grad(np.sum)


def test_empty_and_all_ignored_give_zero():
    for reduction in ("mean", "sum"):
        value, grad = focal.value_and_grad(focal.sigmoid_focal_loss)(np.zeros((0, 3)), np.zeros((0, 3)),
                                                                     reduction=reduction)
        assert float(value) == 0.0 and grad.shape == (0, 3)
        value, grad = focal.value_and_grad(focal.softmax_focal_loss)(X, np.full(4, -100), ignore_index=-100,
                                                                     reduction=reduction)
        assert float(value) == 0.0 and np.all(grad == 0.0)
