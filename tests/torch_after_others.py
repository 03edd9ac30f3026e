"""A user's process: focal on NumPy, JAX and TensorFlow arrays first, then ``import torch`` and a loss compiled
with ``torch.compile(fullgraph=True)``. Run as a script by tests/test_torch_compile.py (the import order is the
point, so it needs a process of its own). Prints one JSON line: the compiled and eager values and gradients, and
every warning recorded while compiling and calling.
"""

from __future__ import annotations

import importlib.util
import json
import warnings

# TensorFlow 2.20+ then triton (which torch.compile imports) crashes any process (tensorflow/tensorflow#124205):
# triton first, as focal's docs say
if importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401

import numpy as np  # noqa: E402

import focal  # noqa: E402

x = np.random.default_rng(0).normal(size=(8, 5)) * 3
y = (np.random.default_rng(1).random((8, 5)) > 0.7).astype(np.float64)
labels = np.array([0, 4, 2, 1, 3, 0, 1, 2])
focal.sigmoid_focal_loss(x, y)
import jax.numpy as jnp  # noqa: E402

focal.sigmoid_focal_loss(jnp.asarray(x), jnp.asarray(y))
focal.softmax_focal_loss(jnp.asarray(x), jnp.asarray(labels))
import tensorflow as tf  # noqa: E402

focal.sigmoid_focal_loss(tf.constant(x), tf.constant(y))
import torch  # noqa: E402

results: dict = {"glue_loaded_on_import": "focal.backends.torch" in __import__("sys").modules}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    losses = [("sigmoid", lambda v: focal.sigmoid_focal_loss(v, torch.as_tensor(y), gamma=0.5)),
              ("softmax", lambda v: focal.softmax_focal_loss(v, torch.as_tensor(labels), label_smoothing=0.1))]
    for name, loss in losses:
        outcome = {}
        for mode, fn in (("compiled", torch.compile(loss, fullgraph=True)), ("eager", loss)):
            leaf = torch.as_tensor(x).requires_grad_(True)
            value = fn(leaf)
            value.backward()
            outcome[mode] = [float(value.detach()), leaf.grad.tolist()]
        results[name] = outcome
results["warnings"] = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught]
print(json.dumps(results))
