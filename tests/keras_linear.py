"""The fused output layers (``focal.keras.LinearSoftmaxFocalLoss``) on the Keras backend in KERAS_BACKEND.

Run as a script by tests/test_keras.py, once per backend. Prints one JSON line: the layer's loss and the functional
loss of its own weights on fixed inputs, the unfused loss of its logits, a few epochs of training losses, and the
loss of the model saved and loaded back.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import keras
import numpy as np

import focal
import focal.keras as fk

rng = np.random.default_rng(0)
x = rng.normal(size=(96, 6)).astype("float32")
labels = ((x[:, 0] > 0).astype("int64") + 2 * (x[:, 1] > 0.5).astype("int64")).astype("int32")
labels[::10] = -100  # ignored rows
out: dict[str, object] = {"backend": keras.backend.backend()}

keras.utils.set_random_seed(0)
features = keras.Input((6,), name="features")
targets = keras.Input((), dtype="int32", name="targets")
hidden = keras.layers.Dense(16, activation="relu")(features)
head = fk.LinearSoftmaxFocalLoss(40, gamma=2.0, ignore_index=-100, chunk_size=16, name="head")
loss = head(hidden, targets)
model = keras.Model([features, targets], loss)
model.compile(optimizer=keras.optimizers.Adam(1e-2))

body = keras.Model(features, hidden)
h = keras.ops.convert_to_numpy(body(x)).astype("float32")
kernel = keras.ops.convert_to_numpy(head.kernel.value)
bias = keras.ops.convert_to_numpy(head.bias.value)
out["layer_value"] = float(keras.ops.convert_to_numpy(head(keras.ops.convert_to_tensor(h),
                                                            keras.ops.convert_to_tensor(labels))))
out["numpy_value"] = float(focal.linear_softmax_focal_loss(h.astype("float64"), kernel.astype("float64"), labels,
                                                           bias.astype("float64"), gamma=2.0, ignore_index=-100))
out["unfused_value"] = float(focal.softmax_focal_loss(keras.ops.convert_to_numpy(head.logits(h)).astype("float64"),
                                                      labels, gamma=2.0, ignore_index=-100))
history = model.fit({"features": x, "targets": labels}, epochs=4, batch_size=32, verbose=0)
out["fit_losses"] = [float(v) for v in history.history["loss"]]
out["evaluate"] = float(model.evaluate({"features": x, "targets": labels}, batch_size=96, verbose=0))
path = os.path.join(tempfile.mkdtemp(), "model.keras")
model.save(path)
restored = keras.saving.load_model(path)
out["evaluate_restored"] = float(restored.evaluate({"features": x, "targets": labels}, batch_size=96, verbose=0))
out["restored_head"] = type(restored.get_layer("head")).__name__
sys.stdout.write(json.dumps(out) + "\n")
