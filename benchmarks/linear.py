"""The fused linear + focal loss against the unfused loss, the framework's cross entropy on materialised logits and
PyTorch's own chunked linear cross entropy.

    python benchmarks/linear.py                                   # torch, jax, tensorflow at N=4096, H=512, C=32000
    python benchmarks/linear.py --framework torch --rows 2048 --classes 8000 --classes 32000 --classes 128000 \
        --classes 256000 --plot linear.png                        # memory and time against the classes
    python benchmarks/linear.py --framework torch --dtype bfloat16 --gamma 0 --bias
    python benchmarks/linear.py --device cuda --framework torch --framework jax      # on a GPU

Per framework, value+grad (w.r.t. hidden and weight, and the bias on PyTorch with ``--bias``) of: ``fused``
(``focal.linear_softmax_focal_loss``), ``unfused`` (``focal.softmax_focal_loss(hidden @ weight.T + bias, labels)``)
and ``floor`` (the framework's own cross entropy of the same logits: ``F.cross_entropy``, optax's
``softmax_cross_entropy_with_integer_labels``, ``tf.nn.sparse_softmax_cross_entropy_with_logits``); for PyTorch also
``chunked`` (PyTorch's own fused linear cross entropy, ``F.linear_cross_entropy`` with
``LinearCrossEntropyOptions()``: its chunked path, the bar of issue 32). γ = 2 (``--gamma``), 10% of the labels -100
(ignored), float32 (``--dtype bfloat16``), no bias (``--bias``). JAX's run under ``jax.jit``, TensorFlow's under
``tf.function``, PyTorch's eagerly. Times: one process per framework, the implementations in turn, each round in the
other order than the last; a ratio is the median of the rounds' ratios. Memory: the growth of the process's peak
resident set during one value+grad after a warm-up, with the previous step's gradients let go of first as
``zero_grad()`` does (``VmHWM``, reset through ``/proc/self/clear_refs``; glibc told to map every block of 64 KiB and
more on its own, so that a freed block leaves the resident set), each implementation in a process of its own; for
JAX, XLA's own count of the compiled program's temporaries, outputs not counted (its buffers outlive a call, so the
resident set misses them); on a GPU (``--device cuda``: PyTorch and JAX), PyTorch's peak of allocated device memory
during the value+grad over what was allocated before it. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from focal.commands.bench import _rss  # (resident MiB, peak MiB since the last reset), from /proc/self/status

IMPLS = ("fused", "unfused", "floor")
EXTRA_IMPLS = {"torch": ("chunked",)}  # a framework's own fused linear cross entropy, where it has one


def _impls(framework: str) -> tuple[str, ...]:
    return IMPLS + EXTRA_IMPLS.get(framework, ())


def _inputs(args: argparse.Namespace, seed: int = 0) -> dict[str, Any]:
    import numpy as np

    rows, hidden, classes = args.rows, args.hidden, args.classes[0]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=rows)
    labels[rng.random(rows) < 0.1] = -100
    return {"hidden": rng.normal(size=(rows, hidden)).astype(np.float32),
            "weight": (rng.normal(size=(classes, hidden)) / hidden ** 0.5).astype(np.float32),
            "bias": (rng.normal(size=classes) * 0.1).astype(np.float32) if args.bias else None, "labels": labels}


def _multihot(data: dict[str, Any]) -> Any:
    """The sigmoid loss's targets: bool, each row's label positive (none where it is ignored)."""
    import numpy as np

    labels = data["labels"]
    targets = np.zeros((len(labels), data["weight"].shape[0]), dtype=bool)
    kept = labels >= 0
    targets[np.arange(len(labels))[kept], labels[kept]] = True
    return targets


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The fused and unfused losses' options: γ, the ignored label, the rows per chunk."""
    return {"gamma": args.gamma, "ignore_index": -100}


