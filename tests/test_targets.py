"""What the peers' users pass as targets: integer and bool 0/1 targets read as floats, integer one-hot or
multi-hot targets for the softmax losses, NumPy targets beside any library's logits; and float targets that
require a gradient get the analytic one (``requires_grad``, ``jax.grad`` w.r.t. the targets, a tape watching
them, a ``tf.Variable``), checked against float64 central differences of the loss, on every framework."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close
from libs import AUTODIFF_LIBS, LIBS

import focal

RNG = np.random.default_rng(41)
X = RNG.normal(size=(6, 4)) * 2.5
HARD = (RNG.random((6, 4)) > 0.5).astype(np.float64)
SOFT = RNG.uniform(0.05, 0.95, size=(6, 4))  # inside (0, 1): the central differences stay in the domain
LABELS = np.array([0, 3, 1, 2, 1, 0])
ROWS = RNG.dirichlet(np.ones(4) * 2.0, size=6) * 0.9 + 0.025  # every entry inside (0, 1)
DISTANCES = np.array([0.3, 1.7, 2.5, 2.9, 0.05, 1.45])  # 4 bins: distances in [0, 3], none an integer
WHERE = np.ones((6, 4), bool)
WHERE[[1, 4], 2] = False

# (id, loss, parameters, targets): the targets are float, of the loss's kind
GRADIENT_CASES = [
    ("sigmoid", focal.sigmoid_focal_loss, {}, SOFT),
    ("sigmoid-gamma0.5-noalpha", focal.sigmoid_focal_loss, {"gamma": 0.5, "alpha": None, "reduction": "sum"}, SOFT),
    ("sigmoid-options", focal.sigmoid_focal_loss,
     {"gamma": 1.5, "pos_weight": [0.5, 1.0, 2.0, 3.0], "label_smoothing": 0.1, "weight": SOFT[::-1]}, SOFT),
    ("sigmoid-gamma-vector", focal.sigmoid_focal_loss, {"gamma": [0.0, 0.5, 2.0, 3.0]}, SOFT),
    ("sigmoid-split", focal.sigmoid_focal_loss, {"form": "split", "gamma": 1.0}, SOFT),
    ("sigmoid-probabilities", focal.sigmoid_focal_loss, {"from_logits": False}, SOFT),
    ("poly1-sigmoid", focal.poly1_focal_loss, {"epsilon": 1.0}, SOFT),
    ("asl", focal.asymmetric_loss, {}, SOFT),
    ("asl-no-clip", focal.asymmetric_loss, {"clip": 0.0, "gamma_pos": 1.0}, SOFT),
    ("qfl", focal.quality_focal_loss, {}, SOFT),
    ("qfl-beta0.5", focal.quality_focal_loss, {"beta": 0.5}, SOFT),
    ("vfl", focal.varifocal_loss, {}, SOFT),
    ("star", focal.focal_loss_star, {"alpha": 0.25}, SOFT),
    ("hard-truncated", focal.hard_truncated_loss, {"margin": 0.7}, SOFT),
    ("soft-truncated", focal.soft_truncated_loss, {"k": 2.0}, SOFT),
    ("softmax", focal.softmax_focal_loss, {}, ROWS),
    ("softmax-options", focal.softmax_focal_loss,
     {"alpha": [0.2, 0.4, 0.6, 0.8], "gamma": [0.5, 1.0, 2.0, 3.0], "label_smoothing": 0.1}, ROWS),
    ("softmax-reduced", focal.softmax_focal_loss, {"reduced_threshold": 0.3, "gamma": 1.0}, ROWS),
    ("softmax-where", focal.softmax_focal_loss, {"where": WHERE}, ROWS),
    ("softmax-probabilities", focal.softmax_focal_loss, {"from_logits": False, "reduction": "sum"}, ROWS),
    ("poly1-softmax", focal.poly1_focal_loss, {"activation": "softmax", "alpha": None}, ROWS),
    ("poly1-ce", focal.poly1_cross_entropy, {"epsilon": 2.0}, ROWS),
    ("negatives", focal.focal_loss_with_negatives, {}, ROWS),
    ("negatives-sigmoid", focal.focal_loss_with_negatives, {"activation": "sigmoid"}, SOFT),
    ("soft-truncated-softmax", focal.soft_truncated_loss, {"activation": "softmax"}, ROWS),
    ("hard-truncated-softmax", focal.hard_truncated_loss, {"activation": "softmax", "margin": 0.4}, ROWS),
    ("tversky", focal.focal_tversky_loss, {}, ROWS),
    ("tversky-sigmoid", focal.focal_tversky_loss, {"activation": "sigmoid", "gamma": 1.5}, SOFT),
    ("dfl", focal.distribution_focal_loss, {}, DISTANCES),
]


def _inputs(fn, params) -> np.ndarray:
    """The logits, or probabilities where the case takes them (``from_logits=False``)."""
    if params.get("from_logits", True):
        return X
    if fn is focal.softmax_focal_loss:
        return np.exp(X) / np.exp(X).sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-X))


def central_differences(fn, params, x: np.ndarray, t: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """d(summed loss)/d(targets) by central differences of the loss itself, NumPy float64."""
    def total(v):
        return float(np.sum(fn(x, v, **params)))
    out = np.zeros(t.shape)
    for index in np.ndindex(t.shape):
        bump = np.zeros(t.shape)
        bump[index] = step
        out[index] = (total(t + bump) - total(t - bump)) / (2 * step)
    return out


def framework_gradient(lib, fn, params, x: np.ndarray, t: np.ndarray, dtype: str) -> np.ndarray:
    """The gradient of the summed loss w.r.t. the targets, by the framework's own autodiff."""
    logits = lib.array(x, dtype)
    native = {k: lib.array(v, dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
              for k, v in params.items()}
    if lib.name == "jax":
        grad = lib.jax.grad(lambda v: lib.jnp.sum(fn(logits, v, **native)))(lib.array(t, dtype))
    elif lib.name == "torch":
        targets = lib.array(t, dtype).requires_grad_(True)
        fn(logits, targets, **native).sum().backward()
        grad = targets.grad
    else:
        tf = lib.xp
        targets = tf.Variable(lib.array(t, dtype))  # a variable: the tape watches it by itself
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(fn(logits, targets, **native))
        grad = tape.gradient(loss, targets)
    assert grad is not None, "no gradient w.r.t. the targets"
    return lib.numpy(grad)


@pytest.mark.parametrize("name,fn,params,t", GRADIENT_CASES, ids=[c[0] for c in GRADIENT_CASES])
def test_target_gradient_is_the_central_difference(autodiff_lib, dtype, name, fn, params, t):
    x = _inputs(fn, params)
    x32 = x.astype(dtype).astype(np.float64)
    t32 = t.astype(dtype).astype(np.float64)
    expected = central_differences(fn, params, x32, t32)
    got = framework_gradient(autodiff_lib, fn, params, x32, t32, dtype)
    assert_close(got, expected, 1e-6 if dtype == "float64" else 3e-4, f"{name}: d loss / d targets")


@pytest.mark.parametrize("lib", AUTODIFF_LIBS, ids=lambda lib: lib.id)
def test_target_gradient_compiled(lib):
    """Under ``jax.jit``, ``tf.function(jit_compile=True)`` and ``torch.compile``: the same gradients."""
    for fn, params, t in [(focal.sigmoid_focal_loss, {"gamma": 0.5}, SOFT), (focal.softmax_focal_loss, {}, ROWS)]:
        expected = central_differences(fn, {**params, "reduction": "sum"}, X, t)
        logits = lib.array(X, "float32")
        if lib.name == "jax":
            grad_of = lib.jax.jit(lib.jax.grad(lambda v: fn(logits, v, reduction="sum", **params)))
            grad = grad_of(lib.array(t, "float32"))
        elif lib.name == "torch":
            targets = lib.array(t, "float32").requires_grad_(True)
            lib.compile(lambda u, v: fn(u, v, reduction="sum", **params))(logits, targets).backward()
            grad = targets.grad
        else:
            tf = lib.xp

            @tf.function(jit_compile=True)
            def grad_of(v):
                with tf.GradientTape() as tape:
                    tape.watch(v)
                    loss = fn(logits, v, reduction="sum", **params)
                return tape.gradient(loss, v)

            grad = grad_of(lib.array(t, "float32"))
        assert_close(lib.numpy(grad), expected, 3e-4, f"{fn.__name__} compiled")


def test_ignored_targets_get_zero_gradient(autodiff_lib):
    lib = autodiff_lib
    t = np.where(RNG.random(SOFT.shape) < 0.3, -1.0, SOFT)
    params = {"ignore_index": -1.0, "gamma": 0.5}
    grad = framework_gradient(lib, focal.sigmoid_focal_loss, params, X, t, "float32")
    assert np.all(grad[t == -1.0] == 0.0) and np.all(grad[t != -1.0] != 0.0)


@pytest.mark.x64
def test_the_conventions_where_the_loss_has_a_kink_in_its_targets():
    """VFL jumps between its branches at q = 0: there the gradient is the q > 0 branch's limit, BCE(x, 0).
    DFL is piecewise linear in y: at an integer y the right derivative (the segment [y, y + 1]), at y = n the
    left one."""
    torch = pytest.importorskip("torch")
    x = torch.tensor(X)
    q = torch.zeros(X.shape, dtype=torch.float64, requires_grad=True)
    focal.varifocal_loss(x, q, reduction="sum").backward()
    assert_close(q.grad.numpy(), np.logaddexp(0.0, X), 1e-12, "VFL at q = 0")
    y = torch.tensor([0.0, 1.0, 2.0, 3.0, 3.0, 1.0], dtype=torch.float64, requires_grad=True)
    focal.distribution_focal_loss(x, y, reduction="sum").backward()
    log_s = X - np.log(np.exp(X).sum(axis=1, keepdims=True))
    low = np.minimum(y.detach().numpy(), 2).astype(int)
    assert_close(y.grad.numpy(), log_s[np.arange(6), low] - log_s[np.arange(6), low + 1], 1e-12, "DFL at integers")


INTEGER_CASES = [
    ("sigmoid", focal.sigmoid_focal_loss, {}), ("asl", focal.asymmetric_loss, {}),
    ("qfl", focal.quality_focal_loss, {}), ("vfl", focal.varifocal_loss, {}), ("star", focal.focal_loss_star, {}),
    ("hard-truncated", focal.hard_truncated_loss, {}), ("soft-truncated", focal.soft_truncated_loss, {}),
    ("poly1", focal.poly1_focal_loss, {}), ("sigmoid-ignore", focal.sigmoid_focal_loss, {"ignore_index": 255}),
]


@pytest.mark.parametrize("name,fn,params", INTEGER_CASES, ids=[c[0] for c in INTEGER_CASES])
def test_integer_and_bool_targets_are_float_labels(lib, name, fn, params):
    hard = HARD.copy()
    if "ignore_index" in params:
        hard[0, :2] = 255
    expected = fn(X, hard, reduction="none", **params)
    logits = lib.array(X)
    for dtype in ("int64", "int32", "uint8") + (("bool",) if "ignore_index" not in params else ()):
        got = fn(logits, lib.array(hard.astype(dtype)), reduction="none", **params)
        assert_close(lib.numpy(got), expected, 1e-5, f"{dtype} targets")


def test_integer_one_hot_targets_of_the_softmax_losses(lib):
    """An integer (or bool) array of the logits' shape is one-hot or multi-hot; of the rows' shape, class indices."""
    onehot = np.eye(4, dtype=np.int64)[LABELS]
    multi = onehot.copy()
    multi[0, 1] = 1
    logits = lib.array(X)
    for fn, params in [(focal.softmax_focal_loss, {}), (focal.poly1_cross_entropy, {}),
                       (focal.focal_loss_with_negatives, {}), (focal.focal_tversky_loss, {}),
                       (focal.hard_truncated_loss, {"activation": "softmax"})]:
        from_labels = lib.numpy(fn(logits, lib.array(LABELS), **params))
        for dtype in ("int64", "uint8", "bool"):
            got = lib.numpy(fn(logits, lib.array(onehot.astype(dtype)), **params))
            assert_close(got, from_labels, 1e-5, f"{fn.__name__} {dtype} one-hot")
        assert_close(lib.numpy(fn(logits, lib.array(multi), **params)),
                     fn(X, multi.astype(np.float64), **params), 1e-5, f"{fn.__name__} multi-hot")
    assert_close(lib.numpy(focal.distribution_focal_loss(logits, lib.array(np.array([0, 3, 1, 2, 2, 0])))),
                 focal.distribution_focal_loss(X, np.array([0.0, 3.0, 1.0, 2.0, 2.0, 0.0])), 1e-5, "DFL")


@pytest.mark.parametrize("lib", [lib for lib in LIBS if lib.name != "numpy"], ids=lambda lib: lib.id)
def test_numpy_values_beside_any_library(lib):
    """NumPy arrays for the targets and for every hyperparameter and weight: constants moved to the logits'
    library, dtype and device, as lists are; the same numbers as the library's own arrays."""
    logits = lib.array(X, "float32")
    calls = [
        (focal.sigmoid_focal_loss, HARD, {"alpha": np.float64(0.3), "gamma": np.array([0.5, 1.0, 2.0, 3.0]),
                                          "weight": SOFT, "normalizer": np.array(3.0),
                                          "pos_weight": np.array([1.0, 2.0, 0.5, 1.0])}),
        (focal.softmax_focal_loss, LABELS, {"alpha": np.array([0.1, 0.2, 0.3, 0.4]), "weight": np.ones(6),
                                            "gamma": np.array(1.5), "where": WHERE}),
        (focal.softmax_focal_loss, ROWS, {"label_smoothing": np.array(0.1)}),
    ]
    for fn, t, params in calls:
        native = {k: lib.array(v, None if v.dtype.kind == "b" else "float32") if isinstance(v, np.ndarray) and v.ndim
                  else v for k, v in params.items()}
        targets = lib.array(t) if t.dtype.kind == "i" else lib.array(t, "float32")
        expected = lib.numpy(fn(logits, targets, **native))
        got = fn(logits, t, **params)
        assert lib.is_native(got) and lib.on_device(got)
        assert_close(lib.numpy(got), expected, 1e-6, fn.__name__)
