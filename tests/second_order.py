"""The second-order cases every framework's tests share: logits from saturated to tied, hard and soft targets, every
loss at several focusing parameters, and the Hessian of the mean loss as central differences of the core's analytic
gradient (NumPy, float64), independent of any framework's autodiff."""

from __future__ import annotations

import numpy as np
import pytest

import focal

GAMMAS = (0.0, 0.5, 1.0, 2.0)
# the rows of a summed loss are diagonal blocks of its Hessian: saturated (±100, ±50), ties, zeros (a
# zero-initialised head), moderate logits, the target at each row's maximum, minimum and in between; none on a
# loss's kink (ASL's clip at p = 0.05; QFL's |y − p| at p = y, off its 0.55; the hard truncation's at p_t = 0.5 is
# moved off 0 and off the ties by HARD_TRUNCATION_SHIFT)
X = np.array([[100., -100., 0.3], [50., -50., 3.], [60., -40., 0.1], [-100., 100., 100.],
              [20., -20., 1.5], [-0.7, 0.2, 35.], [-100., -100., -100.], [-50., 50.5, -2.0],
              [60., -40., 0.], [-40., 60., 0.], [0., -40., 60.], [100., 0., -100.], [30., 29., -30.],
              [0., 0., 0.], [-60., 40., 0.2], [40., -60., 0.2]])
HARD_TRUNCATION_SHIFT = np.array([0.25, 0.5, 0.75])
HARD = np.tile([[1., 0., 1.], [0., 1., 1.], [1., 1., 0.], [0., 0., 1.]], (4, 1))
SOFT = np.tile([[0.3, 0.7, 0.55], [0.9, 0.1, 0.2], [0.6, 0.4, 0.8], [0.25, 0.05, 0.95]], (4, 1))
LABELS = np.array([0, 1, 2, 0, 1, 2, 1, 0, 0, 1, 2, 1, 0, 2, 1, 0])
ROWS = np.exp(np.tile([[0.1, 2., -1.], [1., 1., 1.], [0., 3., 0.], [2., 0., 0.]], (4, 1))
              * np.arange(1, 17)[:, None] / 8)
ROWS = ROWS / ROWS.sum(axis=1, keepdims=True)
DISTANCES = np.tile([0.5, 1.25, 1.9, 0.1], 4)
TARGETS = {"binary": {"hard": HARD, "soft": SOFT}, "binary-hard": {"hard": HARD}, "labels": {"hard": LABELS},
           "classes": {"hard": LABELS, "soft": ROWS}, "distances": {"hard": DISTANCES}}


def losses() -> list[tuple[str, object, dict, str]]:
    """(id, loss, parameters, kind of targets): every loss at each focusing parameter of GAMMAS; their options
    (α, label smoothing, pos_weight, the normalised and reduced forms) at two."""
    out = []
    for g in GAMMAS:
        out += [
            (f"sigmoid-g{g}", focal.sigmoid_focal_loss, {"gamma": g}, "binary"),
            (f"sigmoid-split-g{g}", focal.sigmoid_focal_loss, {"gamma": g, "form": "split"}, "binary"),
            (f"poly1-sigmoid-g{g}", focal.poly1_focal_loss, {"gamma": g}, "binary"),
            (f"asl-g{g}", focal.asymmetric_loss, {"gamma_pos": g, "gamma_neg": g}, "binary"),
            (f"qfl-b{g}", focal.quality_focal_loss, {"beta": g}, "binary"),
            (f"vfl-g{g}", focal.varifocal_loss, {"gamma": g}, "binary"),
            (f"asl-softmax-g{g}", focal.softmax_asymmetric_loss, {"gamma_pos": g, "gamma_neg": g}, "labels"),
            (f"softmax-g{g}", focal.softmax_focal_loss, {"gamma": g}, "classes"),
            (f"poly1-softmax-g{g}", focal.poly1_focal_loss, {"gamma": g, "activation": "softmax", "alpha": None},
             "classes"),
            (f"negatives-g{g}", focal.focal_loss_with_negatives, {"gamma": g}, "classes"),
            (f"negatives-sigmoid-g{g}", focal.focal_loss_with_negatives, {"gamma": g, "activation": "sigmoid"},
             "classes"),
        ]
        if g in (0.5, 2.0):
            out += [
                (f"sigmoid-options-g{g}", focal.sigmoid_focal_loss,
                 {"gamma": g, "alpha": 0.4, "label_smoothing": 0.1, "pos_weight": 2.0}, "binary"),
                (f"softmax-options-g{g}", focal.softmax_focal_loss,
                 {"gamma": g, "alpha": [0.2, 0.5, 1.0], "label_smoothing": 0.1}, "classes"),
                (f"softmax-normalized-g{g}", focal.softmax_focal_loss, {"gamma": g, "normalized": True}, "labels"),
                (f"softmax-reduced-g{g}", focal.softmax_focal_loss, {"gamma": g, "reduced_threshold": 0.3},
                 "labels"),
            ]
        if g > 0:  # FL* divides by γ; focal Tversky's γ is an exponent of (1 − TI) that must be > 0 at TI = 1
            out += [
                (f"star-g{g}", focal.focal_loss_star, {"gamma": g}, "binary-hard"),
                (f"tversky-g{g}", focal.focal_tversky_loss, {"gamma": g}, "classes"),
                (f"tversky-sigmoid-g{g}", focal.focal_tversky_loss, {"gamma": g, "activation": "sigmoid"}, "binary"),
            ]
    return out + [
        ("hard-truncated", focal.hard_truncated_loss, {}, "binary"),
        ("hard-truncated-softmax", focal.hard_truncated_loss, {"activation": "softmax"}, "classes"),
        ("soft-truncated", focal.soft_truncated_loss, {"k": 1.5}, "binary"),
        ("soft-truncated-softmax", focal.soft_truncated_loss, {"k": 1.5, "activation": "softmax"}, "classes"),
        ("poly1-ce", focal.poly1_cross_entropy, {}, "classes"),
        ("dfl", focal.distribution_focal_loss, {}, "distances"),
    ]


