"""Dense-detection losses of the GFL/VarifocalNet family: QFL, VFL and DFL."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import _checks
from ._binary import QualitySpec, VarifocalSpec, plan_binary, quality_focal_kernel, varifocal_kernel
from ._categorical import _at_labels, _onehot
from ._docs import document
from ._hyper import TARGETS, Slot, take_partials
from ._kernel import FromProbabilities, Grads, Wanted, broadcast_vjp
from ._numerics import scale_in_place, softmax_parts
from ._plan import Call, LossPlan, plans
from .backends._base import Array


@document
def quality_focal_loss(
    logits: Array, targets: Array, *, beta: float = 2.0, reduction: str = "mean",
    weight: Array | float | None = None, normalizer: Array | float | None = None, from_logits: bool = True,
    ignore_index: float | None = None,
) -> Array:
    r"""Quality focal loss (GFL, Li et al. 2020): ``|y − σ(x)|^β · BCE(x, y)``.

    .. math::

        \mathrm{QFL}(x, y) = -\lvert y - \sigma(x) \rvert^\beta
            \big(y \log \sigma(x) + (1 - y) \log(1 - \sigma(x))\big)

    ``targets`` are soft quality scores of the logits' shape: the IoU at the positive's class, 0
    elsewhere (mmdet's ``QualityFocalLoss`` takes (label, score) and builds the same array).

    Args:
        targets: quality scores in [0, 1] of the logits' shape.
        beta: β ≥ 0. Default 2.

    References:
        Li et al. Generalized Focal Loss. NeurIPS 2020.
    """
    return _plan_qfl(logits, targets, beta=beta, reduction=reduction, weight=weight, normalizer=normalizer,
                     from_logits=from_logits, ignore_index=ignore_index).loss()


@plans(quality_focal_loss)
def _plan_qfl(logits: Array, targets: Array, *, beta: Any, reduction: str, weight: Any, normalizer: Any,
              from_logits: bool, ignore_index: Any) -> LossPlan:
    def spec(call: Any) -> QualitySpec:
        return QualitySpec(call.hyper("beta", beta, low=0.0, high=math.inf, high_open=True, differentiable=True))

    return plan_binary(quality_focal_kernel, spec, logits, targets, reduction=reduction, weight=weight,
                       normalizer=normalizer, from_logits=from_logits, ignore_index=ignore_index)


@document
def varifocal_loss(
    logits: Array, targets: Array, *, alpha: float = 0.75, gamma: float = 2.0, reduction: str = "mean",
    weight: Array | float | None = None, normalizer: Array | float | None = None, from_logits: bool = True,
    ignore_index: float | None = None, detach_modulator: bool = False,
) -> Array:
    r"""Varifocal loss (VarifocalNet, Zhang et al. 2021).

    .. math::

        \mathrm{VFL}(p, q) = \begin{cases} -q\,(q\log p + (1-q)\log(1-p)) & q > 0 \\
            -\alpha\,p^\gamma \log(1-p) & q = 0 \end{cases}

    ``q`` is the IoU-aware target (mmdet's ``iou_weighted=True``); the gradient flows through
    ``p^γ`` as in mmdet.

    Args:
        targets: IoU-aware targets ``q`` in [0, 1] of the logits' shape (0 for negatives).
        alpha: the negatives' weight, ≥ 0. Default 0.75.
        gamma: γ ≥ 0. Default 2.
        detach_modulator: compute the modulating factor from the logits held constant
            (``stop_gradient``/``detach``), as RT-DETR's and D-FINE's ``loss_labels_vfl`` do (mmdet's and
            ultralytics' do not): the loss's value is unchanged; its derivatives w.r.t. the logits, of every order,
            treat the negatives' weight ``α p^γ`` as a constant (``d/dx = α p^γ p`` at ``q = 0``); those w.r.t. α, γ
            and float targets still go through it. Default False (the loss's true gradient).

    References:
        Zhang et al. VarifocalNet: An IoU-aware Dense Object Detector. CVPR 2021.
    """
    return _plan_vfl(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction, weight=weight,
                     normalizer=normalizer, from_logits=from_logits, ignore_index=ignore_index,
                     detach_modulator=detach_modulator).loss()


@plans(varifocal_loss)
def _plan_vfl(logits: Array, targets: Array, *, alpha: Any, gamma: Any, reduction: str, weight: Any,
              normalizer: Any, from_logits: bool, ignore_index: Any, detach_modulator: bool) -> LossPlan:
    detach = _checks.check_flag("detach_modulator", detach_modulator)

    def spec(call: Any) -> VarifocalSpec:
        return VarifocalSpec(call.hyper("alpha", alpha, low=0.0, high=1.0, differentiable=True),
                             call.hyper("gamma", gamma, low=0.0, high=math.inf, high_open=True, differentiable=True),
                             detach=detach)

    return plan_binary(varifocal_kernel, spec, logits, targets, reduction=reduction, weight=weight,
                       normalizer=normalizer, from_logits=from_logits, ignore_index=ignore_index)


@document
def distribution_focal_loss(
    logits: Array, targets: Array, *, axis: int = -1, reduction: str = "mean", weight: Array | float | None = None,
    normalizer: Array | float | None = None, from_logits: bool = True,
) -> Array:
    r"""Distribution focal loss (GFL, Li et al. 2020) for a distance ``y`` over bins ``0 … n``.

    .. math::

        \mathrm{DFL}(S, y) = -\big[(y_{i+1} - y)\log S_{y_i} + (y - y_i)\log S_{y_{i+1}}\big],\quad
        y_i = \lfloor y \rfloor,\ y_{i+1} = y_i + 1

    with ``S = softmax(logits)`` over the ``n + 1`` bins on ``axis``: the cross entropy against the
    two-hot target.

    Args:
        logits: real floating array with the ``n + 1`` bins along ``axis``.
        targets: floating (or integer) distances in ``[0, n]`` of the logits' shape without ``axis``;
            outside that range they raise eagerly and give NaN under tracing. Their gradient (where
            they require one) is ``log S_{y_i} − log S_{y_{i+1}}``, that of the segment ``[y_i, y_i + 1]``
            holding y: the right derivative at an integer y, the left one at ``y = n``.
        axis: the bin axis. Default -1.
        reduction: ``"none"`` (per distance), ``"mean"`` (default) or ``"sum"``.

    References:
        Li et al. Generalized Focal Loss. NeurIPS 2020.
    """
    return _plan_dfl(logits, targets, axis=axis, reduction=reduction, weight=weight, normalizer=normalizer,
                     from_logits=from_logits).loss()


@plans(distribution_focal_loss)
def _plan_dfl(logits: Array, targets: Array, *, axis: Any, reduction: str, weight: Any, normalizer: Any,
              from_logits: bool) -> LossPlan:
    call = Call(logits, targets, reduction=reduction, weight=weight, normalizer=normalizer)
    xp, targets = call.xp, call.targets
    axis = _checks.check_axis(axis, len(call.shape))
    bins = int(call.shape[axis])
    row_shape = tuple(s for i, s in enumerate(call.shape) if i != axis)
    _checks.check_shape("targets", targets.shape, row_shape, f"one distance per row of bins along axis={axis}")
    if not xp.isdtype(targets.dtype, ("real floating", "integral")):
        raise TypeError(f"targets must be floating (or integer) distances, got {targets.dtype}")
    y = call.within("targets", call.cast(targets), 0.0, bins - 1.0,
                    f"distances in [0, {bins - 1}] (logits have {bins} bins along axis={axis})")
    kernel: Any = DistributionKernel(axis, bins, call.target_slot(y, view=_along_axis(tuple(y.shape), axis)))
    if not from_logits:
        kernel = FromProbabilities(kernel, "softmax")
    return LossPlan(call, kernel, aux=(), loss_shape=row_shape)


def _index_dtype(xp: Any) -> Any:
    """The namespace's default index dtype (int32 in JAX without x64); int64 where it has no inspection API."""
    info = getattr(xp, "__array_namespace_info__", None)
    return xp.int64 if info is None else info().default_dtypes()["indexing"]


def _along_axis(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """``shape`` with a length-1 axis at ``axis`` (of the result)."""
    axis = axis % (len(shape) + 1)
    return (*shape[:axis], 1, *shape[axis:])


@dataclass(frozen=True)
class DistributionKernel:
    """DFL on the integer-label path: ``L = LSE(z) − (w_l z_l + w_r z_r)`` with ``l = ⌊y⌋`` (``n − 1`` at
    ``y = n``), ``r = l + 1``, ``w_r = y − l``, ``w_l = 1 − w_r``: two gathers per row, no two-hot. The gradient
    is ``softmax(z)`` less ``w_l`` at l and ``w_r`` at r (two scatters); the distances' is ``z_l − z_r``, that of
    the segment holding y. ``LSE(z) − z_l`` is ``log1p(s) − (z_l − m)`` (``softmax_parts``): no cancellation
    between two large numbers."""

    axis: int
    bins: int
    targets: Slot

    def _parts(self, xp: Any, z: Array, y: Array) -> tuple[Array, ...]:
        """The left bin (with a class axis), the right weight, ``softmax_parts``' three and the loss per row."""
        axis = self.axis
        # the segment [l, l + 1] that holds y, the last one closed at n; a NaN distance (traced, outside [0, n])
        # reads bin 0 and stays NaN through its weight
        low = xp.minimum(xp.floor(xp.where(xp.isnan(y), 0.0, y)), float(max(self.bins - 2, 0)))
        right = xp.expand_dims(y - low, axis=axis)
        index = xp.expand_dims(xp.astype(low, _index_dtype(xp)), axis=axis)
        shifted, exps, log_total = softmax_parts(xp, z, axis)
        z_l = xp.take_along_axis(shifted, index, axis=axis)
        z_r = xp.take_along_axis(shifted, index + 1, axis=axis)
        loss = xp.squeeze(log_total - (z_l + right * (z_r - z_l)), axis=axis)
        return index, right, exps, log_total, z_l - z_r, loss

    def value(self, xp: Any, z: Array, aux: tuple[Array, ...], params: tuple[Array, ...]) -> Array:
        return self._parts(xp, z, params[self.targets.index])[-1]

    def forward(self, xp: Any, z: Array, aux: tuple[Array, ...], params: tuple[Array, ...],
                wanted: Wanted) -> tuple[Array, tuple[Array, ...]]:
        axis = self.axis
        index, right, exps, log_total, left_less_right, loss = self._parts(xp, z, params[self.targets.index])
        p = exps
        p = scale_in_place(xp, p, xp.exp(-log_total))
        p_l = xp.take_along_axis(p, index, axis=axis)
        p_r = xp.take_along_axis(p, index + 1, axis=axis)
        grad = p
        for at, value in ((index, p_l - (1.0 - right)), (index + 1, p_r - right)):
            onehot = None if hasattr(xp, "set_along_axis") else _onehot(xp, xp.squeeze(at, axis=axis), axis,
                                                                         self.bins, z.ndim)
            grad = _at_labels(xp, grad, at, onehot, value, axis, overwrite=True)
        return loss, (grad, *take_partials({TARGETS: lambda: left_less_right}, wanted))

    def vjp(self, xp: Any, residuals: tuple[Array, ...], cotangent: Array, wanted: Wanted, *,
            consume: bool = False) -> Grads:
        return broadcast_vjp(xp, residuals, cotangent, wanted, self.axis, consume=consume)