def _torch(data: dict[str, Any], args: argparse.Namespace) -> dict[str, Callable[[], Any]]:
    import torch
    import torch.nn.functional as F

    import focal

    dtype, device = getattr(torch, args.dtype), args.device

    def tensor(name: str) -> Any:
        return None if data[name] is None else torch.tensor(data[name], dtype=dtype, device=device,
                                                             requires_grad=True)

    h, w, b = tensor("hidden"), tensor("weight"), tensor("bias")
    labels = torch.tensor(data["labels"], device=device)
    options = _options(args)

    def step(loss: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            h.grad = w.grad = None
            if b is not None:
                b.grad = None
            value = loss()
            value.backward()
            return value.item()  # the step done (on a GPU: waited for)
        return run

    chunked = step(lambda: F.linear_cross_entropy(h, w, labels, linear_bias=b, ignore_index=-100,
                                                  options=torch.nn.LinearCrossEntropyOptions()))
    if args.loss == "sigmoid":
        targets = torch.tensor(_multihot(data), device=device)
        return {
            "fused": step(lambda: focal.linear_sigmoid_focal_loss(h, w, targets, b, gamma=args.gamma,
                                                                  chunk_size=args.chunk)),
            "unfused": step(lambda: focal.sigmoid_focal_loss(F.linear(h, w, b), targets, gamma=args.gamma)),
            "floor": step(lambda: F.binary_cross_entropy_with_logits(F.linear(h, w, b), targets.to(h.dtype))),
            "chunked": chunked,
        }
    return {
        "fused": step(lambda: focal.linear_softmax_focal_loss(h, w, labels, b, chunk_size=args.chunk, **options)),
        "unfused": step(lambda: focal.softmax_focal_loss(F.linear(h, w, b), labels, **options)),
        "floor": step(lambda: F.cross_entropy(F.linear(h, w, b), labels, ignore_index=-100)),
        "chunked": chunked,
    }


def _jax(data: dict[str, Any], args: argparse.Namespace) -> dict[str, Callable[[], Any]]:
    import jax
    import jax.numpy as jnp
    import optax

    import focal

    where = jax.devices("gpu" if args.device.startswith("cuda") else "cpu")[0]
    h, w = (jax.device_put(jnp.asarray(data[k], dtype=args.dtype), where) for k in ("hidden", "weight"))
    b = None if data["bias"] is None else jax.device_put(jnp.asarray(data["bias"], dtype=args.dtype), where)
    labels = jax.device_put(data["labels"], where)
    valid = labels != -100
    options = _options(args)

    def logits(h: Any, w: Any) -> Any:
        return h @ w.T if b is None else h @ w.T + b

    def floor(h: Any, w: Any) -> Any:
        ce = optax.softmax_cross_entropy_with_integer_labels(logits(h, w), jnp.where(valid, labels, 0))
        return jnp.sum(jnp.where(valid, ce, 0.0)) / jnp.maximum(jnp.sum(valid), 1)

    losses = {
        "fused": lambda h, w: focal.linear_softmax_focal_loss(h, w, labels, b, chunk_size=args.chunk, **options),
        "unfused": lambda h, w: focal.softmax_focal_loss(logits(h, w), labels, **options),
        "floor": floor,
    }
    if args.loss == "sigmoid":
        targets = jax.device_put(_multihot(data), where)
        losses = {
            "fused": lambda h, w: focal.linear_sigmoid_focal_loss(h, w, targets, b, gamma=args.gamma,
                                                                  chunk_size=args.chunk),
            "unfused": lambda h, w: focal.sigmoid_focal_loss(logits(h, w), targets, gamma=args.gamma),
            "floor": lambda h, w: jnp.mean(optax.sigmoid_binary_cross_entropy(logits(h, w), targets)),
        }

    def step(loss: Callable[..., Any]) -> Callable[[], Any]:
        compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))

        def run() -> Any:
            return jax.block_until_ready(compiled(h, w))

        def memory_mib() -> float:  # XLA's own count: the compiled program's temporaries (its outputs, the loss
            # and the gradients, are what the other frameworks' measure nets out too)
            analysis = compiled.lower(h, w).compile().memory_analysis()
            return analysis.temp_size_in_bytes / 2**20

        run.memory_mib = memory_mib  # type: ignore[attr-defined]
        return run

    return {name: step(loss) for name, loss in losses.items()}


