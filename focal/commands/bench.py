"""``python -m focal bench``: ours against every installed peer, one process per framework.

Each implementation computes the summed loss of the same inputs. ``fwd`` is the loss alone (no
gradient wanted), ``fwd+bwd`` the loss and its gradient w.r.t. the logits (``torch.autograd.grad``,
``jax.value_and_grad``, ``tf.GradientTape``): medians of ``--repeats`` runs after ``--warmup``.
``peak MiB`` is the memory in use beyond the inputs at the high-water mark of one fwd+bwd: on
the CPU the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``),
measured in a second process run with ``MALLOC_MMAP_THRESHOLD_`` fixed so freed arrays leave the
resident set (it slows eager code, so the times come from a process without it); on a GPU
the framework's allocator peak; for JAX, XLA's own count of the compiled program's temporaries
and outputs. ``GB/s`` counts the least traffic any implementation needs (logits and targets read,
gradient written) over the fwd+bwd time. Ratios are to ``focal`` in the same shape and mode.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import focal

# name: (shape, variant, GPU only); softmax shapes have the class axis 1 (NCHW) and integer labels
SHAPES: dict[str, tuple[tuple[int, ...], str, bool]] = {
    "anchors": ((65536, 80), "sigmoid", False),
    "segmentation": ((2, 19, 256, 512), "softmax", False),
    "latency": ((1024, 80), "sigmoid", False),
    "anchors-large": ((16, 200000, 80), "sigmoid", True),
    "segmentation-large": ((8, 19, 1024, 2048), "softmax", True),
}
FRAMEWORKS = ("torch", "jax", "tensorflow")
# set in the child that measures memory (CPU: the malloc setting that makes the resident set honest)
MEASURE_MEMORY = os.environ.get("FOCAL_BENCH_MEMORY") == "1"
GAMMA, ALPHA = 2.0, 0.25


@dataclass
class Impl:
    name: str
    mode: str
    fn: Callable[[Any, Any], Any]  # (logits, targets) -> summed loss
    targets: str = "native"  # "native" (ours), "onehot" (dense class-last targets)


@dataclass
class Row:
    impl: str
    mode: str
    shape: str
    dtype: str
    fwd_ms: float
    fwdbwd_ms: float
    peak_mib: float | None
    bytes_moved: int

    def cells(self, ours: Row | None) -> list[str]:
        def ratio(a: float | None, b: float | None) -> str:
            return "-" if a is None or not b else f"{a / b:.2f}"

        gbs = self.bytes_moved / (self.fwdbwd_ms * 1e-3) / 1e9
        peak = "-" if self.peak_mib is None else f"{self.peak_mib:.1f}"
        return [self.impl, self.mode, self.shape, self.dtype, f"{self.fwd_ms:.2f}", f"{self.fwdbwd_ms:.2f}", peak,
                f"{gbs:.1f}", ratio(self.fwdbwd_ms, ours.fwdbwd_ms if ours else None),
                ratio(self.peak_mib, ours.peak_mib if ours else None)]


HEADER = ["implementation", "mode", "shape", "dtype", "fwd ms", "fwd+bwd ms", "peak MiB", "GB/s",
          "time / ours", "memory / ours"]


def _rss() -> tuple[float, float]:
    """(resident MiB now, peak MiB since the last reset)."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _median_ms(run: Callable[[], Any], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def inputs(shape: tuple[int, ...], variant: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float32 logits, targets: 1% positives or integer labels, dense targets of the logits' shape)."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape, dtype=np.float32) * 2.0
    if variant == "sigmoid":
        targets = (rng.random(shape, dtype=np.float32) < 0.01).astype(np.float32)
        return logits, targets, targets
    labels = rng.integers(0, shape[1], size=(shape[0], *shape[2:]))
    onehot = np.moveaxis(np.eye(shape[1], dtype=np.float32)[labels], -1, 1)
    return logits, labels, onehot


