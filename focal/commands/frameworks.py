"""The installed array libraries, each with its own autodiff, for the commands of ``python -m focal``.

Imported only by the commands: ``import focal`` stays free of frameworks.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import focal

ValueAndGrad = Callable[[Any], tuple[Any, Any]]


@dataclass(frozen=True)
class Framework:
    """``asarray`` from NumPy float64; ``value_and_grad(fn)``, the framework's own autodiff (compiled
    where the framework compiles: ``jax.jit``, ``tf.function``), or ``None`` for libraries without
    one (their gradients come from ``focal.value_and_grad``)."""

    name: str
    asarray: Callable[[np.ndarray], Any]
    value_and_grad: Callable[[Callable[[Any], Any]], ValueAndGrad] | None


def _jax() -> Framework:
    import jax

    jax.config.update("jax_enable_x64", True)
    return Framework("jax", jax.numpy.asarray, lambda fn: jax.jit(jax.value_and_grad(fn)))


def _torch() -> Framework:
    import torch

    def value_and_grad(fn: Callable[[Any], Any]) -> ValueAndGrad:
        def both(x: Any) -> tuple[Any, Any]:
            x = x.detach().requires_grad_(True)
            value = fn(x)
            value.backward()
            return value.detach(), x.grad

        return both

    return Framework("torch", torch.from_numpy, value_and_grad)


def import_quietly(name: str) -> Any:
    """``import name``, with the process's standard error closed at the file-descriptor level meanwhile where
    ``TF_CPP_MIN_LOG_LEVEL`` asks for quiet (the commands set it to 2): TensorFlow 2.21 writes its C++ start-up
    log (the oneDNN banner, twice) before it reads its log level. An import error still raises, after."""
    if name in sys.modules or int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") or "0") < 1:
        return importlib.import_module(name)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            return importlib.import_module(name)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _tensorflow() -> Framework:
    tf = import_quietly("tensorflow")

    def value_and_grad(fn: Callable[[Any], Any]) -> ValueAndGrad:
        @tf.function(autograph=False)
        def both(x: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = fn(x)
            return value, tape.gradient(value, x)

        return both

    return Framework("tensorflow", tf.constant, value_and_grad)


def _plain(name: str) -> Callable[[], Framework]:
    return lambda: Framework(name, importlib.import_module(name).asarray, None)


_MAKERS: dict[str, Callable[[], Framework]] = {
    "numpy": _plain("numpy"), "array_api_strict": _plain("array_api_strict"), "jax": _jax, "torch": _torch,
    "tensorflow": _tensorflow, "cupy": _plain("cupy"),
}
NAMES = tuple(_MAKERS)


def load_triton_first() -> None:
    """Import triton before TensorFlow, where both are installed (CUDA builds of PyTorch ship triton).

    TensorFlow 2.20 and later load their library with ``RTLD_GLOBAL``, so its statically linked LLVM
    takes the place of triton's: importing triton afterwards (``torch.compile`` does) crashes the
    process (tensorflow/tensorflow#124205). Imported first, triton keeps its own.
    """
    if "tensorflow" in sys.modules or "triton" in sys.modules:
        return
    if importlib.util.find_spec("triton") is not None and importlib.util.find_spec("tensorflow") is not None:
        importlib.import_module("triton")


def installed(names: tuple[str, ...] = NAMES) -> list[Framework]:
    """The frameworks among ``names`` that import here, in that order."""
    if "torch" in names and "tensorflow" in names:
        load_triton_first()
    found = []
    for name in names:
        try:
            found.append(_MAKERS[name]())
        except ImportError:
            continue
    return found


def value_and_grad(
    framework: Framework, loss: Callable[..., Any], x: Any, *args: Any, **params: Any
) -> tuple[Any, Any]:
    """``loss(x, *args, **params)`` and its gradient w.r.t. ``x``: the framework's autodiff where it has one."""
    if framework.value_and_grad is None:
        return focal.value_and_grad(loss)(x, *args, **params)
    return framework.value_and_grad(lambda v: loss(v, *args, **params))(x)


def to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    if hasattr(x, "get"):  # CuPy
        x = x.get()
    return np.asarray(x, dtype=np.float64)
