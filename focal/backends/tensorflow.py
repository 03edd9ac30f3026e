"""TensorFlow: the core's gradient wired in with ``tf.custom_gradient``, the core run on our shim."""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

from . import _tf_namespace as xp
from ._base import Array, Backend


class TensorFlowBackend(Backend):
    name = "tensorflow"

    def owns(self, x: Any) -> bool:
        return tf.is_tensor(x) or isinstance(x, tf.Variable)

    def array(self, x: Any) -> Array:
        return tf.convert_to_tensor(x)

    def is_concrete(self, x: Array) -> bool:
        return tf.executing_eagerly() and hasattr(x, "numpy")

    def apply(self, kernel: Any, logits: Array, aux: Sequence[Array]) -> Array:
        @tf.custom_gradient
        def with_kernel_vjp(x: Array) -> Any:
            out, residuals = kernel.forward(xp, x, *aux)
            return out, lambda upstream: kernel.vjp(xp, residuals, upstream)

        return with_kernel_vjp(logits)

    def stop_gradient(self, x: Array) -> Array:
        return tf.stop_gradient(x)


BACKEND = TensorFlowBackend(xp)