def _optional(module: str) -> Any:
    """The module, or None where it is not installed (a peer the bench then leaves out)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


# --- PyTorch -----------------------------------------------------------------------------------------


def _compiling() -> bool:
    return os.environ.get("TORCHDYNAMO_DISABLE", "") != "1"


def _plain(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``fn`` on our plain PyTorch path: what runs before the process compiles, and without a compiler."""
    from ..backends import _torch_fused as fused

    def run(x: Any, t: Any) -> Any:
        enabled, fused._enabled = fused._enabled, False
        try:
            return fn(x, t)
        finally:
            fused._enabled = enabled

    return run


def _torch_impls(variant: str) -> list[Impl]:
    import torch
    import torch.nn.functional as F

    impls: list[Impl] = []
    kornia = _optional("kornia")
    monai_losses = _optional("monai.losses")
    if variant == "sigmoid":
        def ours(x: Any, t: Any) -> Any:
            return focal.sigmoid_focal_loss(x, t, alpha=ALPHA, gamma=GAMMA, reduction="sum")

        try:
            from torchvision.ops import sigmoid_focal_loss as torchvision_loss

            name = "torchvision sigmoid_focal_loss"
        except Exception:  # not installable beside some torch builds: the same formula, re-typed
            name = "torchvision formula (re-typed)"

            def torchvision_loss(x: Any, t: Any, alpha: float, gamma: float, reduction: str) -> Any:
                p = torch.sigmoid(x)
                ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
                p_t = p * t + (1 - p) * (1 - t)
                loss = ce * ((1 - p_t) ** gamma)
                loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
                return loss.sum()

        def tv(x: Any, t: Any) -> Any:
            return torchvision_loss(x, t, alpha=ALPHA, gamma=GAMMA, reduction="sum")

        impls += [Impl("focal", "eager", ours), Impl("focal", "plain path", _plain(ours)), Impl(name, "eager", tv)]
        if _compiling():
            impls += [Impl("focal", "torch.compile", torch.compile(ours, fullgraph=True)),
                      Impl(name, "torch.compile", torch.compile(tv))]
        if kornia:
            impls.append(Impl("kornia binary_focal_loss_with_logits", "eager", lambda x, t: kornia.losses.
                              binary_focal_loss_with_logits(x, t, alpha=ALPHA, gamma=GAMMA, reduction="sum")))
        if monai_losses:
            monai_loss = monai_losses.FocalLoss(use_softmax=False, gamma=GAMMA, alpha=ALPHA, reduction="sum")
            impls.append(Impl("MONAI FocalLoss(sigmoid)", "eager", lambda x, t: monai_loss(x, t)))
        impls.append(Impl("floor: F.binary_cross_entropy_with_logits", "eager",
                          lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="sum")))
        return impls

    def ours_softmax(x: Any, t: Any) -> Any:
        return focal.softmax_focal_loss(x, t, gamma=GAMMA, axis=1, reduction="sum")

    impls += [Impl("focal", "eager", ours_softmax), Impl("focal", "plain path", _plain(ours_softmax))]
    if _compiling():
        impls.append(Impl("focal", "torch.compile", torch.compile(ours_softmax, fullgraph=True)))
    if kornia:
        impls.append(Impl("kornia focal_loss", "eager",
                          lambda x, t: kornia.losses.focal_loss(x, t, alpha=1.0, gamma=GAMMA, reduction="sum")))
    if monai_losses:
        monai_softmax = monai_losses.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=GAMMA, reduction="sum")
        impls.append(Impl("MONAI FocalLoss(softmax)", "eager", lambda x, t: monai_softmax(x, t[:, None])))
    impls.append(Impl("floor: F.cross_entropy", "eager", lambda x, t: F.cross_entropy(x, t, reduction="sum")))
    return impls


