"""``python -m focal plot``: loss and gradient against p_t, the paper's Figure 1 for any variant.

Every curve is computed by the package's own functions (NumPy, float64): one example whose
ground-truth class has probability ``p_t``, its loss, and ``−∂L/∂x_t`` (``x_t`` the logit of the
ground-truth class) from ``focal.value_and_grad``. Needs matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import focal


@dataclass(frozen=True)
class Curve:
    """How one variant is drawn.

    ``knob`` is the parameter that ``--gamma`` sets (its focusing parameter, whatever its name), or
    None; ``example`` says how ``p_t`` becomes inputs: ``"positive"`` (a logit ``x_t``, target 1),
    ``"negative"`` (target 0, logit ``−x_t``: varifocal's focal side), ``"softmax"`` (two classes,
    logits ``[x_t, 0]``, label 0), ``"bins"`` (two DFL bins ``[x_t, 0]``, distance 0) or ``"region"``
    (focal Tversky: one pixel of a foreground class).
    """

    fn: Callable[..., Any]
    knob: str | None
    example: str = "positive"
    params: dict[str, Any] = field(default_factory=dict)


VARIANTS: dict[str, Curve] = {
    "sigmoid_focal_loss": Curve(focal.sigmoid_focal_loss, "gamma", params={"alpha": None}),
    "softmax_focal_loss": Curve(focal.softmax_focal_loss, "gamma", "softmax"),
    "focal_loss_with_negatives": Curve(focal.focal_loss_with_negatives, "gamma", "softmax", {"alpha": None}),
    "focal_loss_star": Curve(focal.focal_loss_star, "gamma"),
    "hard_truncated_loss": Curve(focal.hard_truncated_loss, None),
    "soft_truncated_loss": Curve(focal.soft_truncated_loss, "k"),
    "poly1_focal_loss": Curve(focal.poly1_focal_loss, "gamma", params={"alpha": None}),
    "poly1_cross_entropy": Curve(focal.poly1_cross_entropy, "epsilon", "softmax"),
    "asymmetric_loss": Curve(focal.asymmetric_loss, "gamma_pos", params={"clip": 0.0}),
    "softmax_asymmetric_loss": Curve(focal.softmax_asymmetric_loss, "gamma_pos", "softmax", {"label_smoothing": 0.0}),
    "quality_focal_loss": Curve(focal.quality_focal_loss, "beta"),
    "varifocal_loss": Curve(focal.varifocal_loss, "gamma", "negative", {"alpha": 1.0}),
    "distribution_focal_loss": Curve(focal.distribution_focal_loss, None, "bins"),
    "focal_tversky_loss": Curve(focal.focal_tversky_loss, "gamma", "region", {"activation": "sigmoid"}),
}
DEFAULT_GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)  # Lin et al., Figure 1


def curves(variant: str, gamma: float | None, p_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(loss, −∂L/∂x_t)`` of one example at each ``p_t``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    curve = VARIANTS[variant]
    params = dict(curve.params)
    if curve.knob is not None and gamma is not None:
        params[curve.knob] = gamma
    x_t = np.log(p_t) - np.log1p(-p_t)
    value_and_grad = focal.value_and_grad(curve.fn)
    if curve.example == "positive":
        loss, grad = value_and_grad(x_t, np.ones_like(x_t), reduction="none", **params)
    elif curve.example == "negative":
        loss, grad = value_and_grad(-x_t, np.zeros_like(x_t), reduction="none", **params)
        grad = -grad
    elif curve.example == "region":  # each p_t its own class, so the per-class losses are independent
        loss, grad = value_and_grad(x_t[None, :], np.ones((1, x_t.size)), reduction="none", **params)
        grad = grad[0]
    else:
        pair = np.stack([x_t, np.zeros_like(x_t)], axis=-1)  # softmax of [x_t, 0] is σ(x_t) = p_t
        targets = np.zeros(x_t.shape, dtype=np.int64 if curve.example == "softmax" else np.float64)
        loss, grad = value_and_grad(pair, targets, reduction="none", **params)
        grad = grad[:, 0]
    return np.asarray(loss), -np.asarray(grad)


def plot(path: str, variants: Sequence[str] = ("sigmoid_focal_loss",),
         gammas: Sequence[float] = DEFAULT_GAMMAS) -> str:
    """Write the PNG; return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p_t = np.linspace(0.001, 0.999, 999)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for variant in variants:
        knob = VARIANTS[variant].knob if variant in VARIANTS else "gamma"
        symbol = {"gamma": "γ", "gamma_pos": "γ+", "k": "K", "beta": "β", "epsilon": "ε"}.get(knob or "", "")
        for gamma in (gammas if knob is not None else (None,)):
            loss, neg_grad = curves(variant, gamma, p_t)
            label = variant if gamma is None else f"{variant}, {symbol}={gamma:g}"
            left.plot(p_t, loss, label=label)
            right.plot(p_t, neg_grad, label=label)
    left.set(xlabel="probability of the ground-truth class, $p_t$", ylabel="loss", ylim=(0, 5),
             title="loss")
    right.set(xlabel="$p_t$", ylabel=r"$-\partial L/\partial x_t$", ylim=(0, None),
              title="gradient w.r.t. the ground-truth logit")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
