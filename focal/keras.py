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

A hyperparameter can follow a schedule: name it in ``variables`` (``SoftmaxFocalLoss(gamma=2.0,
variables=["gamma"])``, or pass a ``keras.Variable``) and it is held as a non-trainable
``keras.Variable``, ``loss.gamma``; a callback's ``loss.gamma.assign(1.0)`` between epochs takes effect
in the compiled train step without retracing it, and the loss saves with the current value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

import focal as _focal

from ._signatures import check_known, keyword_defaults, keyword_signature

_PER_CALL = ("weight", "normalizer", "reduction")


class FocalLoss(keras.losses.Loss):
    """Base of the Keras losses: a functional ``focal`` loss with its parameters.

    ``variables`` names the hyperparameters held as non-trainable ``keras.Variable`` s (for a schedule:
    ``loss.gamma.assign(...)``); a ``keras.Variable`` given as a value is held as it is.
    """

    loss_fn: Callable[..., Any]
    sigmoid: bool = False  # elementwise whatever the parameters say
    integer_labels: bool = True  # softmax targets without the class axis are class indices

    def __init__(self, *, name: str | None = None, reduction: str = "sum_over_batch_size", dtype: Any = None,
                 variables: Sequence[str] = (), **params: Any) -> None:
        super().__init__(name=name or type(self).__name__, reduction=reduction, dtype=dtype)
        held = set(variables) | {k for k, v in params.items() if isinstance(v, keras.Variable)}
        unknown = sorted(held - set(params))
        if unknown:
            raise TypeError(f"variables names {unknown}, which {type(self).__name__} does not take")
        for k in sorted(held):
            if not isinstance(params[k], keras.Variable):
                params[k] = keras.Variable(params[k], trainable=False, name=k)
        self.params = params
        self.held = sorted(held)

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _values(self, like: Any) -> dict[str, Any]:
        return {k: _read(v, like) if isinstance(v, keras.Variable) else v for k, v in self.params.items()}

    def call(self, y_true: Any, y_pred: Any) -> Any:
        elementwise = self.sigmoid or self.params.get("activation") == "sigmoid"
        if not elementwise and "axis" in self.params:
            y_true = _sparse_targets(y_true, y_pred, self.params["axis"], self.integer_labels)
        elif y_true.dtype != y_pred.dtype and elementwise:
            y_true = keras.ops.cast(y_true, y_pred.dtype)
        loss = type(self).loss_fn(y_pred, y_true, reduction="none", **self._values(y_pred))
        if not elementwise:
            return loss
        ignore = self.params.get("ignore_index")
        if ignore is None:
            return keras.ops.mean(loss, axis=-1)
        # the mean over the elements that count, as the functional loss's "mean"
        kept = keras.ops.sum(keras.ops.cast(keras.ops.not_equal(y_true, ignore), loss.dtype), axis=-1)
        return keras.ops.sum(loss, axis=-1) / keras.ops.maximum(kept, 1.0)

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), **{k: _plain(v) for k, v in self.params.items()}}
        if self.held:
            config["variables"] = list(self.held)
        return config


def _plain(value: Any) -> Any:
    """A held variable's current value, as a number or a list (what the config saves)."""
    if isinstance(value, keras.Variable):
        return keras.ops.convert_to_numpy(value).tolist()
    return value


def _read(variable: Any, like: Any) -> Any:
    """A held variable's value in the current computation. Keras' JAX trainer carries only the model's own
    variables through its jitted step, so a loss's variable read while tracing would be a constant of
    the trace: it is read at run time instead, by a host callback (one scalar per step)."""
    value = variable.value
    if keras.backend.backend() == "jax":
        import jax

        if isinstance(like, jax.core.Tracer) and not isinstance(value, jax.core.Tracer):
            def current() -> np.ndarray:
                return np.asarray(variable.value)

            value = jax.pure_callback(current, jax.ShapeDtypeStruct(value.shape, value.dtype))
    return value


class _BatchRegionLoss(FocalLoss):
    """A loss of the whole batch (one number): Keras' per-sample weights have nothing to weigh."""

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} is one number for the whole batch; sample_weight must be None")
        return super().__call__(y_true, y_pred)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = _sparse_targets(y_true, y_pred, self.params["axis"], True)
        return type(self).loss_fn(y_pred, y_true, reduction="mean", **self._values(y_pred))


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
                 dtype: Any = None, variables: Sequence[str] = (), **params: Any) -> None:
        check_known(type(self).__name__, params, defaults)
        base.__init__(self, name=name, reduction=reduction, dtype=dtype, variables=variables,
                      **{**defaults, **params})

    __init__.__signature__ = keyword_signature(  # type: ignore[attr-defined]
        {**defaults, "name": None, "reduction": "sum_over_batch_size", "dtype": None, "variables": ()})
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
SoftmaxAsymmetricLoss = _loss_class("SoftmaxAsymmetricLoss", _focal.softmax_asymmetric_loss)
QualityFocalLoss = _loss_class("QualityFocalLoss", _focal.quality_focal_loss, True)
VarifocalLoss = _loss_class("VarifocalLoss", _focal.varifocal_loss, True)
DistributionFocalLoss = _loss_class("DistributionFocalLoss", _focal.distribution_focal_loss, integer_labels=False)
FocalTverskyLoss = _loss_class("FocalTverskyLoss", _focal.focal_tversky_loss, base=_BatchRegionLoss)

