"""Keras ``fit`` under ``tf.distribute.MirroredStrategy`` on 2 logical CPUs equals ``fit`` on one device.

Run as a script by tests/test_keras.py (the logical devices must be set before TensorFlow starts).
Prints one JSON line: per loss, the epoch losses and final weights' largest difference, both ways.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

import focal.keras as fk  # noqa: E402

rng = np.random.default_rng(0)
x = rng.normal(size=(64, 6)).astype("float32")
labels = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 1).astype("int64")
binary = np.stack([x[:, 0] > 0.5, x[:, 1] < -0.5, x[:, 2] > 1.0], axis=1).astype("float32")
LOSSES = {
    "SoftmaxFocalLoss": (lambda: fk.SoftmaxFocalLoss(from_logits=True, gamma=2.0, alpha=[0.25, 0.5, 1.0]), labels),
    "SigmoidFocalLoss": (lambda: fk.SigmoidFocalLoss(from_logits=True), binary),
}


def fit(make_loss, targets, strategy=None):
    scope = strategy.scope() if strategy else tf.device("/CPU:0")
    with scope:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=make_loss())
    history = model.fit(x, targets, epochs=3, batch_size=16, shuffle=False, verbose=0)
    return history.history["loss"], [w.numpy() if hasattr(w, "numpy") else np.asarray(w) for w in model.weights]


mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out: dict[str, object] = {"replicas": mirrored.num_replicas_in_sync}
for name, (make, targets) in LOSSES.items():
    one, one_weights = fit(make, targets)
    two, two_weights = fit(make, targets, mirrored)
    out[name] = {"one_device": one, "mirrored": two,
                 "max_weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(one_weights, two_weights))}
sys.stdout.write(json.dumps(out) + "\n")
