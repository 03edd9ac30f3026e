"""Sigmoid focal loss (binary and multi-label): the kernel and its public function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import _checks
from ._numerics import log_sigmoid_pair, tiny
from ._plan import BoundKernel, Call, FromProbabilities, LossPlan, plans
from .backends._base import Array


@dataclass(frozen=True)
class SigmoidFocalSpec:
    alpha: float | None
    gamma: float
    label_smoothing: float


def sigmoid_focal_kernel(xp: Any, x: Array, y: Array, spec: SigmoidFocalSpec) -> tuple[Array, Array]:
    """Per-element loss ``α_t (1 − p_t)^γ BCE(x, y)`` and its derivative w.r.t. ``x``.

    ``log(1 − p_t)`` is exact for hard labels (it is ``log σ(∓x)``) and, for soft ``y``, computed from
    ``y(1 − p) + (1 − y)p``, which is at least ``min(y, 1 − y)/2`` and so never underflows. The
    derivative of the modulating factor, ``γ (1 − 2y) (1 − p_t)^(γ−1) p (1 − p)``, is evaluated as
    one ``exp`` of a sum of logs whose exponent is ≤ 0: finite for γ < 1 at saturated logits.
    """
    if spec.label_smoothing:
        y = y * (1.0 - spec.label_smoothing) + spec.label_smoothing / 2.0
    log_p, log_q = log_sigmoid_pair(xp, x)
    p, q = xp.exp(log_p), xp.exp(log_q)
    bce = -(y * log_p + (1.0 - y) * log_q)
    # p − y written as (1 − y)p − y(1 − p), with 1 − p = exp(log σ(−x)): no cancellation as p → 1
    loss, grad = bce, (1.0 - y) * p - y * q
    gamma = spec.gamma
    if gamma != 0.0:
        soft = xp.log(xp.maximum(y * q + (1.0 - y) * p, tiny(xp, x)))
        log_1m_pt = xp.where(y == 1.0, log_q, xp.where(y == 0.0, log_p, soft))
        modulator = xp.exp(gamma * log_1m_pt)
        dmodulator = gamma * (1.0 - 2.0 * y) * xp.exp((gamma - 1.0) * log_1m_pt + log_p + log_q)
        loss = modulator * bce
        grad = modulator * grad + bce * dmodulator
    if spec.alpha is not None:
        alpha_t = spec.alpha * y + (1.0 - spec.alpha) * (1.0 - y)
        loss, grad = alpha_t * loss, alpha_t * grad
    return loss, grad


def sigmoid_focal_loss(
    logits: Array,
    targets: Array,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
    weight: Array | float | None = None,
    normalizer: Array | float | None = None,
    label_smoothing: float = 0.0,
    from_logits: bool = True,
) -> Array:
    r"""Sigmoid focal loss for binary and multi-label classification (Lin et al., 2017).

    .. math::

        p = \sigma(x),\quad p_t = y p + (1-y)(1-p),\quad \alpha_t = \alpha y + (1-\alpha)(1-y)

        \mathrm{FL}(x, y) = \alpha_t\,(1-p_t)^\gamma\,\mathrm{BCE}(x, y),\qquad
        \mathrm{BCE}(x, y) = -y\log p - (1-y)\log(1-p)

    For hard labels this is the paper's ``−α_t (1 − p_t)^γ log p_t``; soft targets ``y ∈ [0, 1]``
    use this "p_t" form (as torchvision and optax), not kornia's split form.

    Args:
        logits: real floating array of any shape, of any supported library (NumPy, JAX, PyTorch,
            TensorFlow, CuPy, any array-API library). float16/bfloat16 are computed in float32.
        targets: same shape as ``logits``, floating or bool, values in [0, 1] (hard or soft).
        alpha: weight of the positive class in [0, 1]; ``None`` (no weighting) is ``α_t = 1``.
            Default 0.25, the paper's.
        gamma: focusing parameter ``γ ≥ 0``; 0 gives (α-weighted) binary cross entropy. Default 2.
        reduction: ``"none"`` (per element), ``"mean"`` (over all elements) or ``"sum"``.
        weight: elementwise weights broadcastable to ``logits`` (multiplied before reducing;
            ``"mean"`` still divides by the number of elements).
        normalizer: divide the sum by ``max(normalizer, eps)`` instead (mmdet's ``avg_factor``,
            e.g. the number of positive anchors); with ``"mean"`` or ``"sum"``.
        label_smoothing: ``y ← y (1 − ls) + ls / 2``, in [0, 1).
        from_logits: ``False`` takes probabilities, clipped to ``[eps, 1 − eps]``.

    Returns:
        An array of the input's library, device and dtype: the reduced loss, or the per-element
        loss for ``reduction="none"``. Its gradient w.r.t. ``logits`` (through ``jax.grad``,
        ``torch.autograd``, ``tf.GradientTape``) is the analytic one, finite for every finite logit
        and every ``γ ≥ 0``. Targets get no gradient.

    References:
        Lin, Goyal, Girshick, He, Dollár. Focal Loss for Dense Object Detection. ICCV 2017.
    """
    return _plan_sigmoid_focal(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction, weight=weight,
                               normalizer=normalizer, label_smoothing=label_smoothing, from_logits=from_logits).loss()


@plans(sigmoid_focal_loss)
def _plan_sigmoid_focal(
    logits: Array, targets: Array, *, alpha: Any, gamma: Any, reduction: str, weight: Any, normalizer: Any,
    label_smoothing: Any, from_logits: bool,
) -> LossPlan:
    call = Call(logits, targets, reduction=reduction, weight=weight, normalizer=normalizer)
    xp = call.xp
    _checks.check_shape("targets", targets.shape, call.shape, "sigmoid losses take one target per logit")
    if not xp.isdtype(targets.dtype, ("real floating", "bool")):
        raise TypeError(
            f"targets must be floating or bool (hard 0/1 or soft labels in [0, 1]), got {targets.dtype}; "
            "cast integer labels to the logits' dtype"
        )
    spec = SigmoidFocalSpec(
        alpha=None if alpha is None else _checks.check_number("alpha", alpha, low=0.0, high=1.0),
        gamma=_checks.check_gamma(gamma),
        label_smoothing=_checks.check_number("label_smoothing", label_smoothing, low=0.0, high=1.0, high_open=True),
    )
    kernel: Any = BoundKernel(sigmoid_focal_kernel, spec)
    if not from_logits:
        kernel = FromProbabilities(kernel, "sigmoid")
    return LossPlan(call, kernel, aux=(call.cast(targets),), expand_axis=None)