class _LinearFocalLoss(keras.layers.Layer):
    """Base of the fused output layers: a ``Dense`` layer and its focal loss in one (Keras' endpoint-layer pattern).

    ``layer(hidden, targets)`` computes the loss of ``hidden @ kernel.T + bias`` a chunk of rows at a time (never the
    logits), adds it to the model's losses (``add_loss``) and returns it: build a model that ends at the hidden states,
    take the targets as an input, and compile it without a loss. A loss passed to ``model.compile(loss=...)`` cannot
    do this: it receives the model's output, the logits, which then exist already. ``kernel`` is ``(units, hidden)``,
    as ``nn.Linear``'s weight (no transpose per step); ``layer.logits(hidden)`` gives the logits for inference.
    """

    loss_fn: Callable[..., Any]
    defaults: dict[str, Any] = {}

    def __init__(self, units: int, *, use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", **params: Any) -> None:
        # the loss's parameters; the rest are the Layer's (name, dtype, trainable: Keras checks those)
        layer = {k: params.pop(k) for k in list(params) if k not in type(self).defaults}
        super().__init__(**layer)
        self.units, self.use_bias = int(units), bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.params = {**type(self).defaults, **params}

    def build(self, hidden_shape: Any, targets_shape: Any = None) -> None:
        features = int(hidden_shape[-1])
        self.kernel = self.add_weight(shape=(self.units, features), initializer=self.kernel_initializer,
                                      name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer=self.bias_initializer,
                                    name="bias") if self.use_bias else None

    def call(self, hidden: Any, targets: Any) -> Any:
        labels = self.integer_targets and len(targets.shape) == len(hidden.shape) - 1
        if labels and not keras.backend.is_int_dtype(keras.backend.standardize_dtype(targets.dtype)):
            targets = keras.ops.cast(targets, "int32")  # Keras hands sparse labels as floats
        bias = None if self.bias is None else self.bias.value
        loss = type(self).loss_fn(hidden, self.kernel.value, targets, bias, **self.params)
        self.add_loss(loss)
        return loss

    integer_targets = True  # targets of the rows' shape are class indices (the softmax layer)

    def logits(self, hidden: Any) -> Any:
        """``hidden @ kernel.T + bias``: the layer's output for inference (all rows' logits at once)."""
        out = keras.ops.matmul(hidden, keras.ops.transpose(self.kernel))
        return out if self.bias is None else out + self.bias

    def compute_output_shape(self, hidden_shape: Any, targets_shape: Any = None) -> Any:
        return () if self.params.get("reduction", "mean") != "none" else tuple(hidden_shape[:-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer), **self.params}


def _linear_layer(name: str, fn: Callable[..., Any], integer_targets: bool) -> type[_LinearFocalLoss]:
    defaults = keyword_defaults(fn, ("sample_weight", "normalizer"))
    doc = f"Keras output layer and loss for :func:`focal.{fn.__name__}`.\n\n{_LinearFocalLoss.__doc__}\n\n{fn.__doc__}"
    cls = type(name, (_LinearFocalLoss,), {"loss_fn": staticmethod(fn), "defaults": defaults,
                                           "integer_targets": integer_targets, "__doc__": doc,
                                           "__module__": __name__})
    return keras.saving.register_keras_serializable(package="focal", name=name)(cls)


LinearSoftmaxFocalLoss = _linear_layer("LinearSoftmaxFocalLoss", _focal.linear_softmax_focal_loss, True)
LinearSigmoidFocalLoss = _linear_layer("LinearSigmoidFocalLoss", _focal.linear_sigmoid_focal_loss, False)

__all__ = [
    "LinearSigmoidFocalLoss", "LinearSoftmaxFocalLoss",
    "AsymmetricLoss", "DistributionFocalLoss", "FocalLoss", "FocalLossStar", "FocalLossWithNegatives",
    "FocalTverskyLoss", "HardTruncatedLoss", "Poly1CrossEntropy", "Poly1FocalLoss", "QualityFocalLoss",
    "SigmoidFocalLoss", "SoftTruncatedLoss", "SoftmaxAsymmetricLoss", "SoftmaxFocalLoss", "VarifocalLoss",
]
