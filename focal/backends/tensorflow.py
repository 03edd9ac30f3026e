"""TensorFlow: the core's gradient wired in with ``tf.custom_gradient``, the core run on our shim.

Large inputs take a fused path: the kernel compiled by XLA (``tf.function(jit_compile=True)``),
the forward computing the loss only and the backward recomputing the kernel from the logits, so
a plain ``tf.function`` or eager caller gets XLA's single pass over the elements (a caller that
is itself compiled by XLA gets the plain kernel, which its compile fuses). Set
``FOCAL_TF_FUSED=0`` to turn it off; ``FOCAL_TF_FUSED_MIN`` (default 65536) is the size from
which it is used.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from . import _tf_namespace as xp
from ._base import Array, Backend

FUSED_MIN_ELEMENTS = int(os.environ.get("FOCAL_TF_FUSED_MIN", 1 << 16))
FUSED = os.environ.get("FOCAL_TF_FUSED", "1") != "0"


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _fused_value(kernel: Any, logits: Array, *aux: Array) -> Array:
    return kernel.forward(xp, logits, *aux)[0]


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _fused_backward(kernel: Any, cotangent: Array, logits: Array, *aux: Array) -> Array:
    _, residuals = kernel.forward(xp, logits, *aux)
    return kernel.vjp(xp, residuals, cotangent)


def _inside_xla() -> bool:
    """Whether the caller is already being compiled by XLA (``jit_compile=True``, Keras' XLA mode):
    XLA then fuses the plain kernel, and keeping its residual beats recomputing it in the backward."""
    try:
        from tensorflow.python.framework import ops
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))
    except Exception:  # a private API: where it moves, take the fused path (correct, a little slower)
        return False


def _fused_wanted(logits: Array) -> bool:
    shape = logits.shape
    return (FUSED and shape.is_fully_defined() and math.prod(shape.as_list()) >= FUSED_MIN_ELEMENTS
            and not _inside_xla())


class TensorFlowBackend(Backend):
    name = "tensorflow"

    def owns(self, x: Any) -> bool:
        return tf.is_tensor(x) or isinstance(x, tf.Variable)

    def array(self, x: Any) -> Array:
        return tf.convert_to_tensor(x)

    def device(self, x: Array) -> Any:
        return None  # TensorFlow copies tensors between devices itself

    def is_concrete(self, x: Array) -> bool:
        return tf.executing_eagerly() and hasattr(x, "numpy")

    def apply(self, kernel: Any, logits: Array, aux: Sequence[Array]) -> Array:
        if _fused_wanted(logits):
            @tf.custom_gradient
            def fused(x: Array) -> Any:
                return _fused_value(kernel, x, *aux), lambda upstream: _fused_backward(kernel, upstream, x, *aux)

            return fused(logits)

        @tf.custom_gradient
        def with_kernel_vjp(x: Array) -> Any:
            out, residuals = kernel.forward(xp, x, *aux)
            return out, lambda upstream: kernel.vjp(xp, residuals, upstream)

        return with_kernel_vjp(logits)

    def stop_gradient(self, x: Array) -> Array:
        return tf.stop_gradient(x)


BACKEND = TensorFlowBackend(xp)
