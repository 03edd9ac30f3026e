"""Properties every variant must have, on random data drawn by hypothesis, on every library.

Non-negativity, γ monotonicity, shift invariance of the softmax losses, integer labels equal to their
one-hot targets, the variants' identities, and the analytic gradient against central differences.
The examples are derandomised (the same in every run, see conftest.py); ``--hypothesis-profile=long``
draws many more.
"""

from __future__ import annotations

import numpy as np
import pytest
from bad_inputs import FAMILIES, LABELS_ONLY
from helpers import CROSS_RTOL, assert_close
from hypothesis import assume, given
from hypothesis import strategies as st

import focal

pytestmark = pytest.mark.x64  # float64 batches held to float64 tolerances: JAX in 64-bit mode

ENTRIES = [(fn, fixed, family) for family, members in FAMILIES.items() for fn, fixed in members
           if family != "dfl"]
ENTRY_IDS = [f"{fn.__name__}{'-softmax' if fixed else ''}" for fn, fixed, _ in ENTRIES]
SOFTMAX = [(fn, fixed) for fn, fixed, family in ENTRIES if family == "softmax"]
SOFTMAX_IDS = [f"{fn.__name__}{'-softmax' if fixed else ''}" for fn, fixed in SOFTMAX]
# the losses that take dense targets too (softmax_asymmetric_loss takes integer labels alone: its weights read them)
DENSE = [(fn, fixed) for fn, fixed in SOFTMAX if fn.__name__ not in LABELS_ONLY]
# soft targets where the loss is defined for them; the others take 0/1
SOFT = {focal.sigmoid_focal_loss, focal.asymmetric_loss, focal.quality_focal_loss, focal.varifocal_loss,
        focal.soft_truncated_loss, focal.poly1_focal_loss}


@st.composite
def batches(draw, family: str, soft: bool = False):
    """(logits, targets) in float64: 1 or 4 rows of 2 or 5 classes (few shapes: JAX compiles each one
    once), logits within ±30 at one of four scales."""
    rows, classes = draw(st.sampled_from([1, 4])), draw(st.sampled_from([2, 5]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 5.0, 30.0]))
    x = np.clip(rng.normal(size=(rows, classes)) * scale, -30, 30)
    if family == "softmax":
        return x, rng.integers(0, classes, size=rows)
    targets = rng.random((rows, classes)) if soft else (rng.random((rows, classes)) > 0.6).astype(np.float64)
    return x, targets


def _loss(lib, fn, x, t, **kw):
    targets = lib.array(t) if t.dtype.kind == "i" else lib.array(t, "float64")
    return lib.numpy(fn(lib.array(x, "float64"), targets, **kw))


@pytest.mark.parametrize("fn,fixed,family", ENTRIES, ids=ENTRY_IDS)
@given(data=st.data())
def test_losses_are_non_negative(lib, fn, fixed, family, data):
    x, t = data.draw(batches(family, soft=fn in SOFT))
    loss = _loss(lib, fn, x, t, reduction="none", **fixed)
    assert np.all(loss >= -1e-12), loss


@pytest.mark.parametrize("fn", [focal.sigmoid_focal_loss, focal.softmax_focal_loss, focal.poly1_focal_loss],
                         ids=lambda fn: fn.__name__)
@given(data=st.data(), gammas=st.lists(st.floats(0.0, 6.0), min_size=2, max_size=2, unique=True))
def test_a_larger_gamma_never_raises_the_focal_loss(lib, fn, data, gammas):
    x, t = data.draw(batches("sigmoid" if fn is not focal.softmax_focal_loss else "softmax"))
    kw = {"epsilon": 0.0} if fn is focal.poly1_focal_loss else {}
    low, high = sorted(gammas)
    at_low = _loss(lib, fn, x, t, gamma=low, reduction="none", **kw)
    at_high = _loss(lib, fn, x, t, gamma=high, reduction="none", **kw)
    assert np.all(at_high <= at_low * (1 + 1e-12) + 1e-300)


