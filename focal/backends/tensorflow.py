"""TensorFlow: the core's gradient wired in with ``tf.custom_gradient``, the core run on our shim."""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

from . import _tf_namespace as xp
from ._base import Array, Backend, Kernel, cotangent_times_grad


class TensorFlowBackend(Backend):
    name = "tensorflow"

    def owns(self, x: Any) -> bool:
        return tf.is_tensor(x) or isinstance(x, tf.Variable)

    def array(self, x: Any) -> Array:
        return tf.convert_to_tensor(x)

    def is_concrete(self, x: Array) -> bool:
        return tf.executing_eagerly() and hasattr(x, "numpy")

    def elementwise(self, kernel: Kernel, logits: Array, aux: Sequence[Array], expand_axis: int | None) -> Array:
        @tf.custom_gradient
        def loss_with_grad(x: Array) -> Any:
            loss, dloss = kernel(xp, x, *aux)
            return loss, lambda upstream: cotangent_times_grad(xp, upstream, dloss, expand_axis)

        return loss_with_grad(logits)

    def stop_gradient(self, x: Array) -> Array:
        return tf.stop_gradient(x)


BACKEND = TensorFlowBackend(xp)