def _tensorflow(data: dict[str, Any], args: argparse.Namespace) -> dict[str, Callable[[], Any]]:
    import tensorflow as tf

    if args.device != "cpu":
        raise ValueError("benchmarks/linear.py runs TensorFlow on the CPU only (tensorflow-cpu): leave out --device")

    import focal

    h, w = tf.constant(data["hidden"], dtype=args.dtype), tf.Variable(tf.constant(data["weight"], dtype=args.dtype))
    b = None if data["bias"] is None else tf.constant(data["bias"], dtype=args.dtype)
    labels = tf.constant(data["labels"])
    valid = labels != -100
    options = _options(args)

    def logits(h: Any) -> Any:
        z = tf.matmul(h, w, transpose_b=True)
        return z if b is None else z + b

    def floor(h: Any) -> Any:
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.where(valid, labels, 0), logits(h))
        ce = tf.cast(ce, tf.float32)
        return tf.reduce_sum(tf.where(valid, ce, 0.0)) / tf.maximum(tf.reduce_sum(tf.cast(valid, tf.float32)), 1.0)

    losses = {
        "fused": lambda h: focal.linear_softmax_focal_loss(h, w, labels, b, chunk_size=args.chunk, **options),
        "unfused": lambda h: focal.softmax_focal_loss(logits(h), labels, **options),
        "floor": floor,
    }
    if args.loss == "sigmoid":
        targets = tf.constant(_multihot(data))
        losses = {
            "fused": lambda h: focal.linear_sigmoid_focal_loss(h, w, targets, b, gamma=args.gamma,
                                                               chunk_size=args.chunk),
            "unfused": lambda h: focal.sigmoid_focal_loss(logits(h), targets, gamma=args.gamma),
            "floor": lambda h: binary_floor(logits(h)),
        }

    def binary_floor(z: Any) -> Any:
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(targets, z.dtype), z))

    def step(loss: Callable[..., Any]) -> Callable[[], Any]:
        @tf.function
        def run(h: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(h)
                value = loss(h)
            return value, tape.gradient(value, [h, w])

        # the loss read back (the step done); the gradients stay tensors, as a training step leaves them (a NumPy
        # copy of them would add to the peak measured)
        return lambda: run(h)[0].numpy()

    return {name: step(loss) for name, loss in losses.items()}


FRAMEWORKS = {"torch": _torch, "jax": _jax, "tensorflow": _tensorflow}


def _child_times(args: argparse.Namespace) -> dict[str, Any]:
    steps = FRAMEWORKS[args.framework](_inputs(args), args)
    for run in steps.values():  # compile / warm up
        run()
    names = tuple(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.repeats):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    ratios = {name: statistics.median(f / o for f, o in zip(times["fused"], times[name])) for name in names}
    return {"ms": {name: 1e3 * statistics.median(t) for name, t in times.items()}, "fused_over": ratios}


def _child_memory(args: argparse.Namespace) -> dict[str, Any]:
    run = FRAMEWORKS[args.framework](_inputs(args), args)[args.impl]
    if hasattr(run, "memory_mib"):  # JAX: XLA's buffers outlive a call, the resident set misses them
        return {"peak_mib": run.memory_mib()}
    if args.device != "cpu":  # PyTorch on a GPU: its allocator's own count
        import torch

        run()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run()
        return {"peak_mib": (torch.cuda.max_memory_allocated() - base) / 2**20}
    run()  # compile and warm up; then the peak of one more
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    base, _ = _rss()
    run()
    return {"peak_mib": max(_rss()[1] - base, 0.0)}


def _spawn(args: argparse.Namespace, *extra: str, classes: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--framework", args.framework, "--rows", str(args.rows), "--hidden",
               str(args.hidden), "--classes", str(classes), "--repeats", str(args.repeats), "--device", args.device,
               "--dtype", args.dtype, "--gamma", str(args.gamma), "--loss", args.loss,
               *(["--bias"] if args.bias else []), *extra]
    if args.chunk is not None:
        command += ["--chunk", str(args.chunk)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if "memory" in extra:
        # every block of 64 KiB and more its own mapping, returned when freed: the resident set then follows the live
        # arrays (glibc would keep a freed chunk-sized block in its heap, and the next call's peak would miss it)
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", action="append", choices=sorted(FRAMEWORKS))
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--classes", type=int, action="append")
    parser.add_argument("--chunk", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: PyTorch and JAX on the GPU")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--gamma", type=float, default=2.0, help="the focal losses' gamma (default 2)")
    parser.add_argument("--bias", action="store_true", help="a bias of the linear layer too")
    parser.add_argument("--loss", default="softmax", choices=["softmax", "sigmoid"],
                        help="sigmoid: linear_sigmoid_focal_loss on multi-hot targets (the floor the framework's "
                             "binary cross entropy, PyTorch's bar still F.linear_cross_entropy)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-times", action="store_true", help="memory only (the plot's sweep)")
    parser.add_argument("--plot", help="a PNG of peak memory against the classes")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--child", choices=["times", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--impl", choices=sorted({i for f in FRAMEWORKS for i in _impls(f)}), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.classes = args.classes or [32000]
    if args.child:
        args.framework = args.framework[0]
        print(json.dumps(_child_times(args) if args.child == "times" else _child_memory(args)))
        return
    results = []
    print(f"{args.loss} loss, rows {args.rows}, hidden {args.hidden}, {args.dtype}, gamma {args.gamma:g}, "
          f"{'with' if args.bias else 'no'} bias, 10% of the labels ignored, value+grad w.r.t. hidden and weight"
          f"{' and bias' if args.bias else ''}, {args.repeats} rounds, device {args.device}\n")
    print("| framework | classes | impl | ms | fused time / this | peak MiB | fused memory / this |")
    print("|---|---|---|---|---|---|---|")
    default = list(FRAMEWORKS) if args.device == "cpu" else ["torch", "jax"]
    for framework in args.framework or default:
        one = argparse.Namespace(**{**vars(args), "framework": framework})
        for classes in args.classes:
            times = None if args.no_times else _spawn(one, "--child", "times", classes=classes)
            memory = {impl: _spawn(one, "--child", "memory", "--impl", impl, classes=classes)["peak_mib"]
                      for impl in _impls(framework)}
            for impl in _impls(framework):
                ms = "-" if times is None else f"{times['ms'][impl]:.0f}"
                ratio = "-" if times is None else f"{times['fused_over'][impl]:.2f}"
                print(f"| {framework} | {classes} | {impl} | {ms} | {ratio} | {memory[impl]:.0f} | "
                      f"{memory['fused'] / max(memory[impl], 1e-9):.3f} |", flush=True)
                results.append({"framework": framework, "classes": classes, "impl": impl, "ms": ms, "ratio": ratio,
                                "peak_mib": memory[impl], "dtype": args.dtype, "gamma": args.gamma, "loss": args.loss,
                                "bias": args.bias, "rows": args.rows, "hidden": args.hidden})
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    if args.plot:
        _plot(results, args.plot, args)


def _plot(results: list[dict[str, Any]], path: str, args: argparse.Namespace) -> None:
    """Peak memory and (where measured) time of one value+grad against the classes, one line per implementation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = any(r["ms"] != "-" for r in results)
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(11 if timed else 6, 4), squeeze=False)
    panels = [("peak_mib", "peak memory growth, MiB")] + ([("ms", "time of one value+grad, ms")] if timed else [])
    for ax, (key, label) in zip(axes[0], panels):
        for framework in sorted({r["framework"] for r in results}):
            for impl, style in zip(_impls(framework), ("-o", "--s", ":^", "-.d")):
                points = sorted((r["classes"], float(r[key])) for r in results
                                if r["framework"] == framework and r["impl"] == impl and r[key] != "-")
                ax.plot([p[0] for p in points], [p[1] for p in points], style, label=f"{framework} {impl}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("classes C")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(f"{args.rows} rows x hidden {args.hidden}, {args.dtype}, gamma {args.gamma:g}, "
                 f"{'bias, ' if args.bias else ''}{'2-core CPU' if args.device == 'cpu' else args.device}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
