"""A gamma schedule through a Keras callback, on the backend in KERAS_BACKEND: the compiled train step
is traced once and sees each epoch's gamma; the model saves and loads back with the loss's variable.

Run as a script by tests/test_keras.py, once per Keras backend. The learning rate is 0, so the
predictions are fixed and each epoch's loss is the focal loss of them at that epoch's gamma (the
test computes those with NumPy). Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import keras
import numpy as np

import focal.keras as fk

SCHEDULE = [2.0, 1.5, 1.0, 0.5, 0.0]
rng = np.random.default_rng(3)
x = rng.normal(size=(32, 4)).astype("float32")
labels = rng.integers(0, 3, size=32)
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
loss = fk.SoftmaxFocalLoss(gamma=SCHEDULE[0], alpha=[0.5, 1.0, 2.0], variables=["gamma"])
traces = []
original_call = loss.call
loss.call = lambda *args: traces.append(1) or original_call(*args)  # Python runs it once per trace
model.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss)
traces_after = []  # the traces so far, at each epoch's end: a retrace would add one
schedule = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: loss.gamma.assign(SCHEDULE[epoch]),
                                          on_epoch_end=lambda epoch, logs: traces_after.append(len(traces)))
history = model.fit(x, labels, epochs=len(SCHEDULE), batch_size=32, shuffle=False, verbose=0, callbacks=[schedule])
out: dict[str, object] = {"backend": keras.backend.backend(), "schedule": SCHEDULE,
                          "losses": [float(v) for v in history.history["loss"]],
                          "loss_calls_after_each_epoch": traces_after,
                          "predictions": keras.ops.convert_to_numpy(model(x)).astype("float64").tolist(),
                          "labels": labels.tolist()}
path = os.path.join(tempfile.mkdtemp(), "model.keras")
model.save(path)
restored = keras.saving.load_model(path)
out["restored_gamma"] = float(keras.ops.convert_to_numpy(restored.loss.gamma))
out["restored_gamma_is_variable"] = isinstance(restored.loss.gamma, keras.Variable)
out["evaluate"] = float(model.evaluate(x, labels, verbose=0))
out["evaluate_restored"] = float(restored.evaluate(x, labels, verbose=0))
sys.stdout.write(json.dumps(out) + "\n")