# seed 003's softmax soft-truncated loss weighs by σ(−K z_t) of the raw logit: not shift invariant by design
SHIFT_INVARIANT = [(fn, fixed) for fn, fixed in SOFTMAX if fn is not focal.soft_truncated_loss]


@pytest.mark.parametrize("fn,fixed", SHIFT_INVARIANT, ids=[f"{fn.__name__}{'-softmax' if fixed else ''}"
                                                            for fn, fixed in SHIFT_INVARIANT])
@given(data=st.data(), shift=st.floats(-50.0, 50.0))
def test_softmax_losses_ignore_a_constant_added_to_a_row(lib, fn, fixed, data, shift):
    x, t = data.draw(batches("softmax"))
    shifts = shift * np.arange(1, x.shape[0] + 1)[:, None] / x.shape[0]  # a different constant per row
    assert_close(_loss(lib, fn, x + shifts, t, reduction="none", **fixed),
                 _loss(lib, fn, x, t, reduction="none", **fixed), 1e-9, "shifted rows")


@pytest.mark.parametrize("fn,fixed", DENSE, ids=[f"{fn.__name__}{'-softmax' if fixed else ''}" for fn, fixed in DENSE])
@given(data=st.data())
def test_integer_labels_equal_their_one_hot_targets(lib, fn, fixed, data):
    x, labels = data.draw(batches("softmax"))
    onehot = np.eye(x.shape[1])[labels]
    for reduction in ("none", "mean"):
        assert_close(_loss(lib, fn, x, labels, reduction=reduction, **fixed),
                     _loss(lib, fn, x, onehot, reduction=reduction, **fixed), CROSS_RTOL["float64"], reduction)


@given(data=st.data(), k=st.floats(0.0, 4.0))
def test_soft_truncated_with_k1_is_split_focal_with_gamma1(lib, data, k):
    x, t = data.draw(batches("sigmoid", soft=True))
    assert_close(_loss(lib, focal.soft_truncated_loss, x, t, k=1.0, reduction="none"),
                 _loss(lib, focal.sigmoid_focal_loss, x, t, form="split", gamma=1.0, alpha=None, reduction="none"),
                 CROSS_RTOL["float64"], "k=1")


@pytest.mark.parametrize("fn,fixed,family", ENTRIES, ids=ENTRY_IDS)
@given(data=st.data())
def test_the_gradient_is_the_central_difference(lib, fn, fixed, family, data):
    x, t = data.draw(batches(family, soft=fn in SOFT))
    x = np.clip(x, -8, 8)  # central differences need curvature they can resolve
    if fn is focal.hard_truncated_loss:  # the loss jumps where p_t crosses the margin 0.5: keep away from it
        assume(np.all(np.abs(_p_t(x, t, family) - 0.5) > 1e-4))
    targets = lib.array(t) if t.dtype.kind == "i" else lib.array(t, "float64")
    _, grad = focal.value_and_grad(fn)(lib.array(x, "float64"), targets, reduction="sum", **fixed)
    h = 1e-6
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = h
        numeric[i] = (_loss(lib, fn, x + step, t, reduction="sum", **fixed)
                      - _loss(lib, fn, x - step, t, reduction="sum", **fixed)) / (2 * h)
    kinked = fn is focal.asymmetric_loss  # its clipped probability has a kink the difference may straddle
    np.testing.assert_allclose(lib.numpy(grad), numeric, rtol=1e-5, atol=1e-6 if not kinked else 1e-3)


def _p_t(x: np.ndarray, t: np.ndarray, family: str) -> np.ndarray:
    if family == "softmax":
        p = np.exp(x - x.max(axis=1, keepdims=True))
        return (p / p.sum(axis=1, keepdims=True))[np.arange(len(t)), t]
    p = 1.0 / (1.0 + np.exp(-x))
    return t * p + (1 - t) * (1 - p)