CASES = [pytest.param(fn, params, TARGETS[kind], id=case) for case, fn, params, kind in losses()]


def logits_for(fn) -> np.ndarray:
    """X, moved off the hard truncation's kink for that loss."""
    return X + HARD_TRUNCATION_SHIFT if fn is focal.hard_truncated_loss else X


def targets_as(jnp, t: np.ndarray, dtype: str):
    """Class indices stay integers; every other target takes the logits' dtype."""
    return jnp.asarray(t) if t.dtype.kind == "i" else jnp.asarray(t, dtype=dtype)


def central_differences(fn, params, x: np.ndarray, t: np.ndarray, step: float = 1e-5) -> np.ndarray:
    """The Hessian of the mean loss as central differences of its analytic gradient, in float64."""
    grad = focal.value_and_grad(fn)
    n = x.size
    out = np.zeros((n, n))
    for i in range(n):
        bump = np.zeros(n)
        bump[i] = step
        up = grad(x + bump.reshape(x.shape), t, **params)[1]
        down = grad(x - bump.reshape(x.shape), t, **params)[1]
        out[:, i] = (np.asarray(up) - np.asarray(down)).ravel() / (2 * step)
    return out


# the options whose gradient differs, on logits with a row of ties (a zero-initialised head's)
RNG = np.random.default_rng(17)
OPT_X = RNG.normal(size=(6, 4)) * 2
OPT_X[0] = 0.0  # a zero-initialised head's row: every tie at once
OPT_LABELS = np.array([0, 3, -100, 1, 2, 3])
OPT_BINARY = (RNG.random((6, 4)) > 0.5).astype(np.float64)
OPT_BINARY[2, 1] = -1.0  # ignore_index
ROW_MASK = np.array([True, True, False, True, True, True])
OPTIONS = [
    ("softmax ignore_index", focal.softmax_focal_loss, OPT_LABELS, {"ignore_index": -100}),
    ("softmax where", focal.softmax_focal_loss, np.abs(OPT_LABELS) % 4, {"where": ROW_MASK}),
    ("softmax normalizer", focal.softmax_focal_loss, np.abs(OPT_LABELS) % 4, {"normalizer": 2.5}),
    ("softmax per-class gamma", focal.softmax_focal_loss, np.abs(OPT_LABELS) % 4, {"gamma": [0.5, 1.0, 2.0, 3.0]}),
    ("softmax smoothing, per-class alpha", focal.softmax_focal_loss, np.abs(OPT_LABELS) % 4,
     {"label_smoothing": 0.2, "alpha": [0.1, 0.2, 0.3, 0.4]}),
    ("sigmoid ignore_index", focal.sigmoid_focal_loss, OPT_BINARY, {"ignore_index": -1.0}),
    ("sigmoid weight, normalizer", focal.sigmoid_focal_loss, np.abs(OPT_BINARY),
     {"weight": ROW_MASK[:, None] * 1.5, "normalizer": 3.0}),
    ("sigmoid pos_weight, gamma 0.5", focal.sigmoid_focal_loss, np.abs(OPT_BINARY),
     {"pos_weight": [1.0, 2.0, 3.0, 0.5], "gamma": 0.5}),
    ("sigmoid sum", focal.sigmoid_focal_loss, np.abs(OPT_BINARY), {"reduction": "sum"}),
]