def _torch_rows(shape_name: str, device: str, dtype: str, warmup: int, repeats: int) -> list[Row]:
    import torch

    shape, variant, _ = SHAPES[shape_name]
    logits_np, targets_np, _ = inputs(shape, variant)
    x = torch.as_tensor(logits_np, device=device).to(getattr(torch, dtype))
    t = torch.as_tensor(targets_np, device=device)
    t = t.to(x.dtype) if variant == "sigmoid" else t
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    moved = x.numel() * x.element_size() * 2 + t.numel() * t.element_size()
    rows = []
    for impl in _torch_impls(variant):
        def fwd() -> None:
            with torch.no_grad():
                impl.fn(x, t)
            sync()

        leaf = x.detach().requires_grad_(True)

        def fwdbwd() -> None:
            torch.autograd.grad(impl.fn(leaf, t), leaf)
            sync()

        fwd_ms = _median_ms(fwd, warmup, repeats)
        fwdbwd_ms = _median_ms(fwdbwd, warmup, repeats)
        if not MEASURE_MEMORY:
            peak: float | None = None
        elif device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fwdbwd()
            peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        else:
            peak = _cpu_peak(fwdbwd)
        rows.append(Row(impl.name, impl.mode, shape_name, dtype, fwd_ms, fwdbwd_ms, peak, moved))
    return rows


def _cpu_peak(run: Callable[[], Any]) -> float | None:
    if not _reset_rss_peak():
        return None
    base, _ = _rss()
    run()
    return max(_rss()[1] - base, 0.0)


# --- JAX ---------------------------------------------------------------------------------------------


def _jax_impls(variant: str) -> list[Impl]:
    import jax.numpy as jnp
    import optax

    if variant == "sigmoid":
        return [
            Impl("focal", "jit",
                 lambda x, t: focal.sigmoid_focal_loss(x, t, alpha=ALPHA, gamma=GAMMA, reduction="sum")),
            Impl("optax sigmoid_focal_loss", "jit",
                 lambda x, t: jnp.sum(optax.sigmoid_focal_loss(x, t, alpha=ALPHA, gamma=GAMMA))),
            Impl("floor: optax sigmoid_binary_cross_entropy", "jit",
                 lambda x, t: jnp.sum(optax.sigmoid_binary_cross_entropy(x, t))),
        ]
    # JAX convolutions are channels-last: every implementation gets NHWC logits
    return [
        Impl("focal", "jit", lambda x, t: focal.softmax_focal_loss(x, t, gamma=GAMMA, axis=-1, reduction="sum")),
        Impl("optax poly_loss_cross_entropy", "jit",
             lambda x, t: jnp.sum(optax.losses.poly_loss_cross_entropy(x, t, epsilon=2.0)), targets="onehot"),
        Impl("floor: optax softmax_cross_entropy_with_integer_labels", "jit",
             lambda x, t: jnp.sum(optax.softmax_cross_entropy_with_integer_labels(x, t))),
    ]


def _jax_rows(shape_name: str, device: str, dtype: str, warmup: int, repeats: int) -> list[Row]:
    import jax
    import jax.numpy as jnp

    shape, variant, _ = SHAPES[shape_name]
    logits_np, targets_np, dense_np = inputs(shape, variant)
    if variant == "softmax":
        logits_np, dense_np = np.moveaxis(logits_np, 1, -1), np.moveaxis(dense_np, 1, -1)
    target_device = jax.devices("gpu" if device.startswith("cuda") else "cpu")[0]
    x = jax.device_put(jnp.asarray(logits_np, dtype=getattr(jnp, dtype)), target_device)
    native, dense = jax.device_put(targets_np, target_device), jax.device_put(dense_np.astype(x.dtype), target_device)
    rows = []
    for impl in _jax_impls(variant):
        t = dense if impl.targets == "onehot" else native
        if variant == "sigmoid":
            t = t.astype(x.dtype)
        moved = x.size * x.dtype.itemsize * 2 + t.size * t.dtype.itemsize
        fwd_fn, both = jax.jit(impl.fn), jax.jit(jax.value_and_grad(impl.fn))
        fwd_ms = _median_ms(lambda: jax.block_until_ready(fwd_fn(x, t)), warmup, repeats)
        fwdbwd_ms = _median_ms(lambda: jax.block_until_ready(both(x, t)), warmup, repeats)
        memory = both.lower(x, t).compile().memory_analysis()
        peak = None if memory is None else (memory.temp_size_in_bytes + memory.output_size_in_bytes) / 2**20
        rows.append(Row(impl.name, impl.mode, shape_name, dtype, fwd_ms, fwdbwd_ms, peak, moved))
    return rows


