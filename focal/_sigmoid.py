"""Sigmoid focal loss (binary and multi-label): the public function over the binary kernels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._binary import (
    FocalSpec,
    binary_gamma,
    binary_pos_weight,
    check_alpha_scalar,
    focal_pt_kernel,
    focal_split_kernel,
    plan_binary,
)
from ._checks import check_flag
from ._docs import document
from ._plan import LossPlan, plans
from .backends._base import Array


@document
def sigmoid_focal_loss(
    logits: Array,
    targets: Array,
    *,
    alpha: float | None = 0.25,
    gamma: float | Sequence[float] | Array | Any = 2.0,
    reduction: str = "mean",
    weight: Array | float | None = None,
    normalizer: Array | float | None = None,
    label_smoothing: float = 0.0,
    from_logits: bool = True,
    form: str = "pt",
    ignore_index: float | None = None,
    pos_weight: float | Sequence[float] | Array | None = None,
    detach_modulator: bool = False,
) -> Array:
    r"""Sigmoid focal loss for binary and multi-label classification (Lin et al., 2017).

    .. math::

        p = \sigma(x),\quad p_t = y p + (1-y)(1-p),\quad \alpha_t = \alpha y + (1-\alpha)(1-y)

        \text{form="pt"}:\quad \mathrm{FL}(x, y) = \alpha_t\,(1-p_t)^\gamma\,\mathrm{BCE}(x, y)

        \text{form="split"}:\quad \mathrm{FL}(x, y) = -\alpha y (1-p)^\gamma \log p
            - (1-\alpha)(1-y) p^\gamma \log(1-p)

    The two forms are equal for hard labels (the paper's ``−α_t (1 − p_t)^γ log p_t``). For soft
    targets ``y ∈ (0, 1)`` "pt" (torchvision, optax) weights the whole BCE by ``(1 − p_t)^γ``, while
    "split" (seed 003's L_fl, seed 004, kornia's ``binary_focal_loss_with_logits``) weights each side.

    Args:
        logits: real floating array of any shape, of any supported library (NumPy, JAX, PyTorch,
            TensorFlow, CuPy, any array-API library). float16/bfloat16 are computed in float32.
        targets: same shape as ``logits``: floating (hard 0/1 or soft, in [0, 1]), or integer or bool 0/1
            labels (read as floats); a NumPy array beside another library's logits is moved to it.
        alpha: weight of the positive class in [0, 1]; ``None`` (no weighting) is ``α_t = 1``.
            Default 0.25, the paper's.
        gamma: focusing parameter ``γ ≥ 0``; 0 gives (α-weighted) binary cross entropy. Default 2.
            Also a per-class vector (along the last axis) or :data:`focal.flsd53`.
        reduction: ``"none"`` (per element), ``"mean"`` (over all elements) or ``"sum"``.
        weight: elementwise weights broadcastable to ``logits`` (multiplied before reducing;
            ``"mean"`` still divides by the number of elements).
        normalizer: divide the sum by ``max(normalizer, eps)`` instead (mmdet's ``avg_factor``,
            e.g. the number of positive anchors); with ``"mean"`` or ``"sum"``.
        label_smoothing: ``y ← y (1 − ls) + ls / 2``, in [0, 1).
        from_logits: ``False`` takes probabilities, clipped to ``[eps, 1 − eps]``.
        form: ``"pt"`` (default) or ``"split"``, as above.
        ignore_index: a target value (e.g. -100 or 255) whose elements give 0 and are left out of the
            mean's count (kornia's ``ignore_index`` counts them in its mean). Default None.
        pos_weight: scales the positive term, as in ``torch.nn.BCEWithLogitsLoss`` and kornia: a
            number or an array ``>= 0`` that broadcasts against the logits (``(C,)`` for one per class
            along the last axis; kornia's ``(C,)`` along dim 1 is ``pos_weight[:, None, None]`` for
            ``(N, C, H, W)``). "pt" form: ``BCE = −(w y log p + (1 − y) log(1 − p))``. Default None.
        detach_modulator: compute the modulating factor from the logits held constant
            (``stop_gradient``/``detach``), as timm's ``disable_torch_grad_focal_loss``
            does for its focal weights: the loss's value is unchanged; its derivatives w.r.t. the logits,
            of every order, treat ``(1 − p_t)^γ`` (form "split": ``(1 − p)^γ`` and ``p^γ``) as a constant (``d/dx =
            α_t (1 − p_t)^γ (p − y)`` for hard labels); those w.r.t. γ, α and float targets still go through it.
            Default False (the loss's true gradient).

    Returns:
        An array of the input's library, device and dtype: the reduced loss, or the per-element
        loss for ``reduction="none"``. Its gradient w.r.t. ``logits`` (through ``jax.grad``,
        ``torch.autograd``, ``tf.GradientTape``) is the analytic one, finite for every finite logit
        and every ``γ ≥ 0``. Float targets that require a gradient get theirs, analytic too.

    Matching other libraries (each checked by a test where it installs):
        torchvision ``sigmoid_focal_loss(x, y, alpha, gamma, reduction)`` and optax
        ``sigmoid_focal_loss(x, y, alpha, gamma)``: the same call (optax's per-element result is our
        ``reduction="none"``; torchvision's and fvcore's ``alpha=-1`` is our ``alpha=None``). Keras
        ``BinaryFocalCrossentropy(apply_class_balancing=True, alpha, gamma, from_logits=True)`` is our
        ``reduction="none"`` averaged over the last axis. MONAI ``FocalLoss(alpha, gamma)`` (sigmoid)
        is our ``reduction="none"``. kornia ``binary_focal_loss_with_logits`` is ``form="split"``.
        torchvision, fvcore and older optax releases give NaN gradients for 0 < γ < 1 once p_t
        rounds to 1; ours stay finite.

    References:
        Lin, Goyal, Girshick, He, Dollár. Focal Loss for Dense Object Detection. ICCV 2017.
    """
    return _plan_sigmoid_focal(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction, weight=weight,
                               normalizer=normalizer, label_smoothing=label_smoothing, from_logits=from_logits,
                               form=form, ignore_index=ignore_index, pos_weight=pos_weight,
                               detach_modulator=detach_modulator).loss()


@plans(sigmoid_focal_loss)
def _plan_sigmoid_focal(
    logits: Array, targets: Array, *, alpha: Any, gamma: Any, reduction: str, weight: Any, normalizer: Any,
    label_smoothing: Any, from_logits: bool, form: str, ignore_index: Any, pos_weight: Any, detach_modulator: bool,
) -> LossPlan:
    if form not in ("pt", "split"):
        raise ValueError(f"form must be 'pt' or 'split', got {form!r}")
    detach = check_flag("detach_modulator", detach_modulator)
    kernel = focal_pt_kernel if form == "pt" else focal_split_kernel
    return plan_binary(kernel, lambda call: FocalSpec(alpha=check_alpha_scalar(call, alpha),
                                                      gamma=binary_gamma(call, gamma),
                                                      pos_weight=binary_pos_weight(call, pos_weight),
                                                      detach=detach),
                       logits, targets, reduction=reduction, weight=weight, normalizer=normalizer,
                       from_logits=from_logits, label_smoothing=label_smoothing, ignore_index=ignore_index)
