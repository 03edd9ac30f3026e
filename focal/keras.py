"""Keras 3 losses: one ``keras.losses.Loss`` per ``focal`` loss, on every Keras backend.

``call(y_true, y_pred)`` in Keras' order; ``from_logits=False`` by default, as Keras losses;
Keras applies ``sample_weight`` and its reduction to the per-sample losses. Sigmoid (elementwise)
losses are averaged over the last axis per sample, as Keras' ``BinaryFocalCrossentropy``; softmax
losses take one-hot/soft targets or sparse integer labels (shape ``(N,)`` or ``(N, 1)``).
Each class is registered serializable (package ``"focal"``), so a model compiled with it saves
to ``.keras`` and loads back without ``custom_objects``.
"""

from __future__ import annotations

from typing import Any, Callable

import keras

import focal as _focal

from ._signatures import check_known, keyword_defaults, keyword_signature

_PER_CALL = ("weight", "normalizer", "reduction")


class FocalLoss(keras.losses.Loss):
    """Base of the Keras losses: a functional ``focal`` loss with its parameters."""

    loss_fn: Callable[..., Any]
    elementwise: bool = False

    def __init__(self, *, name: str | None = None, reduction: str = "sum_over_batch_size", dtype: Any = None,
                 **params: Any) -> None:
        super().__init__(name=name or type(self).__name__, reduction=reduction, dtype=dtype)
        self.params = params

    def call(self, y_true: Any, y_pred: Any) -> Any:
        if not self.elementwise and "axis" in self.params:
            y_true = _sparse_labels(y_true, y_pred, self.params["axis"])
        elif y_true.dtype != y_pred.dtype and self.elementwise:
            y_true = keras.ops.cast(y_true, y_pred.dtype)
        loss = type(self).loss_fn(y_pred, y_true, reduction="none", **self.params)
        return keras.ops.mean(loss, axis=-1) if self.elementwise else loss

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self.params}


def _sparse_labels(y_true: Any, y_pred: Any, axis: int) -> Any:
    """Keras hands sparse labels as floats, often with a trailing 1: make them integer indices."""
    rank_true, rank_pred = len(y_true.shape), len(y_pred.shape)
    if rank_true == rank_pred and y_true.shape[-1] == 1 and y_pred.shape[axis] != 1:
        y_true = keras.ops.squeeze(y_true, axis=-1)
        rank_true -= 1
    if rank_true == rank_pred - 1:
        return keras.ops.cast(y_true, "int32")
    return keras.ops.cast(y_true, y_pred.dtype) if y_true.dtype != y_pred.dtype else y_true


def _loss_class(name: str, fn: Callable[..., Any], elementwise: bool) -> type[FocalLoss]:
    defaults = keyword_defaults(fn, _PER_CALL)
    if "from_logits" in defaults:
        defaults["from_logits"] = False

    def __init__(self: FocalLoss, *, name: str | None = None, reduction: str = "sum_over_batch_size",
                 dtype: Any = None, **params: Any) -> None:
        check_known(type(self).__name__, params, defaults)
        FocalLoss.__init__(self, name=name, reduction=reduction, dtype=dtype, **{**defaults, **params})

    __init__.__signature__ = keyword_signature(  # type: ignore[attr-defined]
        {**defaults, "name": None, "reduction": "sum_over_batch_size", "dtype": None})
    doc = f"Keras loss for :func:`focal.{fn.__name__}` (``from_logits=False`` by default).\n\n{fn.__doc__}"
    cls = type(name, (FocalLoss,), {"loss_fn": staticmethod(fn), "elementwise": elementwise,
                                     "__init__": __init__, "__doc__": doc, "__module__": __name__})
    return keras.saving.register_keras_serializable(package="focal", name=name)(cls)


SigmoidFocalLoss = _loss_class("SigmoidFocalLoss", _focal.sigmoid_focal_loss, True)
SoftmaxFocalLoss = _loss_class("SoftmaxFocalLoss", _focal.softmax_focal_loss, False)
FocalLossWithNegatives = _loss_class("FocalLossWithNegatives", _focal.focal_loss_with_negatives, False)
Poly1CrossEntropy = _loss_class("Poly1CrossEntropy", _focal.poly1_cross_entropy, False)
FocalLossStar = _loss_class("FocalLossStar", _focal.focal_loss_star, True)
AsymmetricLoss = _loss_class("AsymmetricLoss", _focal.asymmetric_loss, True)
QualityFocalLoss = _loss_class("QualityFocalLoss", _focal.quality_focal_loss, True)
VarifocalLoss = _loss_class("VarifocalLoss", _focal.varifocal_loss, True)

__all__ = [
    "AsymmetricLoss", "FocalLoss", "FocalLossStar", "FocalLossWithNegatives", "Poly1CrossEntropy",
    "QualityFocalLoss", "SigmoidFocalLoss", "SoftmaxFocalLoss", "VarifocalLoss",
]
