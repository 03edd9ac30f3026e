"""How each framework runs a matrix cell: its arrays, its floors, its peers, and its value+grad.

Every implementation is ``fn(x, d)`` with ``d`` a dict of the case's other arrays (targets, labels, dense targets,
extras), so a compiler sees them as inputs, not constants. ``Framework.timers(fn)`` gives ``(forward, value+grad)``
as the framework's users run them in the mode.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

import focal

from . import matrix_cases as mc
from .bench import _cpu_peak, _optional

Fn = Callable[[Any, dict[str, Any]], Any]


def ours(case: mc.Case, axis: int) -> Fn:
    loss = getattr(focal, case.loss)

    def run(x: Any, d: dict[str, Any]) -> Any:
        return loss(x, d["targets"], **case.call_kwargs(axis, d))

    return run


def _smoothed(d: dict[str, Any], classes: int) -> Any:
    return d["dense"] * (1.0 - mc.SMOOTHING) + mc.SMOOTHING / classes


class Framework(abc.ABC):
    """One framework in one mode; a subclass per framework says how it makes arrays, its floors and its timers."""

    name = ""
    axis = -1  # the class axis of softmax data
    channels_first = False

    def __init__(self, mode: str, device: str = "cpu") -> None:
        self.mode, self.device = mode, device

    def convert(self, data: mc.Data) -> tuple[Any, dict[str, Any]]:
        d = {"targets": data.targets, **data.extras}
        for key in ("labels", "dense"):
            if getattr(data, key) is not None:
                d[key] = getattr(data, key)
        return self.array(data.logits), {k: self.array(v) for k, v in d.items()}

    @abc.abstractmethod
    def array(self, a: np.ndarray) -> Any:
        """``a`` as this framework's array (integers as the index dtype its losses take)."""

    @abc.abstractmethod
    def floor(self, name: str) -> Fn:
        """The framework's own cross entropy named ``name`` (``Case.floor``)."""

    def peer(self, name: str) -> tuple[str, Fn] | None:
        return None

    def prepare(self, fn: Fn) -> Fn:
        """``fn`` as this mode runs it (compiled, or not)."""
        return fn

    @abc.abstractmethod
    def timers(self, fn: Fn, x: Any, d: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
        """``(the loss alone, the loss and its gradient)`` of ``fn`` on ``x``, as the mode's users run them."""

    def ours_timers(self, case: mc.Case, x: Any, d: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
        return self.timers(self.prepare(ours(case, self.axis)), x, d)

    def peak(self, both: Callable[[], Any], x: Any, d: dict[str, Any]) -> float | None:
        """The memory one fwd+bwd holds at its peak beyond the inputs, MiB (``bench._cpu_peak``)."""
        return _cpu_peak(both)

    def naive(self, x: Any) -> Any:
        from ..backends import backend_for

        return backend_for(x).xp


class Torch(Framework):
    name = "torch"
    axis = 1
    channels_first = True

    def __init__(self, mode: str, device: str = "cpu") -> None:
        super().__init__(mode, device)
        import torch

        self.torch = torch
        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def array(self, a: np.ndarray) -> Any:
        t = self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
        return t.to(self.torch.int64) if a.dtype.kind == "i" else t

    def floor(self, name: str) -> Fn:
        import torch.nn.functional as F

        ce = {
            "bce": lambda x, d: F.binary_cross_entropy_with_logits(x, d["dense"], reduction="sum"),
            "bce-probs": lambda x, d: F.binary_cross_entropy(x, d["dense"], reduction="sum"),
            "ce": lambda x, d: F.cross_entropy(x, d["labels"], reduction="sum"),
            "ce-weight": lambda x, d: F.cross_entropy(x, d["labels"], weight=d["alpha"], reduction="sum"),
            "ce-ignore": lambda x, d: F.cross_entropy(x, d["labels"], ignore_index=mc.IGNORE_LABEL, reduction="sum"),
            "ce-smooth": lambda x, d: F.cross_entropy(x, d["labels"], label_smoothing=mc.SMOOTHING,
                                                       reduction="sum"),
            "ce-probs": lambda x, d: F.cross_entropy(x, d["dense"], reduction="sum"),
            "nll": lambda x, d: F.nll_loss(self.torch.log(x), d["labels"], reduction="sum"),
        }
        return ce[name]

    def peer(self, name: str) -> tuple[str, Fn] | None:
        tv = _optional("torchvision.ops")
        kornia = _optional("kornia.losses")
        yolo = _optional("ultralytics.utils.loss")
        timm = _optional("timm.loss")
        axis = self.axis
        if name in ("sigmoid-focal", "sigmoid-focal-0.5") and tv:
            gamma = 0.5 if name.endswith("0.5") else 2.0
            return "torchvision", lambda x, d: tv.sigmoid_focal_loss(x, d["dense"], gamma=gamma, reduction="sum")
        if name == "softmax-focal-labels" and kornia:
            return "kornia", lambda x, d: kornia.focal_loss(x, d["labels"], alpha=None, reduction="sum")
        if name == "vfl" and yolo:
            vfl = yolo.VarifocalLoss()
            return "ultralytics VarifocalLoss", lambda x, d: vfl(x, d["dense"], (d["dense"] > 0).to(x.dtype))
        if name == "dfl" and yolo:
            dfl = yolo.DFLoss(mc.CLASSES["bins"])
            return "ultralytics DFLoss", lambda x, d: dfl(x, d["targets"]).sum()
        if name == "asl" and timm:
            asl = timm.AsymmetricLossMultiLabel(gamma_neg=4, gamma_pos=0, clip=0.05)
            return "timm AsymmetricLossMultiLabel", lambda x, d: asl(x, d["dense"])
        if name == "asl-softmax" and timm:
            single = timm.AsymmetricLossSingleLabel(gamma_pos=0, gamma_neg=4, eps=mc.SMOOTHING, reduction="none")

            def rows(x: Any, d: dict[str, Any]) -> Any:  # timm's classes on the last axis of 2-d logits
                return single(x.movedim(axis, -1).reshape(-1, x.shape[axis]), d["labels"].reshape(-1)).sum()
            return "timm AsymmetricLossSingleLabel", rows
        return _naive(self, name, axis)

    def prepare(self, fn: Fn) -> Fn:
        if self.mode == "torch.compile":
            return self.torch.compile(fn)
        return fn

    def timers(self, fn: Fn, x: Any, d: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
        torch = self.torch
        leaf = x.detach().requires_grad_(True)

        def forward() -> Any:
            with torch.no_grad():
                value = fn(x, d)
            self.sync()
            return value

        def both() -> Any:
            value = fn(leaf, d)
            grad = torch.autograd.grad(value, leaf)[0]
            self.sync()
            return value, grad

        return forward, both


class Jax(Framework):
    name = "jax"

    def __init__(self, mode: str, device: str = "cpu") -> None:
        super().__init__(mode, device)
        import jax

        self.jax = jax
        self.target = jax.devices("gpu" if device.startswith("cuda") else "cpu")[0]

    def array(self, a: np.ndarray) -> Any:
        return self.jax.device_put(a.astype(np.int32) if a.dtype.kind == "i" else a, self.target)

    def floor(self, name: str) -> Fn:
        import jax.numpy as jnp
        import optax

        def labels_ce(x: Any, d: dict[str, Any]) -> Any:
            return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(x, d["labels"]))

        ce = {
            "bce": lambda x, d: jnp.sum(optax.sigmoid_binary_cross_entropy(x, d["dense"])),
            # optax has no cross entropy of probabilities: the two logs
            "bce-probs": lambda x, d: -jnp.sum(d["dense"] * jnp.log(x) + (1 - d["dense"]) * jnp.log1p(-x)),
            "ce": labels_ce,
            "ce-weight": lambda x, d: jnp.sum(optax.softmax_cross_entropy_with_integer_labels(x, d["labels"])
                                              * d["alpha"][d["labels"]]),
            "ce-ignore": lambda x, d: jnp.sum(optax.softmax_cross_entropy_with_integer_labels(
                x, jnp.where(d["labels"] == mc.IGNORE_LABEL, 0, d["labels"])) * (d["labels"] != mc.IGNORE_LABEL)),
            "ce-smooth": lambda x, d: jnp.sum(optax.softmax_cross_entropy(x, _smoothed(d, x.shape[-1]))),
            "ce-probs": lambda x, d: jnp.sum(optax.softmax_cross_entropy(x, d["dense"])),
            "nll": lambda x, d: -jnp.sum(jnp.log(jnp.take_along_axis(x, d["labels"][..., None], axis=-1))),
        }
        return ce[name]

    def peer(self, name: str) -> tuple[str, Fn] | None:
        import jax.numpy as jnp
        import optax

        if name in ("sigmoid-focal", "sigmoid-focal-0.5"):
            gamma = 0.5 if name.endswith("0.5") else 2.0
            return "optax", lambda x, d: jnp.sum(optax.sigmoid_focal_loss(x, d["dense"], alpha=0.25, gamma=gamma))
        if name == "poly1-ce":
            return "optax", lambda x, d: jnp.sum(optax.losses.poly_loss_cross_entropy(x, d["dense"], epsilon=1.0))
        return _naive(self, name, self.axis)

    def timers(self, fn: Fn, x: Any, d: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
        jax = self.jax
        forward, both = jax.jit(fn), jax.jit(jax.value_and_grad(fn))

        def run_both() -> Any:
            return jax.block_until_ready(both(x, d))

        run_both.jitted = both  # type: ignore[attr-defined]
        return (lambda: jax.block_until_ready(forward(x, d))), run_both

    def peak(self, both: Callable[[], Any], x: Any, d: dict[str, Any]) -> float | None:
        """XLA's own count of the compiled fwd+bwd's temporaries and outputs."""
        memory = both.jitted.lower(x, d).compile().memory_analysis()  # type: ignore[attr-defined]
        return None if memory is None else (memory.temp_size_in_bytes + memory.output_size_in_bytes) / 2**20


class TensorFlow(Framework):
    name = "tensorflow"

    def __init__(self, mode: str, device: str = "cpu") -> None:
        super().__init__(mode, device)
        import tensorflow as tf

        self.tf = tf

    def array(self, a: np.ndarray) -> Any:
        return self.tf.constant(a.astype(np.int32) if a.dtype.kind == "i" else a)

    def floor(self, name: str) -> Fn:
        import keras

        tf = self.tf

        def sparse(x: Any, labels: Any) -> Any:
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x)

        ce = {
            "bce": lambda x, d: tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=d["dense"], logits=x)),
            "bce-probs": lambda x, d: tf.reduce_sum(keras.ops.binary_crossentropy(d["dense"], x)),
            "ce": lambda x, d: tf.reduce_sum(sparse(x, d["labels"])),
            "ce-weight": lambda x, d: tf.reduce_sum(sparse(x, d["labels"]) * tf.gather(d["alpha"], d["labels"])),
            "ce-ignore": lambda x, d: tf.reduce_sum(sparse(x, tf.where(d["labels"] == mc.IGNORE_LABEL, 0, d["labels"]))
                                                    * tf.cast(d["labels"] != mc.IGNORE_LABEL, x.dtype)),
            "ce-smooth": lambda x, d: tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(
                labels=_smoothed(d, x.shape[-1]), logits=x)),
            "ce-probs": lambda x, d: tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(labels=d["dense"],
                                                                                           logits=x)),
            "nll": lambda x, d: tf.reduce_sum(keras.ops.sparse_categorical_crossentropy(d["labels"], x)),
        }
        return ce[name]

    def peer(self, name: str) -> tuple[str, Fn] | None:
        import keras

        if name in ("sigmoid-focal", "sigmoid-focal-0.5"):
            gamma = 0.5 if name.endswith("0.5") else 2.0
            loss = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=gamma,
                                                        from_logits=True, reduction="sum")
            return "Keras BinaryFocalCrossentropy", lambda x, d: loss(d["dense"], x)
        if name.startswith("softmax-focal"):
            smoothing = mc.SMOOTHING if name.endswith("smooth") else 0.0
            categorical = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=2.0, from_logits=True,
                                                                    label_smoothing=smoothing, reduction="sum")
            return "Keras CategoricalFocalCrossentropy", lambda x, d: categorical(d["dense"], x)
        return _naive(self, name, self.axis)

    def prepare(self, fn: Fn) -> Fn:
        return self.tf.function(fn, autograph=False, jit_compile=self.mode == "XLA")

    def timers(self, fn: Fn, x: Any, d: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
        tf = self.tf

        @tf.function(autograph=False, jit_compile=self.mode == "XLA")
        def both(x: Any, d: dict[str, Any]) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = fn(x, d)
            return value, tape.gradient(value, x)

        return (lambda: fn(x, d).numpy()), (lambda: both(x, d)[1].numpy())


def _naive(framework: Framework, name: str, axis: int) -> tuple[str, Fn] | None:
    """The formula in a few array-API lines, differentiated by the framework: where no published peer runs."""
    xp = framework.naive
    naive: dict[str, Fn] = {
        "softmax-focal-dense": lambda x, d: mc.naive_dense_softmax_focal(xp(x), x, d["dense"], axis),
        "softmax-focal-smooth": lambda x, d: mc.naive_dense_softmax_focal(xp(x), x, d["dense"], axis,
                                                                        smoothing=mc.SMOOTHING),
        "qfl": lambda x, d: mc.naive_quality_focal(xp(x), x, d["dense"]),
        "asl": lambda x, d: mc.naive_asymmetric(xp(x), x, d["dense"]),
        "dfl": lambda x, d: mc.naive_dfl(xp(x), x, d["targets"]),
        "tversky": lambda x, d: mc.naive_tversky(xp(x), x, d["dense"], axis),
    }
    return ("naive formula", naive[name]) if name in naive else None


class NumPy(Framework):
    """NumPy has no autodiff and no cross entropy: the floor is the cross entropy and its gradient written by hand
    (log-softmax or log-sigmoid, one pass), ours ``focal.value_and_grad``; no peer."""

    name = "numpy"
    xp: Any = np  # the module the floors are written in

    def array(self, a: np.ndarray) -> Any:
        return a

    def floor(self, name: str) -> Fn:
        xp = self.xp

        def sigmoid(x: Any, d: dict[str, Any], grad: bool) -> Any:
            y = d["dense"]
            if name == "bce-probs":
                loss = -xp.sum(y * xp.log(x) + (1 - y) * xp.log1p(-x))
                return (loss, (x - y) / (x * (1 - x))) if grad else loss
            loss = xp.sum(xp.maximum(x, 0) - x * y + xp.log1p(xp.exp(-xp.abs(x))))
            return (loss, 1 / (1 + xp.exp(-x)) - y) if grad else loss

        def softmax(x: Any, d: dict[str, Any], grad: bool) -> Any:
            if "dense" not in d:  # DFL: the floor is the cross entropy of the nearest bins
                d = {**d, "dense": xp.eye(x.shape[-1], dtype=x.dtype)[d["labels"]]}
            y = d["dense"] if name != "ce-smooth" else _smoothed(d, x.shape[-1])
            if name == "ce-weight":
                y = y * d["alpha"]
            if name == "nll":
                loss = -xp.sum(y * xp.log(x))
                return (loss, -y / x) if grad else loss
            shifted = x - xp.max(x, axis=-1, keepdims=True)
            log_p = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
            loss = -xp.sum(y * log_p)
            if not grad:
                return loss
            return loss, xp.exp(log_p) * xp.sum(y, axis=-1, keepdims=True) - y

        chosen = sigmoid if name.startswith("bce") else softmax

        def floor(x: Any, d: dict[str, Any], grad: bool = False) -> Any:
            return chosen(x, d, grad)

        return floor

    def ours_timers(self, case: mc.Case, x: Any, d: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
        fn, both = ours(case, self.axis), focal.value_and_grad(getattr(focal, case.loss))
        return (lambda: fn(x, d)), (lambda: both(x, d["targets"], **case.call_kwargs(self.axis, d)))

    def timers(self, fn: Fn, x: Any, d: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
        return (lambda: fn(x, d)), (lambda: fn(x, d, True))  # type: ignore[call-arg]


class CuPy(NumPy):
    """CuPy on a CUDA device, as NumPy: the floor written by hand in CuPy, ours ``focal.value_and_grad``; each call
    waits for the device. No peer; memory not measured (the pool keeps what it allocated)."""

    name = "cupy"

    def __init__(self, mode: str, device: str = "cpu") -> None:
        if not device.startswith("cuda"):
            raise ValueError(f"the cupy mode runs on a CUDA device: pass --device cuda, got --device {device}")
        super().__init__(mode, device)
        self.xp = importlib.import_module("cupy")

    def array(self, a: np.ndarray) -> Any:
        return self.xp.asarray(a)

    def _synced(self, run: Callable[[], Any]) -> Callable[[], Any]:
        def synced() -> Any:
            out = run()
            self.xp.cuda.Device().synchronize()
            return out

        return synced

    def ours_timers(self, case: mc.Case, x: Any, d: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
        forward, both = super().ours_timers(case, x, d)
        return self._synced(forward), self._synced(both)

    def timers(self, fn: Fn, x: Any, d: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
        forward, both = super().timers(fn, x, d)
        return self._synced(forward), self._synced(both)

    def peak(self, both: Callable[[], Any], x: Any, d: dict[str, Any]) -> float | None:
        return None


MODES: dict[str, tuple[type[Framework], dict[str, str], bool]] = {
    # mode: (framework, its child's environment, whether a compiler fuses the kernel)
    "torch eager": (Torch, {"TORCHDYNAMO_DISABLE": "1"}, False),
    "torch default": (Torch, {"FOCAL_TORCH_COMPILE_AFTER": "0"}, True),
    "torch.compile": (Torch, {"FOCAL_TORCH_COMPILE_AFTER": "0"}, True),
    "jax.jit": (Jax, {}, True),
    "XLA": (TensorFlow, {}, True),
    "tf.function": (TensorFlow, {}, False),
    "numpy": (NumPy, {}, False),
    "cupy": (CuPy, {}, False),  # --device cuda only
}
FRAMEWORK_MODULE = {"torch eager": "torch", "torch default": "torch", "torch.compile": "torch", "jax.jit": "jax",
                    "XLA": "tensorflow", "tf.function": "tensorflow", "numpy": "numpy", "cupy": "cupy"}
