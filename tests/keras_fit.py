"""Compile, fit, save and reload a Keras model with focal losses on the backend in KERAS_BACKEND.

Run as a script by tests/test_keras.py, once per Keras backend (the backend is fixed per process).
Prints one JSON line: the loss of fixed inputs, a few training losses, the reloaded model's loss.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import keras
import numpy as np

import focal.keras as fk

rng = np.random.default_rng(0)
x = rng.normal(size=(64, 6)).astype("float32")
labels = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 1).astype("int64")
binary = (x[:, :3] > 0.5).astype("float32")
logits = rng.normal(size=(5, 3)).astype("float32")
out: dict[str, object] = {"backend": keras.backend.backend()}
out["softmax_value"] = float(keras.ops.convert_to_numpy(
    fk.SoftmaxFocalLoss(from_logits=True, gamma=2.0, alpha=[0.25, 0.5, 1.0])(labels[:5], logits)))
out["sigmoid_value"] = float(keras.ops.convert_to_numpy(
    fk.SigmoidFocalLoss(from_logits=True)(binary[:5], logits)))
# every other class on the same logits; tests/test_keras.py computes the expected values with NumPy
distances = rng.uniform(0.0, 2.0, size=(5, 1)).astype("float32")
others = {
    "HardTruncatedLoss": (binary[:5], {}), "SoftTruncatedLoss": (labels[:5], {"activation": "softmax", "k": 2.0}),
    "Poly1FocalLoss": (binary[:5], {}), "FocalLossStar": (binary[:5], {}), "AsymmetricLoss": (binary[:5], {}),
    "FocalLossWithNegatives": (labels[:5], {}), "Poly1CrossEntropy": (labels[:5, None], {}),
    "DistributionFocalLoss": (distances, {}), "FocalTverskyLoss": (labels[:5], {}),
}
out["values"] = {name: float(keras.ops.convert_to_numpy(getattr(fk, name)(from_logits=True, **kw)(t, logits)))
                 for name, (t, kw) in others.items()}

keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(3, activation="softmax")])
model.compile(optimizer=keras.optimizers.SGD(0.1), loss=fk.SoftmaxFocalLoss(gamma=2.0))
history = model.fit(x, labels, epochs=3, batch_size=16, verbose=0)
out["fit_losses"] = [float(v) for v in history.history["loss"]]
path = os.path.join(tempfile.mkdtemp(), "model.keras")
model.save(path)
restored = keras.saving.load_model(path)
out["restored_loss_class"] = type(restored.loss).__name__
out["evaluate"] = float(model.evaluate(x, labels, verbose=0))
out["evaluate_restored"] = float(restored.evaluate(x, labels, verbose=0))

# mixed precision: float16 activations, the loss computed in float32, the loss scale kept finite
keras.mixed_precision.set_global_policy("mixed_float16")
keras.utils.set_random_seed(0)
mixed = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
mixed.compile(optimizer=keras.optimizers.SGD(0.1), loss=fk.SoftmaxFocalLoss(from_logits=True, gamma=2.0))
out["mixed_output_dtype"] = keras.backend.standardize_dtype(mixed(x[:2]).dtype)
out["mixed_fit_losses"] = [float(v) for v in mixed.fit(x, labels, epochs=3, batch_size=16, verbose=0).history["loss"]]
# float16 predictions at the ends of float16's range (±65504): every loss finite and in float32
# (the gradients of float16 logits are tests/test_dtypes.py's)
extreme = np.array([[65504.0, -65504.0, 1.0]] * 5, dtype="float16")
mixed_values = {}
for name, (t, kw) in {**others, "SoftmaxFocalLoss": (labels[:5], {}), "SigmoidFocalLoss": (binary[:5], {})}.items():
    value = getattr(fk, name)(from_logits=True, **kw)(t, keras.ops.convert_to_tensor(extreme))
    mixed_values[name] = [float(keras.ops.convert_to_numpy(value)), keras.backend.standardize_dtype(value.dtype)]
out["mixed_extreme_values"] = mixed_values
sys.stdout.write(json.dumps(out) + "\n")
