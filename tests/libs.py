"""The libraries and devices the conformance suite runs on, each behind one small adapter.

An adapter turns NumPy test data into its library's arrays on its device, reads results back, and
differentiates or compiles a function with its framework's own machinery. Libraries are found by
import; GPUs by asking each framework. ``FOCAL_REQUIRE_BACKENDS`` (comma-separated names) turns a
library that fails to import into an error instead of a skip, which is what CI sets.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np

REQUIRED = {n for n in os.environ.get("FOCAL_REQUIRE_BACKENDS", "").split(",") if n}


class Lib:
    """NumPy-like: value only, no autodiff."""

    name = "numpy"
    autodiff = False
    half_dtypes: tuple[str, ...] = ("float16",)

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.xp = importlib.import_module(self.module)

    module = "numpy"

    @property
    def id(self) -> str:
        return f"{self.name}-{self.device}"

    def dtype(self, name: str) -> Any:
        return getattr(self.xp, name)

    def array(self, a: Any, dtype: str | None = None) -> Any:
        a = np.asarray(a)
        return self.xp.asarray(a.astype(dtype) if dtype else a)

    def numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) if np.asarray(x).dtype.kind != "V" else np.asarray(x)

    def is_native(self, x: Any) -> bool:
        return isinstance(x, (np.ndarray, np.generic))

    def on_device(self, x: Any) -> bool:
        return True

    def sum(self, x: Any) -> Any:
        return self.xp.sum(x)

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return fn


class ArrayApiStrict(Lib):
    name = module = "array_api_strict"
    half_dtypes = ()

    def array(self, a: Any, dtype: str | None = None) -> Any:
        a = np.asarray(a)
        return self.xp.asarray(a.astype(dtype) if dtype else a)

    def numpy(self, x: Any) -> np.ndarray:
        return np.asarray(self.xp.to_numpy(x) if hasattr(self.xp, "to_numpy") else x.__array__(), dtype=np.float64)

    def is_native(self, x: Any) -> bool:
        return type(x).__module__.startswith("array_api_strict")


class CuPy(Lib):
    name = module = "cupy"

    def array(self, a: Any, dtype: str | None = None) -> Any:
        a = np.asarray(a)
        return self.xp.asarray(a.astype(dtype) if dtype else a)

    def numpy(self, x: Any) -> np.ndarray:
        return np.asarray(self.xp.asnumpy(x), dtype=np.float64)

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self.xp.ndarray)


class Jax(Lib):
    name = module = "jax"
    autodiff = True
    half_dtypes = ("float16", "bfloat16")

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        import jax
        import jax.numpy as jnp

        # x64 stays JAX's default (off); tests in float64 turn it on for themselves (conftest's _jax_precision)
        self.jax, self.jnp = jax, jnp
        self._device = jax.devices(device)[0]

    def dtype(self, name: str) -> Any:
        return getattr(self.jnp, name)

    def sum(self, x: Any) -> Any:
        return self.jnp.sum(x)

    def array(self, a: Any, dtype: str | None = None) -> Any:
        a = np.asarray(a)
        if dtype == "bfloat16":
            return self.jax.device_put(self.jnp.asarray(a.astype(np.float32), dtype=self.jnp.bfloat16), self._device)
        out = self.jax.device_put(a.astype(dtype) if dtype else a, self._device)
        # with x64 off JAX makes float32 of float64 silently: a test that asks for float64 must run with x64 on
        assert dtype is None or out.dtype == dtype, f"JAX gave {out.dtype} for {dtype}: mark the test x64"
        return out

    def numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x.astype(self.jnp.float32) if x.dtype == self.jnp.bfloat16 else x, dtype=np.float64)

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self.jax.Array)

    def on_device(self, x: Any) -> bool:
        return x.devices() == {self._device}

    def grad(self, fn: Callable[[Any], Any], x: Any) -> Any:
        return self.jax.grad(fn)(x)

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self.jax.jit(fn)


class Torch(Lib):
    name = module = "torch"
    autodiff = True
    half_dtypes = ("float16", "bfloat16")

    def array(self, a: Any, dtype: str | None = None) -> Any:
        torch = self.xp
        a = np.asarray(a)
        if dtype == "bfloat16":
            return torch.as_tensor(a.astype(np.float32), device=self.device).to(torch.bfloat16)
        return torch.as_tensor(a.astype(dtype) if dtype else a, device=self.device)

    def numpy(self, x: Any) -> np.ndarray:
        return x.detach().to("cpu", dtype=self.xp.float64).numpy()

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self.xp.Tensor)

    def on_device(self, x: Any) -> bool:
        return x.device.type == self.device

    def grad(self, fn: Callable[[Any], Any], x: Any) -> Any:
        x = x.detach().clone().requires_grad_(True)
        fn(x).backward()
        return x.grad

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        # a fresh cache: across a long session dynamo's recompile limit would otherwise send later
        # tests' functions to eager mode, where values are concrete and checked eagerly
        self.xp._dynamo.reset()
        return self.xp.compile(fn)


class TensorFlow(Lib):
    name = module = "tensorflow"
    autodiff = True
    half_dtypes = ("float16", "bfloat16")

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self.tf_device = "/GPU:0" if device == "gpu" else "/CPU:0"

    def array(self, a: Any, dtype: str | None = None) -> Any:
        tf = self.xp
        a = np.asarray(a)
        with tf.device(self.tf_device):
            if dtype == "bfloat16":
                return tf.cast(tf.constant(a.astype(np.float32)), tf.bfloat16)
            return tf.identity(tf.constant(a.astype(dtype) if dtype else a))

    def numpy(self, x: Any) -> np.ndarray:
        return self.xp.cast(x, self.xp.float64).numpy()

    def is_native(self, x: Any) -> bool:
        return self.xp.is_tensor(x)

    def sum(self, x: Any) -> Any:
        return self.xp.reduce_sum(x)

    def on_device(self, x: Any) -> bool:
        return x.device.endswith("CPU:0" if self.device == "cpu" else "GPU:0")

    def grad(self, fn: Callable[[Any], Any], x: Any) -> Any:
        tf = self.xp
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return tape.gradient(y, x)

    def compile(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self.xp.function(fn, jit_compile=True)


def _gpu_present(name: str) -> bool:
    try:
        if name == "torch":
            import torch

            return bool(torch.cuda.is_available())
        if name == "jax":
            import jax

            return bool(jax.devices("gpu"))
        if name == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
        if name == "cupy":
            import cupy

            return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False
    return False


def _available() -> tuple[list[Lib], list[str]]:
    from focal.commands.frameworks import load_triton_first

    load_triton_first()  # TensorFlow is imported below: triton (torch.compile's) after it would crash the process
    libs: list[Lib] = []
    missing: list[str] = []
    for cls, gpu_name in ((Lib, None), (ArrayApiStrict, None), (Jax, "gpu"), (Torch, "cuda"),
                          (TensorFlow, "gpu"), (CuPy, "cuda")):
        try:
            importlib.import_module(cls.module)
        except ImportError:
            missing.append(cls.name)
            continue
        if cls is not CuPy:
            libs.append(cls("cpu"))
        if gpu_name and _gpu_present(cls.name):
            libs.append(cls(gpu_name))
    not_there = sorted(REQUIRED & set(missing))
    if not_there:
        raise RuntimeError(f"FOCAL_REQUIRE_BACKENDS names {not_there}, which do not import here")
    return libs, missing


LIBS, MISSING = _available()
AUTODIFF_LIBS = [lib for lib in LIBS if lib.autodiff]
