"""Every loss runs where its logits live and reads nothing back there: shown on a CPU.

A GPU's stand-ins: PyTorch's ``meta`` device and a fake ``cuda:0`` (``FakeTensorMode``), on which a read of a value
and an array made on the CPU raise, as on a GPU, and which :class:`devices.Watch` records besides; JAX's second host
device (a subprocess, ``tests/jax_devices.py``), where an array made on the default device would be moved
(``jax.transfer_guard_device_to_device`` refuses); array-api-strict's ``device1``, which refuses to mix devices. JAX
and TensorFlow have no fake accelerator: their backends are told the logits live on one, and every way to read an
array back is watched. Every public loss and option: the bench matrix's cases, reductions, ``ignore_index``,
``where``, per-class vectors, hyperparameters as arrays, NumPy values, the fused linear losses, the ``focal.torch``
criteria, ``focal.keras`` losses on Keras' torch backend. The checks that raise come back with
``focal.set_value_checks("raise")``, and bad values show as NaN in the elements they touch (tests/test_bad_inputs.py
runs every documented bad input that way on every library).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sys

import numpy as np
import pytest
from helpers import import_or_skip, run_script

import focal
from focal.commands import matrix_cases as mc

torch = import_or_skip("torch")
import devices  # noqa: E402 - imports torch

DEVICES = ["meta", "cuda"]  # cuda: faked
SCALE = 0.0002  # a few rows of each case's data
CASES = {case.name: case for case in mc.CASES}


def _call(device: str, run, *arrays: np.ndarray, grad: int = 1, dtype=None, setup=None):
    """``run(*tensors)`` on ``device`` (made inside the fake mode for ``cuda``), and its gradient w.r.t. the first
    ``grad`` arrays (floating ones require it); returns the loss, the gradients and the watch. ``setup()`` runs in the
    mode, before the watch (a criterion moved to the device: once, not per call); ``run`` gets its result first."""
    with devices.on(device):
        if setup is not None:
            made = setup()
            run = functools.partial(run, made)
        tensors = [devices.tensor(a, device, dtype=dtype if i == 0 and dtype is not None else None)
                   for i, a in enumerate(arrays)]
        inputs = [t.requires_grad_(True) for t in tensors[:grad]]
        with devices.Watch(device) as watch:
            loss = run(*tensors)
            grads = devices.gradients(loss, inputs, device)
    watch.assert_clean()
    assert loss.device.type == device, loss.device
    for x, g in zip(inputs, grads):
        assert g is not None and g.shape == x.shape and g.device.type == device and g.dtype == x.dtype, (g, x)
    return loss, grads, watch


def _matrix_call(case: mc.Case):
    data = mc.make(case, SCALE, channels_first=True)
    names = sorted(data.extras)

    def run(x, targets, *extras):
        given = dict(zip(names, extras))
        return getattr(focal, case.loss)(x, targets, **case.call_kwargs(1, given))

    return run, (data.logits, data.targets, *(data.extras[n] for n in names))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(CASES))
def test_every_matrix_case_runs_on_the_device_and_reads_nothing(name, device):
    run, arrays = _matrix_call(CASES[name])
    loss, _, _ = _call(device, run, *arrays)
    assert loss.shape == ()
    with torch.no_grad():  # the loss alone: no autograd.Function, another code path
        _call(device, run, *arrays, grad=0)


RNG = np.random.default_rng(3)
X = RNG.normal(size=(6, 5)).astype(np.float32)
BINARY = (RNG.random((6, 5)) < 0.3).astype(np.float32)
SOFT = RNG.random((6, 5)).astype(np.float32)
LABELS = np.array([0, 4, 2, 1, 3, 2])
IGNORED = np.array([0, 4, -100, 1, 3, -100])
ROW_WEIGHT = RNG.random(6).astype(np.float32)
WHERE = np.array([True, True, False, True, True])
PER_CLASS = np.linspace(0.5, 2.0, 5).astype(np.float32)
DISTANCES = RNG.uniform(0.0, 4.0, 6).astype(np.float32)

# (loss, its targets, keyword arguments; a value "@name" is that tensor, made on the device with the others)
TENSORS = {"row_weight": ROW_WEIGHT, "where": WHERE[None], "per_class": PER_CLASS, "two": np.float32(2.0),
           "quarter": np.float32(0.25), "smoothing": np.float32(0.1), "normalizer": np.float32(3.0)}
OPTIONS = {
    "sigmoid reduction=none": (focal.sigmoid_focal_loss, BINARY, {"reduction": "none"}),
    "sigmoid reduction=mean": (focal.sigmoid_focal_loss, BINARY, {}),
    "sigmoid soft targets": (focal.sigmoid_focal_loss, SOFT, {}),
    "sigmoid bool targets": (focal.sigmoid_focal_loss, BINARY > 0, {}),
    "sigmoid integer targets": (focal.sigmoid_focal_loss, BINARY.astype(np.int64), {}),
    "sigmoid ignore_index mean": (focal.sigmoid_focal_loss, np.where(SOFT > 0.8, -1.0, BINARY), {"ignore_index": -1}),
    "sigmoid gamma tensor": (focal.sigmoid_focal_loss, BINARY, {"gamma": "@two", "alpha": "@quarter"}),
    "sigmoid per-class gamma list": (focal.sigmoid_focal_loss, BINARY, {"gamma": [1.0, 2.0, 2.0, 3.0, 1.5]}),
    "sigmoid per-class gamma numpy": (focal.sigmoid_focal_loss, BINARY, {"gamma": PER_CLASS}),
    "sigmoid pos_weight list": (focal.sigmoid_focal_loss, BINARY, {"pos_weight": [1.0, 2.0, 2.0, 3.0, 1.5]}),
    "sigmoid weight tensor": (focal.sigmoid_focal_loss, BINARY, {"weight": "@per_class"}),
    "sigmoid weight numpy": (focal.sigmoid_focal_loss, BINARY, {"weight": PER_CLASS}),
    "sigmoid normalizer tensor": (focal.sigmoid_focal_loss, BINARY, {"normalizer": "@normalizer"}),
    "sigmoid normalizer number": (focal.sigmoid_focal_loss, BINARY, {"normalizer": 3.0, "reduction": "sum"}),
    "sigmoid label_smoothing tensor": (focal.sigmoid_focal_loss, BINARY, {"label_smoothing": "@smoothing"}),
    "sigmoid numpy targets": (focal.sigmoid_focal_loss, "numpy", {}),
    "softmax reduction=none": (focal.softmax_focal_loss, LABELS, {"reduction": "none"}),
    "softmax ignore_index mean": (focal.softmax_focal_loss, IGNORED, {"ignore_index": -100}),
    "softmax ignore_index smoothing": (focal.softmax_focal_loss, IGNORED, {"ignore_index": -100,
                                                                           "label_smoothing": 0.1}),
    "softmax smoothing tensor": (focal.softmax_focal_loss, LABELS, {"label_smoothing": "@smoothing"}),
    "softmax where per row": (focal.softmax_focal_loss, LABELS, {"where": np.ones(6, bool)}),
    "softmax where classes tensor": (focal.softmax_focal_loss, np.array([0, 4, 1, 1, 3, 0]), {"where": "@where"}),
    "softmax where list": (focal.softmax_focal_loss, np.array([0, 4, 1, 1, 3, 0]),
                           {"where": [[True, True, False, True, True]]}),
    "softmax where dense": (focal.softmax_focal_loss, np.eye(5, dtype=np.float32)[LABELS], {"where": "@where"}),
    "softmax alpha list": (focal.softmax_focal_loss, LABELS, {"alpha": [0.25, 0.5, 1.0, 1.0, 0.75]}),
    "softmax alpha tensor": (focal.softmax_focal_loss, LABELS, {"alpha": "@per_class", "gamma": "@per_class"}),
    "softmax gamma flsd53": (focal.softmax_focal_loss, LABELS, {"gamma": focal.flsd53}),
    "softmax weight per row": (focal.softmax_focal_loss, LABELS, {"weight": "@row_weight"}),
    "softmax one-hot integer": (focal.softmax_focal_loss, np.eye(5, dtype=np.int64)[LABELS], {}),
    "softmax normalized": (focal.softmax_focal_loss, LABELS, {"normalized": True}),
    "softmax from_logits=False": (focal.softmax_focal_loss, LABELS, {"from_logits": False}),
    "poly1_cross_entropy smoothing": (focal.poly1_cross_entropy, LABELS, {"label_smoothing": 0.1}),
    "negatives sigmoid": (focal.focal_loss_with_negatives, BINARY, {"activation": "sigmoid"}),
    "negatives dense": (focal.focal_loss_with_negatives, np.eye(5, dtype=np.float32)[LABELS], {}),
    "tversky ignore_index": (focal.focal_tversky_loss, IGNORED, {"ignore_index": -100}),
    "tversky dense": (focal.focal_tversky_loss, np.eye(5, dtype=np.float32)[LABELS], {}),
    "dfl integer distances": (focal.distribution_focal_loss, np.floor(DISTANCES).astype(np.int64), {}),
    "dfl reduction=none": (focal.distribution_focal_loss, DISTANCES, {"reduction": "none"}),
    "asymmetric soft": (focal.asymmetric_loss, SOFT, {"gamma_neg": 3.0, "clip": 0.1}),
    "varifocal soft": (focal.varifocal_loss, SOFT * BINARY, {"alpha": "@quarter"}),
    "hard truncated softmax": (focal.hard_truncated_loss, LABELS, {"activation": "softmax", "margin": 0.5}),
}


def _option_call(name: str):
    fn, targets, kwargs = OPTIONS[name]
    names = sorted({v[1:] for v in kwargs.values() if isinstance(v, str) and v.startswith("@")})
    numpy_targets = isinstance(targets, str)
    arrays = (X, *(() if numpy_targets else (targets,)), *(TENSORS[n] for n in names))

    def run(x, *rest):
        given = dict(zip(names, rest[0 if numpy_targets else 1:]))
        t = BINARY if numpy_targets else rest[0]
        args = {k: given[v[1:]] if isinstance(v, str) and v.startswith("@") else v for k, v in kwargs.items()}
        out = fn(x, t, **args)
        return out if out.ndim == 0 else out.sum()

    return run, arrays


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(OPTIONS))
def test_every_option_runs_on_the_device_and_reads_nothing(name, device):
    run, arrays = _option_call(name)
    _call(device, run, *arrays)


@pytest.mark.parametrize("device", DEVICES)
def test_hyperparameter_and_target_gradients_on_the_device(device):
    """Tensors that require a gradient beside the logits: γ, per-class α, soft targets."""
    def run(x, gamma, alpha, targets, labels):
        return (focal.softmax_focal_loss(x, labels, gamma=gamma, alpha=alpha)
                + focal.sigmoid_focal_loss(x, targets, gamma=gamma))

    _call(device, run, X, np.float32(2.0), PER_CLASS, SOFT, LABELS, grad=4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_logits_on_the_device(device, dtype):
    def run(x, labels, binary):
        return focal.softmax_focal_loss(x, labels) + focal.sigmoid_focal_loss(x, binary)

    loss, (grad,), _ = _call(device, run, X, LABELS, BINARY, dtype=getattr(torch, dtype))
    assert loss.dtype == getattr(torch, dtype) and grad.dtype == getattr(torch, dtype)


LINEAR = {
    "softmax": (focal.linear_softmax_focal_loss, {"ignore_index": -100}),
    "softmax no bias": (focal.linear_softmax_focal_loss, {"bias": None}),
    "softmax sample_weight": (focal.linear_softmax_focal_loss, {"sample_weight": "@row_weight"}),
    "softmax reduction=none": (focal.linear_softmax_focal_loss, {"reduction": "none"}),
    "softmax smoothing": (focal.linear_softmax_focal_loss, {"label_smoothing": 0.1, "alpha": [1.0] * 7}),
    "sigmoid": (focal.linear_sigmoid_focal_loss, {}),
    "sigmoid ignore_index": (focal.linear_sigmoid_focal_loss, {"ignore_index": -1}),
    # blocks of classes (focal._class_blocks): 7 classes in blocks of 3, the last ragged
    "softmax class blocks": (focal.linear_softmax_focal_loss, {"ignore_index": -100, "class_chunk_size": 3,
                                                               "alpha": [0.5] * 7}),
    "softmax class blocks reduction=none": (focal.linear_softmax_focal_loss, {"reduction": "none",
                                                                              "class_chunk_size": 3}),
    "sigmoid class blocks": (focal.linear_sigmoid_focal_loss, {"ignore_index": -1, "class_chunk_size": 3}),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(LINEAR))
def test_fused_linear_losses_on_the_device(name, device):
    fn, kwargs = LINEAR[name]
    rows, features, classes = 10, 4, 7
    hidden = RNG.normal(size=(rows, features)).astype(np.float32)
    weight = RNG.normal(size=(classes, features)).astype(np.float32)
    bias = RNG.normal(size=classes).astype(np.float32)
    if fn is focal.linear_softmax_focal_loss:
        targets = RNG.integers(0, classes, rows)
        targets[3] = -100 if "ignore_index" in kwargs else targets[3]
    else:
        targets = (RNG.random((rows, classes)) < 0.3).astype(np.float32)
        targets[2, 1] = -1.0 if "ignore_index" in kwargs else targets[2, 1]
    no_bias = "bias" in kwargs
    kwargs = {k: v for k, v in kwargs.items() if k != "bias"}

    def run(h, w, b, t, row_weight):
        args = {k: row_weight if v == "@row_weight" else v for k, v in kwargs.items()}
        out = fn(h, w, t, None if no_bias else b, chunk_size=4, **args)  # three chunks, the last ragged
        return out if out.ndim == 0 else out.sum()

    _call(device, run, hidden, weight, bias, targets, RNG.random(rows).astype(np.float32), grad=2 if no_bias else 3)


def _criteria():
    import focal.torch as ft

    out = {name: (getattr(ft, name), {}) for name in ft.__all__
           if name not in ("FocalCriterion", "num_positives") and not name.startswith("Linear")}
    out["SigmoidFocalLoss num_positives"] = (ft.SigmoidFocalLoss, {"normalizer": "num_positives"})
    out["SoftmaxFocalLoss alpha list"] = (ft.SoftmaxFocalLoss, {"alpha": [0.25] * 5, "gamma": [2.0] * 5})
    return out


CRITERIA = sorted(_criteria())
SIGMOID_CRITERIA = ("SigmoidFocalLoss", "FocalLossStar", "AsymmetricLoss", "QualityFocalLoss", "VarifocalLoss",
                    "HardTruncatedLoss", "SoftTruncatedLoss", "Poly1FocalLoss")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", CRITERIA)
def test_every_criterion_on_the_device(name, device):
    cls, params = _criteria()[name]
    sigmoid = name.split()[0] in SIGMOID_CRITERIA
    targets = BINARY if sigmoid else DISTANCES if name.startswith("Distribution") else LABELS
    # list parameters are buffers: moved with the module
    _call(device, lambda criterion, x, t: criterion(x, t), X, targets, setup=lambda: cls(**params).to(device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["LinearSoftmaxFocalLoss", "LinearSigmoidFocalLoss"])
def test_linear_criteria_on_the_device(name, device):
    import focal.torch as ft

    rows, features, classes = 10, 4, 7
    hidden = RNG.normal(size=(rows, features)).astype(np.float32)
    targets = RNG.integers(0, classes, rows) if "Softmax" in name else (
        RNG.random((rows, classes)) < 0.3).astype(np.float32)
    with devices.on(device):
        layer = torch.nn.Linear(features, classes, device=device)
        hidden_t, targets_t = devices.tensor(hidden, device).requires_grad_(True), devices.tensor(targets, device)
        with devices.Watch(device) as watch:
            loss = getattr(ft, name)(chunk_size=4)(layer, hidden_t, targets_t)
            inputs = [hidden_t, layer.weight, layer.bias]
            grads = devices.gradients(loss, inputs, device)
    watch.assert_clean()
    assert all(g is not None and g.device.type == device and g.shape == t.shape for g, t in zip(grads, inputs))


@pytest.mark.parametrize("device", DEVICES)
def test_value_and_grad_and_class_balanced_alpha_on_the_device(device):
    with devices.on(device):
        x, labels = devices.tensor(X, device), devices.tensor(LABELS, device)
        counts = devices.tensor(np.array([10, 3, 1, 7, 2]), device)
        weight = devices.tensor(RNG.normal(size=(3, 5)).astype(np.float32), device)
        with devices.Watch(device) as watch:
            alpha = focal.class_balanced_alpha(counts)
            value, grad = focal.value_and_grad(focal.softmax_focal_loss)(x, labels, alpha=alpha)
            linear_value, linear_grads = focal.value_and_grad(focal.linear_softmax_focal_loss)(
                x, weight, LABELS % 3)  # NumPy labels: copied to the device
    watch.assert_clean()
    for out in (alpha, value, grad, linear_value, *linear_grads):
        assert out is None or out.device.type == device


def test_keras_on_the_torch_backend_on_the_device():
    import_or_skip("keras")
    out = run_script("keras_devices.py", KERAS_BACKEND="torch")
    assert out["backend"] == "torch" and out["checked"] == 32, out  # 16 losses and layers x 2 devices
    assert out["failures"] == [], out["failures"]


# --- the watch itself: it sees what it is there to see ---------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_the_watch_sees_a_host_read_and_an_array_made_on_the_cpu(device):
    with devices.on(device):
        x = devices.tensor(X, device)
        with devices.Watch(device) as watch:
            index = torch.arange(5)  # no device: the CPU
            with contextlib.suppress(Exception):  # a read raises on both
                bool((x.sum() > 0).any())
    assert any("arange" in e for e in watch.elsewhere), watch.elsewhere
    assert any("local_scalar_dense" in r or "is_nonzero" in r for r in watch.reads), watch.reads
    del index


def test_the_in_thread_backward_equals_autograd():
    x = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    gamma = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    hidden = torch.tensor(RNG.normal(size=(5, 3)), requires_grad=True)
    weight = torch.tensor(RNG.normal(size=(4, 3)), requires_grad=True)

    def loss():
        return (focal.softmax_focal_loss(x, torch.tensor(LABELS), gamma=gamma, alpha=[0.5, 1.0, 1.0, 2.0, 1.0])
                * focal.sigmoid_focal_loss(x * 2.0, torch.tensor(BINARY, dtype=torch.float64)).exp()
                + focal.linear_softmax_focal_loss(hidden, weight, torch.tensor(LABELS[:5] % 4), chunk_size=2))

    inputs = [x, gamma, hidden, weight]
    ours = devices.backward_here(loss(), inputs)
    expected = torch.autograd.grad(loss(), inputs)
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


# --- the CPU reads by default; the switch --------------------------------------------------------------------------


def test_on_the_cpu_bad_values_raise_by_default_and_the_switch_changes_that(monkeypatch):
    bad = torch.tensor(np.where(BINARY > 0, 2.0, 0.0))  # 2 is no target
    assert focal.get_value_checks() == "auto"
    with pytest.raises(ValueError, match="targets"):
        focal.sigmoid_focal_loss(torch.tensor(X), bad)
    with focal.set_value_checks("nan"):
        assert focal.get_value_checks() == "nan"
        loss = focal.sigmoid_focal_loss(torch.tensor(X), bad, reduction="none")
        assert torch.equal(torch.isnan(loss), bad == 2.0)
    assert focal.get_value_checks() == "auto"  # the block's mode restored
    previous = focal.set_value_checks("nan")  # as a function: from here on
    try:
        assert focal.get_value_checks() == "nan" and torch.isnan(focal.sigmoid_focal_loss(torch.tensor(X), bad))
    finally:
        focal.set_value_checks("auto")
    assert previous.previous == "auto" and repr(previous) == "focal.set_value_checks('nan')"
    with pytest.raises(ValueError, match=r"mode must be one of \('auto', 'raise', 'nan'\), got 'on'"):
        focal.set_value_checks("on")


def test_the_raise_mode_reads_on_an_accelerator_and_meta_is_never_read(monkeypatch):
    from focal.backends import torch as torch_backend

    labels = torch.tensor([0, 7, 1, 2, 3, 4])  # 7: no class
    monkeypatch.setattr(torch_backend.BACKEND, "on_host", lambda x: False)  # as on a GPU
    loss = focal.softmax_focal_loss(torch.tensor(X), labels, reduction="none")
    assert torch.equal(torch.isnan(loss), labels == 7)  # auto: nothing read, the row NaN
    with focal.set_value_checks("raise"), pytest.raises(ValueError, match=r"targets holds class indices"):
        focal.softmax_focal_loss(torch.tensor(X), labels)
    x, labels = torch.tensor(X, device="meta"), labels.to("meta")
    with focal.set_value_checks("raise"), devices.Watch("meta") as watch:  # meta has no values to read
        focal.softmax_focal_loss(x, labels)
    watch.assert_clean()


@pytest.mark.parametrize("value,error", [("raise", None), ("nan", None), ("sometimes", "FOCAL_VALUE_CHECKS")])
def test_the_environment_variable_sets_the_mode(value, error):
    """Read at the first call; a bad value is a ValueError naming the variable there, which the function overrides."""
    code = ("import focal, json, numpy as np\n"
            "out = {}\n"
            "with focal.set_value_checks('auto'):\n"
            "    out['overridden'] = float(focal.sigmoid_focal_loss(np.zeros(2), np.array([0.0, 1.0])))\n"
            "try:\n"
            "    loss = focal.sigmoid_focal_loss(np.zeros(2), np.array([0.0, 2.0]), reduction='none')\n"
            "    out.update(mode=focal.get_value_checks(), nan=np.isnan(loss).tolist())\n"
            "except ValueError as e:\n"
            "    out['error'] = str(e)\n"
            "print(json.dumps(out))\n")
    from helpers import run_command

    out = json.loads(run_command(["-c", code], FOCAL_VALUE_CHECKS=value).stdout.strip().splitlines()[-1])
    # p = 1/2 at x = 0: ((1 − α) + α) (1/2)^2 log 2 over 2 elements
    assert math.isclose(out["overridden"], math.log(2.0) / 8.0, rel_tol=1e-12)
    if value == "raise":
        assert "targets must be labels in [0, 1]" in out["error"]
    elif value == "nan":
        assert out["mode"] == "nan" and out["nan"] == [False, True]
    else:
        assert error in out["error"] and "sometimes" in out["error"] and "'auto'" in out["error"]


# --- JAX and TensorFlow, told their logits live on an accelerator: nothing read back -----------------------------


class _Reads:
    """Every way of reading a JAX or TensorFlow array back to the host, recorded (a record, not an exception: the
    library may catch one). TensorFlow's own gradient functions read the axes and shapes they are given (int32
    tensors that TensorFlow keeps in host memory on a GPU too): those reads are TensorFlow's, not a synchronisation,
    and left out."""

    JAX = ("__bool__", "__float__", "__int__", "__index__", "__complex__", "item", "tolist", "__array__", "_value",
           "__dlpack__")
    TF = ("__bool__", "__nonzero__", "__float__", "__int__", "__index__", "numpy", "_numpy", "__array__")

    def __init__(self, monkeypatch, cls, names) -> None:
        self.seen: list[str] = []
        for name in names:
            original = cls.__dict__[name]
            monkeypatch.setattr(cls, name, self._spy(name, original))

    def _record(self, name: str) -> None:
        frame = sys._getframe(2)
        while frame is not None:
            file = frame.f_code.co_filename.replace("\\", "/")
            if "tensorflow/python/ops/" in file and file.endswith("_grad.py"):
                return
            frame = frame.f_back
        self.seen.append(name)

    def _spy(self, name, original):
        if isinstance(original, property):
            return property(lambda x: (self._record(name), original.__get__(x))[1])
        return lambda x, *a, **k: (self._record(name), original(x, *a, **k))[1]


def _framework(name: str):
    """The array type whose reads are watched, their names, the backend and how to make a CPU array (also on a
    machine with a GPU: the host's reads are the tests' baseline)."""
    if name == "jax":
        jax = import_or_skip("jax")
        from focal.backends import jax as glue

        cpu = jax.devices("cpu")[0]
        return type(jax.numpy.ones(1)), _Reads.JAX, glue.BACKEND, lambda a: jax.device_put(a, cpu)
    tf = import_or_skip("tensorflow")
    from tensorflow.python.framework import ops

    from focal.backends import tensorflow as glue

    def constant(a):
        with tf.device("/CPU:0"):
            return tf.constant(a)

    return ops._EagerTensorBase, _Reads.TF, glue.BACKEND, constant


@pytest.mark.parametrize("framework", ["jax", "tensorflow"])
@pytest.mark.parametrize("name", list(CASES))
def test_jax_and_tensorflow_read_nothing_on_an_accelerator(framework, name, monkeypatch):
    cls, names, backend, to_array = _framework(framework)
    case = CASES[name]
    data = mc.make(case, SCALE, channels_first=False)
    x, targets = to_array(data.logits), to_array(data.targets)
    extras = {k: to_array(v) for k, v in data.extras.items()}
    kwargs = case.call_kwargs(-1, extras)
    loss_fn = getattr(focal, case.loss)
    monkeypatch.setattr(backend, "on_host", lambda array: False)
    reads = _Reads(monkeypatch, cls, names)
    value = loss_fn(x, targets, **kwargs)
    both = focal.value_and_grad(loss_fn)(x, targets, **kwargs)
    if framework == "tensorflow":  # the tape's backward, eagerly
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            taped = loss_fn(x, targets, **kwargs)
        tape.gradient(taped, x)
    assert reads.seen == [], reads.seen
    monkeypatch.undo()
    assert math.isclose(float(value), float(both[0]), rel_tol=1e-5)


@pytest.mark.parametrize("framework", ["jax", "tensorflow"])
def test_on_the_host_jax_and_tensorflow_read_their_checks(framework, monkeypatch):
    """The record above sees reads: a CPU call reads its checks (and raises on a bad one)."""
    cls, names, _, to_array = _framework(framework)
    reads = _Reads(monkeypatch, cls, names)
    focal.softmax_focal_loss(to_array(X), to_array(LABELS))
    assert reads.seen


@pytest.mark.parametrize("framework", ["jax", "tensorflow"])
def test_jax_and_tensorflow_mark_bad_values_nan_on_an_accelerator(framework, monkeypatch):
    _, _, backend, to_array = _framework(framework)
    monkeypatch.setattr(backend, "on_host", lambda array: False)
    labels = LABELS.copy()
    labels[2] = 9
    loss = np.asarray(focal.softmax_focal_loss(to_array(X), to_array(labels), reduction="none"))
    assert np.array_equal(np.isnan(loss), labels == 9)
    with focal.set_value_checks("raise"), pytest.raises(ValueError, match="targets holds class indices"):
        focal.softmax_focal_loss(to_array(X), to_array(labels))


def test_jax_on_a_second_device_makes_nothing_on_the_first():
    import_or_skip("jax")
    out = run_script("jax_devices.py", JAX_PLATFORMS="cpu")
    assert out["devices"] == 2 and out["cases"] == len(mc.CASES) + 3, out
    assert out["failures"] == [], out["failures"]
    assert out["watch_sees"] == ["jnp.arange made an array on None, not the logits' device"]


# --- array-api-strict's device1: the core alone, on a device that is not the CPU ---------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_array_api_strict_on_another_device(name, monkeypatch):
    xp = import_or_skip("array_api_strict")
    device = xp.Device("device1")
    case = CASES[name]
    data = mc.make(case, SCALE, channels_first=False)

    def put(a):
        return xp.asarray(a, device=device)

    extras = {k: put(v) for k, v in data.extras.items()}
    kwargs = case.call_kwargs(-1, extras)
    loss_fn = getattr(focal, case.loss)
    reads = _Reads(monkeypatch, type(put(X)), ("__bool__", "__float__", "__int__", "__index__", "__array__"))
    value = loss_fn(put(data.logits), put(data.targets), **kwargs)
    both, grad = focal.value_and_grad(loss_fn)(put(data.logits), put(data.targets), **kwargs)
    assert reads.seen == []
    assert value.device == device and both.device == device and grad.device == device
    monkeypatch.undo()
    numpy_value = loss_fn(data.logits.astype(np.float64), data.targets, **case.call_kwargs(-1, data.extras))
    assert math.isclose(float(value), float(numpy_value), rel_tol=1e-4)


def test_the_generic_backend_counts_only_the_cpu_as_the_host():
    from focal.backends import Backend

    class Stub:
        def __init__(self, device):
            self.device = device

    backend = Backend(sys.modules["numpy"])
    backend.device = lambda x: x.device  # as array_api_compat.device does for an unknown array
    assert backend.on_host(Stub("cpu")) and backend.on_host(Stub(None))
    assert not backend.on_host(Stub("<CUDA Device 0>"))  # CuPy's
    xp = import_or_skip("array_api_strict")
    generic = Backend(xp)
    assert generic.on_host(xp.asarray(1.0)) and not generic.on_host(xp.asarray(1.0, device=xp.Device("device1")))