# --- TensorFlow --------------------------------------------------------------------------------------


def _tensorflow_impls(variant: str) -> list[Impl]:
    import keras
    import tensorflow as tf

    if variant == "sigmoid":
        keras_loss = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=ALPHA, gamma=GAMMA,
                                                          from_logits=True, reduction="sum")
        ours = (lambda x, t: focal.sigmoid_focal_loss(x, t, alpha=ALPHA, gamma=GAMMA, reduction="sum"), "native")
        theirs = (lambda x, t: keras_loss(t, x), "native")
        floor = (lambda x, t: tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=x)), "native")
        names = ("keras BinaryFocalCrossentropy", "floor: tf.nn.sigmoid_cross_entropy_with_logits")
    else:
        keras_loss = keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=GAMMA, from_logits=True,
                                                               reduction="sum")
        ours = (lambda x, t: focal.softmax_focal_loss(x, t, gamma=GAMMA, axis=-1, reduction="sum"), "native")
        theirs = (lambda x, t: keras_loss(t, x), "onehot")
        floor = (lambda x, t: tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=t, logits=x)),
                 "native")
        names = ("keras CategoricalFocalCrossentropy", "floor: tf.nn.sparse_softmax_cross_entropy_with_logits")
    impls = []
    for name, (fn, targets) in zip(("focal", *names), (ours, theirs, floor)):
        impls.append(Impl(name, "tf.function", tf.function(fn, autograph=False), targets))
        impls.append(Impl(name, "XLA", tf.function(fn, autograph=False, jit_compile=True), targets))
    return impls


def _tensorflow_rows(shape_name: str, device: str, dtype: str, warmup: int, repeats: int) -> list[Row]:
    import tensorflow as tf

    shape, variant, _ = SHAPES[shape_name]
    logits_np, targets_np, dense_np = inputs(shape, variant)
    if variant == "softmax":
        logits_np, dense_np = np.moveaxis(logits_np, 1, -1), np.moveaxis(dense_np, 1, -1)
    name = "/GPU:0" if device.startswith("cuda") else "/CPU:0"
    rows = []
    with tf.device(name):
        x = tf.cast(tf.constant(logits_np), dtype)
        native = tf.constant(targets_np.astype(dtype) if variant == "sigmoid" else targets_np.astype(np.int32))
        dense = tf.cast(tf.constant(dense_np), dtype)
        for impl in _tensorflow_impls(variant):
            t = dense if impl.targets == "onehot" else native
            moved = int(np.prod(shape)) * x.dtype.size * 2 + int(np.prod(t.shape)) * t.dtype.size

            @tf.function(autograph=False, jit_compile=impl.mode == "XLA")
            def both(x: Any, t: Any, fn: Callable[[Any, Any], Any] = impl.fn) -> Any:
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    value = fn(x, t)
                return value, tape.gradient(value, x)

            fwd_ms = _median_ms(lambda: impl.fn(x, t).numpy(), warmup, repeats)
            fwdbwd_ms = _median_ms(lambda: both(x, t)[1].numpy(), warmup, repeats)
            if not MEASURE_MEMORY:
                peak: float | None = None
            elif device.startswith("cuda"):
                tf.config.experimental.reset_memory_stats("GPU:0")
                base = tf.config.experimental.get_memory_info("GPU:0")["current"]
                both(x, t)[1].numpy()
                peak = (tf.config.experimental.get_memory_info("GPU:0")["peak"] - base) / 2**20
            else:
                peak = _cpu_peak(lambda: both(x, t)[1].numpy())
            rows.append(Row(impl.name, impl.mode, shape_name, dtype, fwd_ms, fwdbwd_ms, peak, moved))
    return rows


_ROWS = {"torch": _torch_rows, "jax": _jax_rows, "tensorflow": _tensorflow_rows}


