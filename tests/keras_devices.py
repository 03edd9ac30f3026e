"""focal.keras's losses and output layers on Keras' torch backend, on PyTorch's ``meta`` device and a fake ``cuda:0``
(tests/devices.py): each loss and its gradient on the device, nothing read back, no array made elsewhere.

Keras places what it makes on its own device (``keras.device``), set here to the logits'. The watch covers focal's
function (Keras' own reduction copies a shape to the device each call: Keras', not ours) and the whole backward. On
``meta`` the forward only: Keras' ``convert_to_tensor`` replaces a meta tensor by an ``empty_like`` of it, cut from
the graph (its own way of tracing shapes), so no gradient reaches the inputs there.
Run as a script by tests/test_devices.py with KERAS_BACKEND=torch (fixed per process). Prints one JSON line.
"""

from __future__ import annotations

import functools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import devices  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras_kinds import kind as kind_of  # noqa: E402

import focal.keras as fk  # noqa: E402

rng = np.random.default_rng(0)
logits = rng.normal(size=(5, 3)).astype("float32")
targets = {"sigmoid": (logits > 0.5).astype("float32"), "labels": np.array([0, 2, 1, 1, 0]),
           "distances": rng.uniform(0.0, 2.0, (5, 1)).astype("float32")}
failures: list[str] = []
checked = 0


def watched(watch: devices.Watch, fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with watch:
            return fn(*args, **kwargs)

    return staticmethod(run)


def check(name: str, device: str, make, run) -> None:
    global checked
    try:
        with devices.on(device), keras.device(device):
            made = make()
            watch = devices.Watch(device)
            loss, inputs = run(made, watch)
            if device == "meta":
                inputs = []  # Keras cut them from the graph (above)
            with watch:
                grads = devices.backward_here(loss, inputs) if inputs else []
        watch.assert_clean()
        for x, g in zip(inputs, grads):
            assert g is not None and g.device.type == device and g.shape == x.shape, (x, g)
        assert loss.device.type == device, loss.device
        checked += 1
    except Exception as error:  # noqa: BLE001 - reported with the case's name
        failures.append(f"{name} on {device}: {type(error).__name__}: {str(error)[:300]}")


for device in ("meta", "cuda"):
    for name in fk.__all__:
        if name == "FocalLoss" or name.startswith("Linear"):
            continue
        cls = getattr(fk, name)
        kind = kind_of(name)

        def make(cls=cls, kind=kind, device=device):
            return (devices.tensor(logits, device).requires_grad_(True), devices.tensor(targets[kind], device),
                    cls(from_logits=True))

        def run(made, watch):
            x, t, loss = made
            type(loss).loss_fn = watched(watch, type(loss).loss_fn)  # focal's function, inside Keras' call
            return loss(t, x), [x]

        check(name, device, make, run)

    for name, kind in (("LinearSoftmaxFocalLoss", "labels"), ("LinearSigmoidFocalLoss", "sigmoid")):
        def make(name=name, kind=kind, device=device):
            # constant initializers: a random one would start a generator on the (fake) device
            layer = getattr(fk, name)(3, chunk_size=2, kernel_initializer="ones", bias_initializer="zeros")
            hidden = devices.tensor(rng.normal(size=(5, 4)).astype("float32"), device).requires_grad_(True)
            t = devices.tensor(targets[kind], device)
            layer.build(tuple(hidden.shape))
            return layer, hidden, t

        def run(made, watch):
            layer, hidden, t = made
            with watch:
                loss = layer(hidden, t)
            return loss, [hidden, layer.kernel.value, layer.bias.value]

        check(name, device, make, run)

sys.stdout.write(json.dumps({"backend": keras.backend.backend(), "checked": checked, "failures": failures}) + "\n")
