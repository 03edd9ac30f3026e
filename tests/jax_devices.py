"""Every case of the bench matrix with its arrays committed to JAX's second host device: the loss and its gradient
(eager, ``jax.grad``, ``jax.jit``, ``focal.value_and_grad``) on that device, and no array made eagerly without it
(one made on the default device is moved at every use: a copy between two GPUs each step). JAX's own
``transfer_guard_device_to_device`` cannot tell: its ``zeros_like`` of a committed array and ``jax.grad``'s seed
trip it. So every function of ``jax.numpy`` that makes an array from a shape or from host data is watched: called
outside a trace, it must be given the logits' device (``asarray`` of a JAX array keeps that array's).

Run as a script by tests/test_devices.py: the device count is fixed when JAX starts. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax._src import core  # noqa: E402

import focal  # noqa: E402
from focal.commands import matrix_cases as mc  # noqa: E402

second = jax.devices()[1]
failures: list[str] = []
MAKERS = ("arange", "asarray", "array", "empty", "eye", "full", "linspace", "ones", "zeros")


def _watched(name: str, make):
    def made(*args, **kwargs):
        given = args[0] if args else None
        keeps = name in ("asarray", "array") and isinstance(given, jax.Array)
        if core.trace_state_clean() and not keeps and kwargs.get("device") != second:
            failures.append(f"jnp.{name} made an array on {kwargs.get('device')}, not the logits' device")
        return make(*args, **kwargs)

    return made


for _name in MAKERS:
    setattr(jnp, _name, _watched(_name, getattr(jnp, _name)))


def check(name: str, run, *arrays: np.ndarray, jit: bool = False) -> None:
    """``run`` eagerly, under ``jax.grad`` and (``jit``: a compile each, so a few cases) ``jax.jit``."""
    put = [jax.device_put(a, second) for a in arrays]
    try:
        outs = [run(*put), jax.grad(run)(*put), *focal.value_and_grad(focal.sigmoid_focal_loss)(put[0], put[0] > 0)]
        if jit:
            outs += jax.jit(jax.value_and_grad(run))(*put)
        for out in outs:
            if out.devices() != {second}:
                failures.append(f"{name}: a result on {out.devices()}")
    except Exception as error:  # noqa: BLE001 - reported, with the case's name
        failures.append(f"{name}: {type(error).__name__}: {str(error).splitlines()[0][:300]}")


jnp.arange(3)  # the watch sees an array made on the default device
seen = failures[:]
failures.clear()
cases = 0
for case in mc.CASES:
    data = mc.make(case, 0.0002, channels_first=False)
    names = sorted(data.extras)

    def run(x, targets, *extras, case=case, names=names):
        return getattr(focal, case.loss)(x, targets, **case.call_kwargs(-1, dict(zip(names, extras))))

    check(case.name, run, data.logits, data.targets, *(data.extras[n] for n in names),
          jit=case.name in ("sigmoid_focal_loss", "softmax label_smoothing=0.1", "softmax where (class mask)"))
    cases += 1

rng = np.random.default_rng(0)
hidden, weight = rng.normal(size=(10, 4)).astype(np.float32), rng.normal(size=(7, 4)).astype(np.float32)
labels = rng.integers(0, 7, 10)
check("linear_softmax_focal_loss", lambda h, w, t: focal.linear_softmax_focal_loss(h, w, t, chunk_size=4),
      hidden, weight, labels, jit=True)
check("softmax alpha list, NumPy weight", lambda x, t: focal.softmax_focal_loss(
    x, t, alpha=[0.5] * 7, weight=np.linspace(0.5, 1.0, 10, dtype=np.float32), label_smoothing=0.1),
      rng.normal(size=(10, 7)).astype(np.float32), labels)
check("class_balanced_alpha", lambda x, counts: focal.softmax_focal_loss(x, labels, alpha=focal.class_balanced_alpha(
    counts)), rng.normal(size=(10, 7)).astype(np.float32), np.arange(1.0, 8.0, dtype=np.float32))
cases += 3
sys.stdout.write(json.dumps({"devices": len(jax.devices()), "cases": cases, "failures": failures,
                             "watch_sees": seen}) + "\n")
