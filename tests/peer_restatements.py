"""Stand-ins for the peers that do not install here, so the migration guide's blocks for them run too.

tensorflow-addons does not import under Keras 3 (the tests' TensorFlow 2.21), and mmdet needs an mmcv
that does not build here. Each stand-in below restates, in our own words and in the plain textbook
formula (``(1 − p_t) ** γ``, probabilities from a sigmoid), what that library's published source
computes, for the call the guide makes. A restatement goes stale silently when the library changes
(this guide's smp section did: smp 0.6.0 averages over the classes where the restated source summed),
so every peer that installs is tested as itself (``test_torch_peers.py``, ``test_anchors.py``):

- tensorflow-addons ``losses/focal_loss.py``: Keras 2's clipped binary cross entropy on
  probabilities, times ``alpha_t (1 − p_t)^γ``, summed over the last axis; reduction ``NONE``.
- mmdet ``models/losses/focal_loss.py`` (the CPU path): class indices with ``C`` as background made
  one-hot over ``C + 1`` columns and cut to ``C``, a per-anchor weight, ``sum / (avg_factor + eps)``.

So these check that the guide's line for *our* call gives what that source defines, not that the
library does: the tests say which blocks ran against a stand-in.
"""

from __future__ import annotations

import types
from typing import Any

KERAS2_EPSILON = 1e-7


def _module(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def _reduce(loss: Any, reduction: str) -> Any:
    return {"none": lambda v: v, "mean": lambda v: v.mean(), "sum": lambda v: v.sum()}[reduction](loss)


def _textbook(x: Any, t: Any, alpha: float | None, gamma: float) -> Any:
    import torch

    p = torch.sigmoid(x)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = bce * (1 - p_t) ** gamma
    return loss if alpha is None else loss * (alpha * t + (1 - alpha) * (1 - t))


def tensorflow_addons() -> dict[str, types.ModuleType]:
    import tensorflow as tf

    class SigmoidFocalCrossEntropy:
        def __init__(self, from_logits: bool = False, alpha: float | None = 0.25, gamma: float = 2.0) -> None:
            self.from_logits, self.alpha, self.gamma = from_logits, alpha, gamma

        def __call__(self, y_true: Any, y_pred: Any) -> Any:
            y_true = tf.cast(y_true, y_pred.dtype)  # as tfa's sigmoid_focal_crossentropy
            p = tf.sigmoid(y_pred) if self.from_logits else y_pred
            if self.from_logits:
                ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=y_pred)
            else:  # Keras 2's backend: clip, then eps inside the logs too
                q = tf.clip_by_value(y_pred, KERAS2_EPSILON, 1 - KERAS2_EPSILON)
                ce = -(y_true * tf.math.log(q + KERAS2_EPSILON) + (1 - y_true) * tf.math.log(1 - q + KERAS2_EPSILON))
            p_t = y_true * p + (1 - y_true) * (1 - p)
            factor = (1 - p_t) ** self.gamma
            if self.alpha:
                factor = factor * (y_true * self.alpha + (1 - y_true) * (1 - self.alpha))
            return tf.reduce_sum(factor * ce, axis=-1)

    losses = _module("tensorflow_addons.losses", SigmoidFocalCrossEntropy=SigmoidFocalCrossEntropy)
    return {"tensorflow_addons": _module("tensorflow_addons", losses=losses), "tensorflow_addons.losses": losses}


def mmdet() -> dict[str, types.ModuleType]:
    import torch

    class FocalLoss:
        def __init__(self, use_sigmoid: bool = True, gamma: float = 2.0, alpha: float = 0.25,
                     reduction: str = "mean", loss_weight: float = 1.0) -> None:
            self.gamma, self.alpha, self.reduction, self.loss_weight = gamma, alpha, reduction, loss_weight

        def __call__(self, pred: Any, target: Any, weight: Any = None, avg_factor: float | None = None) -> Any:
            classes = pred.shape[1]
            onehot = torch.nn.functional.one_hot(target, classes + 1)[:, :classes].to(pred.dtype)
            loss = _textbook(pred, onehot, self.alpha, self.gamma)
            if weight is not None:
                loss = loss * weight.view(-1, 1)
            if avg_factor is None:
                return self.loss_weight * _reduce(loss, self.reduction)
            assert self.reduction == "mean"
            return self.loss_weight * loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)

    losses = _module("mmdet.models.losses", FocalLoss=FocalLoss)
    models = _module("mmdet.models", losses=losses)
    return {"mmdet": _module("mmdet", models=models), "mmdet.models": models, "mmdet.models.losses": losses}


STAND_INS = {"tensorflow-addons": tensorflow_addons, "mmdet": mmdet}
FRAMEWORK = {"tensorflow-addons": "tensorflow", "mmdet": "torch"}