def _copy_bandwidth(framework: str, device: str) -> str | None:
    """The device-to-device copy bandwidth (GB/s, read + write) of a 1 GiB float32 array, for the GPU targets."""
    if framework != "torch" or not device.startswith("cuda"):
        return None
    import torch

    x = torch.empty(2**28, dtype=torch.float32, device=device)
    ms = _median_ms(lambda: (x.clone(), torch.cuda.synchronize()), 3, 10)
    return f"device copy bandwidth: {2 * x.numel() * 4 / (ms * 1e-3) / 1e9:.0f} GB/s"


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        ours = next((r for r in rows if r.shape == row.shape and r.impl == "focal" and r.mode == row.mode), None)
        ours = ours or next((r for r in rows if r.shape == row.shape and r.impl == "focal"), None)
        lines.append("| " + " | ".join(row.cells(ours)) + " |")
    return "\n".join(lines)


def child(framework: str, device: str, shapes: list[str], dtype: str, warmup: int, repeats: int) -> str:
    """One framework's rows, as JSON lines (and its copy bandwidth, on a GPU)."""
    rows: list[Row] = []
    for shape in shapes:
        sys.stderr.write(f"{framework} {shape} ...\n")
        rows += _ROWS[framework](shape, device, dtype, warmup, repeats)
    out = {"rows": [dataclasses.asdict(r) for r in rows], "bandwidth": _copy_bandwidth(framework, device)}
    return json.dumps(out)


def machine() -> str:
    cores = os.cpu_count()
    return f"{platform.node() or 'machine'}: {platform.processor() or platform.machine()}, {cores} CPU cores, " \
           f"Python {platform.python_version()}"


def _child_rows(command: list[str], env: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return None, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


def run(frameworks: list[str] | None, device: str, shapes: list[str] | None, dtype: str, warmup: int, repeats: int,
        variant: str | None, no_compiler: bool = False) -> str:
    """Run each framework in its own processes (one timing, one measuring memory); the report, as markdown.

    The steady state is measured: our PyTorch loss compiles from the first call here (``FOCAL_TORCH_COMPILE_AFTER=0``)
    where a user's process compiles after 100; ``focal plain path`` is what runs before that, and without a compiler.
    """
    chosen = [f for f in (frameworks or FRAMEWORKS) if importlib.util.find_spec(f)]
    gpu = device.startswith("cuda")
    names = shapes or [n for n, (_, v, gpu_only) in SHAPES.items() if (gpu or not gpu_only)]
    names = [n for n in names if variant is None or SHAPES[n][1] == variant]
    base_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "FOCAL_TORCH_COMPILE_AFTER": "0"}
    if no_compiler:
        base_env["TORCHDYNAMO_DISABLE"] = "1"
    memory_env = {**base_env, "FOCAL_BENCH_MEMORY": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    mode = ", no compiler (TORCHDYNAMO_DISABLE=1)" if no_compiler else ""
    parts = [f"# focal bench ({device}, {dtype}{mode})", "", machine(), ""]
    for framework in chosen:
        command = [sys.executable, "-m", "focal", "bench", "--child", "--framework", framework, "--device", device,
                   "--dtype", dtype]
        for name in names:
            command += ["--shape", name]
        timed, error = _child_rows(command + ["--warmup", str(warmup), "--repeats", str(repeats)], base_env)
        measured, memory_error = _child_rows(command + ["--warmup", "1", "--repeats", "1"], memory_env)
        parts += [f"## {framework}", ""]
        if timed is None:
            parts += ["failed:", "```", error, "```", ""]
            continue
        rows = [Row(**r) for r in timed["rows"]]
        for row, other in zip(rows, (measured or {"rows": [{}] * len(rows)})["rows"]):
            row.peak_mib = other.get("peak_mib")
        parts += [markdown(rows), ""]
        if measured is None:
            parts += [f"(memory not measured: {memory_error.strip().splitlines()[-1:]})", ""]
        if timed["bandwidth"]:
            parts += [timed["bandwidth"], ""]
    return "\n".join(parts)
