"""Compile, fit, save and reload a Keras model with focal losses on the backend in KERAS_BACKEND.

Run as a script by tests/test_keras.py, once per Keras backend (the backend is fixed per process).
Prints one JSON line: the loss of fixed inputs, a few training losses, the reloaded model's loss.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np

import keras

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
sys.stdout.write(json.dumps(out) + "\n")
