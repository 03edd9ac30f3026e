"""``python -m focal plot``: loss and gradient against p_t, the paper's Figure 1 for any variant.

Every curve is computed by the package's own functions (NumPy, float64): a positive example
(``y = 1``) with logit ``x = log(p_t / (1 − p_t))``, its loss, and ``−∂L/∂x`` from
``focal.value_and_grad``. Needs matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import focal

# variant: (the function, fixed parameters, its γ parameter or None when it has none)
VARIANTS: dict[str, tuple[Callable[..., Any], dict[str, Any], str | None]] = {
    "sigmoid_focal_loss": (focal.sigmoid_focal_loss, {"alpha": None}, "gamma"),
    "focal_loss_star": (focal.focal_loss_star, {}, "gamma"),
    "poly1_focal_loss": (focal.poly1_focal_loss, {"alpha": None}, "gamma"),
    "asymmetric_loss": (focal.asymmetric_loss, {"clip": 0.0}, "gamma_pos"),
    "hard_truncated_loss": (focal.hard_truncated_loss, {}, None),
    "soft_truncated_loss": (focal.soft_truncated_loss, {}, None),
}
DEFAULT_GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)  # Lin et al., Figure 1


def curves(variant: str, gamma: float | None, p_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(loss, −∂L/∂x)`` of a positive example at each ``p_t``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    fn, params, gamma_name = VARIANTS[variant]
    if gamma_name is not None and gamma is not None:
        params = {**params, gamma_name: gamma}
    x = np.log(p_t) - np.log1p(-p_t)
    loss, grad = focal.value_and_grad(fn)(x, np.ones_like(x), reduction="none", **params)
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
        has_gamma = VARIANTS.get(variant, (None, None, "gamma"))[2] is not None
        for gamma in (gammas if has_gamma else (None,)):
            loss, neg_grad = curves(variant, gamma, p_t)
            label = variant if gamma is None else f"{variant}, γ={gamma:g}"
            left.plot(p_t, loss, label=label)
            right.plot(p_t, neg_grad, label=label)
    left.set(xlabel="probability of the ground-truth class, $p_t$", ylabel="loss", ylim=(0, 5),
             title="loss of a positive example")
    right.set(xlabel="$p_t$", ylabel=r"$-\partial L/\partial x$", ylim=(0, None),
              title="gradient w.r.t. the logit")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
