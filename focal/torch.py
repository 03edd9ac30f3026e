"""PyTorch criteria: one ``nn.Module`` per ``focal`` loss, ``forward(input, target)``.

The class axis defaults to 1, as in ``nn.CrossEntropyLoss`` (input ``(N, C, d1, ...)``). A
hyperparameter given as a tensor (``gamma=torch.tensor(2.0)``, per-class ``alpha``/``gamma`` given as
sequences or tensors) is a buffer, and one given as an ``nn.Parameter`` is a parameter, learned with
the model (``criterion.parameters()``, its gradient is the analytic one); either way
``.to(device)``, ``state_dict`` and ``copy.deepcopy`` carry it, and a new value (``criterion.gamma.fill_(1.5)``,
or a Python number per call on the compiled path) compiles nothing new. ``forward`` also takes per-call ``weight`` and
``normalizer`` (e.g. the number of positive anchors); or give the criterion
``normalizer="num_positives"`` to count them itself, with ``sync=True`` over a DistributedDataParallel
process group (see :func:`num_positives`). Under ``torch.autocast`` a criterion does what
``nn.CrossEntropyLoss`` does: a half-precision input is cast to float32, so the loss is float32 and
the gradient flows back to the float16/bfloat16 input. Every criterion runs the same core as the
functional API, so ``SoftmaxFocalLoss(gamma=2)(x, y)`` equals
``focal.softmax_focal_loss(x, y, gamma=2, axis=1)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import focal as _focal

from ._signatures import check_known, keyword_defaults, keyword_signature
from .backends import torch as _torch_backend  # loaded now, so torch.compile never imports it

_PER_CALL = ("weight", "normalizer")
_VECTORS = ("alpha", "gamma", "pos_weight")  # a sequence given for these is a per-class buffer
# the criterion's own options (not the loss function's): the normalizer it computes itself
_NORMALIZER_OPTIONS = {"normalizer": None, "sync": False}


def num_positives(target: torch.Tensor, *, sync: bool = False, group: Any = None) -> torch.Tensor:
    """RetinaNet's normalizer: the number of positive targets (``target > 0``; float, bool or 0/1 integer targets),
    at least 1.

    With ``sync=True`` in an initialised ``torch.distributed`` process group it is the count over the
    whole global batch (all-reduced) divided by the world size: DistributedDataParallel averages the
    processes' gradients, so each process dividing its summed loss by this gives exactly the gradient
    of the full batch's sum over its global count. Without a process group ``sync`` changes nothing.

    Returns:
        A float32 0-d tensor on ``target``'s device (a float64 one for float64 targets).
    """
    if target.is_complex():
        raise TypeError(f"num_positives counts the positive targets of a sigmoid loss (float, bool or 0/1 integer), "
                        f"got {target.dtype}")
    dtype = torch.float64 if target.dtype == torch.float64 else torch.float32
    count = (target > 0).sum().to(dtype)
    if sync and torch.distributed.is_available() and torch.distributed.is_initialized():
        count = count.clone()
        torch.distributed.all_reduce(count, group=group)
        return count.clamp(min=1.0) / torch.distributed.get_world_size(group)
    return count.clamp(min=1.0)


class FocalCriterion(nn.Module):
    """Base of the criteria: holds a loss function's parameters; tensors as buffers, ``nn.Parameter``
    as parameters.

    Parameters are checked, with the functional API's errors, on the first ``forward``.
    """

    loss_fn: Callable[..., torch.Tensor]

    def __init__(self, **params: Any) -> None:
        super().__init__()
        self._static: dict[str, Any] = {}
        self._normalizer = params.pop("normalizer", None)
        self._sync = bool(params.pop("sync", False))
        if self._normalizer not in (None, "num_positives"):
            raise ValueError(f"normalizer must be None or 'num_positives' (a number or tensor goes to forward), "
                             f"got {self._normalizer!r}")
        self._arrays: list[str] = []
        for name, value in params.items():
            if isinstance(value, nn.Parameter):
                self.register_parameter(name, value)
            elif name in _VECTORS and isinstance(value, (list, tuple)):
                # float64 keeps the numbers as written; each call casts them to the input's dtype
                self.register_buffer(name, torch.as_tensor(value, dtype=torch.float64))
            elif name == "where" and isinstance(value, (list, tuple)):
                self.register_buffer(name, torch.as_tensor(value, dtype=torch.bool))
            elif torch.is_tensor(value):
                self.register_buffer(name, value.detach().clone())
            else:
                self._static[name] = value
                continue
            self._arrays.append(name)

    def _params(self) -> dict[str, Any]:
        params = dict(self._static)
        for name in self._arrays:
            params[name] = getattr(self, name)
        return params

    def forward(self, input: torch.Tensor, target: torch.Tensor, *, weight: Any = None,  # noqa: A002
                normalizer: Any = None) -> torch.Tensor:
        per_call = {"weight": weight}
        if normalizer is None and self._normalizer == "num_positives":
            if not (torch.is_floating_point(target) or target.dtype == torch.bool) and target.shape != input.shape:
                raise TypeError(f"num_positives counts the positive targets of a sigmoid loss (one per logit), got "
                                f"{target.dtype} targets of shape {tuple(target.shape)} for an input of shape "
                                f"{tuple(input.shape)}: for class indices pass normalizer= yourself")
            normalizer = num_positives(target, sync=self._sync)
        if normalizer is not None:
            per_call["normalizer"] = normalizer  # not every loss has one (focal_tversky_loss)
        return type(self).loss_fn(input, target, **per_call, **self._params())

    def extra_repr(self) -> str:
        shown = dict(self._static)
        if self._normalizer is not None:
            shown.update(normalizer=self._normalizer, sync=self._sync)
        return ", ".join(f"{k}={v!r}" for k, v in shown.items())


def _criterion(name: str, fn: Callable[..., torch.Tensor]) -> type[FocalCriterion]:
    """A criterion class for ``fn``: its keyword-only parameters with their defaults, the class axis 1."""
    defaults = keyword_defaults(fn, _PER_CALL)
    if "axis" in defaults:
        defaults["axis"] = 1
    if "normalizer" in keyword_defaults(fn, ()):
        defaults.update(_NORMALIZER_OPTIONS)

    def __init__(self: FocalCriterion, **params: Any) -> None:
        check_known(name, params, defaults)
        FocalCriterion.__init__(self, **{**defaults, **params})

    __init__.__signature__ = keyword_signature(defaults)  # type: ignore[attr-defined]
    doc = f"``nn.Module`` criterion for :func:`focal.{fn.__name__}` (class axis 1).\n\n{fn.__doc__}"
    return type(name, (FocalCriterion,), {"loss_fn": staticmethod(fn), "__init__": __init__, "__doc__": doc,
                                          "__module__": __name__})


SigmoidFocalLoss = _criterion("SigmoidFocalLoss", _focal.sigmoid_focal_loss)
SoftmaxFocalLoss = _criterion("SoftmaxFocalLoss", _focal.softmax_focal_loss)
FocalLossWithNegatives = _criterion("FocalLossWithNegatives", _focal.focal_loss_with_negatives)
HardTruncatedLoss = _criterion("HardTruncatedLoss", _focal.hard_truncated_loss)
SoftTruncatedLoss = _criterion("SoftTruncatedLoss", _focal.soft_truncated_loss)
FocalLossStar = _criterion("FocalLossStar", _focal.focal_loss_star)
Poly1FocalLoss = _criterion("Poly1FocalLoss", _focal.poly1_focal_loss)
Poly1CrossEntropy = _criterion("Poly1CrossEntropy", _focal.poly1_cross_entropy)
AsymmetricLoss = _criterion("AsymmetricLoss", _focal.asymmetric_loss)
SoftmaxAsymmetricLoss = _criterion("SoftmaxAsymmetricLoss", _focal.softmax_asymmetric_loss)
QualityFocalLoss = _criterion("QualityFocalLoss", _focal.quality_focal_loss)
VarifocalLoss = _criterion("VarifocalLoss", _focal.varifocal_loss)
DistributionFocalLoss = _criterion("DistributionFocalLoss", _focal.distribution_focal_loss)
FocalTverskyLoss = _criterion("FocalTverskyLoss", _focal.focal_tversky_loss)

class _LinearCriterion(FocalCriterion):
    """Base of the fused linear criteria: ``forward(linear, hidden, target)``, the loss of ``linear(hidden)``
    without its logits."""

    def forward(self, linear: nn.Module, hidden: torch.Tensor, target: torch.Tensor, *,  # type: ignore[override]
                sample_weight: Any = None, normalizer: Any = None) -> torch.Tensor:
        weight, bias = linear.weight, getattr(linear, "bias", None)
        if _torch_backend.autocasting(hidden.device.type):
            # as F.linear under autocast: the layer in the autocast dtype, its gradient back to the float32 weight
            dtype = torch.get_autocast_dtype(hidden.device.type)
            hidden, weight = hidden.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        per_call = {"sample_weight": sample_weight}
        if normalizer is not None:
            per_call["normalizer"] = normalizer
        return type(self).loss_fn(hidden, weight, target, bias, **per_call, **self._params())


def _linear_criterion(name: str, fn: Callable[..., torch.Tensor], **overrides: Any) -> type[FocalCriterion]:
    defaults = {**keyword_defaults(fn, ("sample_weight", "normalizer")), **overrides}

    def __init__(self: FocalCriterion, **params: Any) -> None:
        check_known(name, params, defaults)
        FocalCriterion.__init__(self, **{**defaults, **params})

    __init__.__signature__ = keyword_signature(defaults)  # type: ignore[attr-defined]
    doc = (f"``nn.Module`` criterion for :func:`focal.{fn.__name__}`: ``criterion(linear, hidden, target)`` is the "
           f"loss of the output layer ``linear`` (an ``nn.Linear``: its ``weight`` and ``bias``) on ``hidden``, "
           f"never holding its logits; under ``torch.autocast`` the layer runs in the autocast dtype, as "
           f"``F.linear`` would. ``forward`` also takes ``sample_weight`` and ``normalizer`` per call (a Hugging Face "
           f"``Trainer``'s ``num_items_in_batch``).\n\n{fn.__doc__}")
    return type(name, (_LinearCriterion,), {"loss_fn": staticmethod(fn), "__init__": __init__, "__doc__": doc,
                                            "__module__": __name__})


# ignore_index=-100 as nn.CrossEntropyLoss and Liger-Kernel's fused linear cross entropy: a language model's labels
LinearSoftmaxFocalLoss = _linear_criterion("LinearSoftmaxFocalLoss", _focal.linear_softmax_focal_loss,
                                           ignore_index=-100)
LinearSigmoidFocalLoss = _linear_criterion("LinearSigmoidFocalLoss", _focal.linear_sigmoid_focal_loss)

__all__ = [
    "LinearSigmoidFocalLoss", "LinearSoftmaxFocalLoss",
    "AsymmetricLoss", "DistributionFocalLoss", "FocalCriterion", "FocalLossStar", "FocalLossWithNegatives",
    "FocalTverskyLoss", "HardTruncatedLoss", "Poly1CrossEntropy", "Poly1FocalLoss", "QualityFocalLoss",
    "SigmoidFocalLoss", "SoftTruncatedLoss",
    "SoftmaxAsymmetricLoss", "SoftmaxFocalLoss", "VarifocalLoss", "num_positives",
]
