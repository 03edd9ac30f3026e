"""Keras 3 losses: one ``keras.losses.Loss`` per ``focal`` loss, on every Keras backend.

``call(y_true, y_pred)`` in Keras' order; ``from_logits=False`` by default, as Keras losses;
Keras applies ``sample_weight`` and its reduction to the per-sample losses. Sigmoid (elementwise)
losses, and those given ``activation="sigmoid"``, are averaged over the last axis per sample, as
Keras' ``BinaryFocalCrossentropy``; softmax losses take one-hot/soft targets or sparse integer
labels (shape ``(N,)`` or ``(N, 1)``); ``DistributionFocalLoss`` takes float distances of shape
``(N,)`` or ``(N, 1)``. ``FocalTverskyLoss`` is a region loss over the whole batch: its value is
one number and it takes no ``sample_weight``.
Each class is registered serializable (package ``"focal"``), so a model compiled with it saves
to ``.keras`` and loads back without ``custom_objects``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

import focal as _focal

from ._signatures import check_known, keyword_defaults, keyword_signature

_PER_CALL = ("weight", "normalizer", "reduction")


class FocalLoss(keras.losses.Loss):
    """Base of the Keras losses: a functional ``focal`` loss with its parameters."""

    loss_fn: Callable[..., Any]
    sigmoid: bool = False  # elementwise whatever the parameters say
    integer_labels: bool = True  # softmax targets without the class axis are class indices

    def __init__(self, *, name: str | None = None, reduction: str = "sum_over_batch_size", dtype: Any = None,
                 **params: Any) -> None:
        super().__init__(name=name or type(self).__name__, reduction=reduction, dtype=dtype)
        self.params = params

    def call(self, y_true: Any, y_pred: Any) -> Any:
        elementwise = self.sigmoid or self.params.get("activation") == "sigmoid"
        if not elementwise and "axis" in self.params:
            y_true = _sparse_targets(y_true, y_pred, self.params["axis"], self.integer_labels)
        elif y_true.dtype != y_pred.dtype and elementwise:
            y_true = keras.ops.cast(y_true, y_pred.dtype)
        loss = type(self).loss_fn(y_pred, y_true, reduction="none", **self.params)
        return keras.ops.mean(loss, axis=-1) if elementwise else loss

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self.params}


class _BatchRegionLoss(FocalLoss):
    """A loss of the whole batch (one number): Keras' per-sample weights have nothing to weigh."""

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} is one number for the whole batch; sample_weight must be None")
        return super().__call__(y_true, y_pred)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = _sparse_targets(y_true, y_pred, self.params["axis"], True)
        return type(self).loss_fn(y_pred, y_true, reduction="mean", **self.params)


def _sparse_targets(y_true: Any, y_pred: Any, axis: int, integer: bool) -> Any:
    """Keras hands sparse labels as floats, often with a trailing 1: make them indices (or float positions)."""
    rank_true, rank_pred = len(y_true.shape), len(y_pred.shape)
    if rank_true == rank_pred and y_true.shape[-1] == 1 and y_pred.shape[axis] != 1:
        y_true = keras.ops.squeeze(y_true, axis=-1)
        rank_true -= 1
    if rank_true == rank_pred - 1 and integer:
        return keras.ops.cast(y_true, "int32")
    return keras.ops.cast(y_true, y_pred.dtype) if y_true.dtype != y_pred.dtype else y_true


def _loss_class(name: str, fn: Callable[..., Any], sigmoid: bool = False, *, base: type[FocalLoss] = FocalLoss,
                integer_labels: bool = True) -> type[FocalLoss]:
    defaults = keyword_defaults(fn, _PER_CALL)
    if "from_logits" in defaults:
        defaults["from_logits"] = False

    def __init__(self: FocalLoss, *, name: str | None = None, reduction: str = "sum_over_batch_size",
                 dtype: Any = None, **params: Any) -> None:
        check_known(type(self).__name__, params, defaults)
        base.__init__(self, name=name, reduction=reduction, dtype=dtype, **{**defaults, **params})

    __init__.__signature__ = keyword_signature(  # type: ignore[attr-defined]
        {**defaults, "name": None, "reduction": "sum_over_batch_size", "dtype": None})
    doc = f"Keras loss for :func:`focal.{fn.__name__}` (``from_logits=False`` by default).\n\n{fn.__doc__}"
    cls = type(name, (base,), {"loss_fn": staticmethod(fn), "sigmoid": sigmoid, "integer_labels": integer_labels,
                               "__init__": __init__, "__doc__": doc, "__module__": __name__})
    return keras.saving.register_keras_serializable(package="focal", name=name)(cls)


SigmoidFocalLoss = _loss_class("SigmoidFocalLoss", _focal.sigmoid_focal_loss, True)
SoftmaxFocalLoss = _loss_class("SoftmaxFocalLoss", _focal.softmax_focal_loss)
FocalLossWithNegatives = _loss_class("FocalLossWithNegatives", _focal.focal_loss_with_negatives)
HardTruncatedLoss = _loss_class("HardTruncatedLoss", _focal.hard_truncated_loss)
SoftTruncatedLoss = _loss_class("SoftTruncatedLoss", _focal.soft_truncated_loss)
FocalLossStar = _loss_class("FocalLossStar", _focal.focal_loss_star, True)
Poly1FocalLoss = _loss_class("Poly1FocalLoss", _focal.poly1_focal_loss)
Poly1CrossEntropy = _loss_class("Poly1CrossEntropy", _focal.poly1_cross_entropy)
AsymmetricLoss = _loss_class("AsymmetricLoss", _focal.asymmetric_loss, True)
QualityFocalLoss = _loss_class("QualityFocalLoss", _focal.quality_focal_loss, True)
VarifocalLoss = _loss_class("VarifocalLoss", _focal.varifocal_loss, True)
DistributionFocalLoss = _loss_class("DistributionFocalLoss", _focal.distribution_focal_loss, integer_labels=False)
FocalTverskyLoss = _loss_class("FocalTverskyLoss", _focal.focal_tversky_loss, base=_BatchRegionLoss)

__all__ = [
    "AsymmetricLoss", "DistributionFocalLoss", "FocalLoss", "FocalLossStar", "FocalLossWithNegatives",
    "FocalTverskyLoss", "HardTruncatedLoss", "Poly1CrossEntropy", "Poly1FocalLoss", "QualityFocalLoss",
    "SigmoidFocalLoss", "SoftTruncatedLoss", "SoftmaxFocalLoss", "VarifocalLoss",
]
