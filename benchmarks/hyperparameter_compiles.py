"""Compiles (or traces) for a 10-value gamma schedule, per framework: prints a markdown table.

    python benchmarks/hyperparameter_compiles.py

Each row runs one training-loop idiom over the same ten gamma values and counts what its framework
compiled: a ``jax.jit`` step given gamma as an argument (``_cache_size()``), a ``tf.function`` step
reading a ``tf.Variable`` gamma (its tracing count), PyTorch's default path for a large input (the
kernel compiled by torch.compile, 65536+ elements; dynamo's graph count) with gamma as a Python
float and as a tensor, and a ``torch.compile(fullgraph=True)`` step given a tensor gamma (its frame
count). Where an idiom fails (a release that read gamma as a static number), the row says so and
counts the fallback a user would have had to write (gamma static / a Python number).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402

import focal  # noqa: E402

GAMMAS = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0]
RNG = np.random.default_rng(0)
SMALL = RNG.normal(size=(64, 10)).astype(np.float32)
SMALL_Y = (RNG.random((64, 10)) < 0.2).astype(np.float32)
LARGE = RNG.normal(size=(1024, 80)).astype(np.float32)  # 81920 elements: PyTorch's compiled path
LARGE_Y = (RNG.random((1024, 80)) < 0.01).astype(np.float32)


def _said(error: Exception) -> str:
    """The last line of an error's message, short (what the user saw)."""
    return str(error).strip().splitlines()[-1].strip()[:70].replace("|", "/")


def jax_rows() -> list[tuple[str, str]]:
    import jax

    x, y = jax.numpy.asarray(SMALL), jax.numpy.asarray(SMALL_Y)
    step = jax.jit(jax.value_and_grad(lambda v, g: focal.sigmoid_focal_loss(v, y, gamma=g), argnums=(0, 1)))
    try:
        for g in GAMMAS:
            step(x, g)
        return [("JAX: `jax.jit` step, gamma an argument", str(step._cache_size()))]
    except TypeError as error:
        static = jax.jit(jax.grad(lambda v, g: focal.sigmoid_focal_loss(v, y, gamma=g)), static_argnames="g")
        for g in GAMMAS:
            static(x, g=g)
        return [("JAX: `jax.jit` step, gamma an argument", f"TypeError ({_said(error)}); static: "
                                                              f"{static._cache_size()}")]


def tensorflow_rows() -> list[tuple[str, str]]:
    import tensorflow as tf

    x, y = tf.constant(SMALL), tf.constant(SMALL_Y)
    gamma = tf.Variable(2.0)

    @tf.function
    def step(v: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = focal.sigmoid_focal_loss(v, y, gamma=gamma)
        return tape.gradient(loss, v)

    try:
        for g in GAMMAS:
            gamma.assign(g)
            step(x)
        return [("TensorFlow: `tf.function` step, a `tf.Variable` gamma", str(step.experimental_get_tracing_count()))]
    except (TypeError, ValueError) as error:
        by_number = tf.function(lambda v, g: focal.sigmoid_focal_loss(v, y, gamma=g))
        for g in GAMMAS:
            by_number(x, g)
        return [("TensorFlow: `tf.function` step, a `tf.Variable` gamma",
                 f"{type(error).__name__} ({_said(error)}); a Python float: "
                 f"{by_number.experimental_get_tracing_count()}")]


def torch_rows() -> list[tuple[str, str]]:
    import torch
    from torch._dynamo.testing import CompileCounter
    from torch._dynamo.utils import counters

    rows = []
    x, y = torch.as_tensor(LARGE), torch.as_tensor(LARGE_Y)
    for what, make in (("a Python float", float), ("a tensor", torch.tensor)):
        torch._dynamo.reset()
        graphs = []
        for g in GAMMAS:
            before = counters["stats"]["unique_graphs"]
            leaf = x.clone().requires_grad_(True)
            focal.sigmoid_focal_loss(leaf, y, gamma=make(g)).backward()
            graphs.append(counters["stats"]["unique_graphs"] - before)
        rows.append((f"PyTorch default path (65536+ elements), gamma {what}",
                     f"{sum(graphs)} graphs ({graphs[0]} at the first value, {sum(graphs[1:])} after)"))
    torch._dynamo.reset()
    counter = CompileCounter()
    small, small_y = torch.as_tensor(SMALL), torch.as_tensor(SMALL_Y)
    step = torch.compile(lambda v, g: focal.sigmoid_focal_loss(v, small_y, gamma=g), fullgraph=True, backend=counter)
    try:
        for g in GAMMAS:
            step(small.clone().requires_grad_(True), torch.tensor(g)).backward()
        rows.append(("PyTorch `torch.compile(fullgraph=True)`, a tensor gamma", str(counter.frame_count)))
    except Exception as error:  # noqa: BLE001 - what dynamo raised is the row
        rows.append(("PyTorch `torch.compile(fullgraph=True)`, a tensor gamma",
                     f"{type(error).__name__} ({_said(error)})"))
    return rows


def main() -> None:
    rows: list[tuple[str, str]] = []
    for framework in sys.argv[1:] or ("jax", "tensorflow", "torch"):
        rows += {"jax": jax_rows, "tensorflow": tensorflow_rows, "torch": torch_rows}[framework]()
    print(f"Compiles for a schedule of {len(GAMMAS)} gamma values ({', '.join(map(str, GAMMAS))})\n")
    print("| idiom | compiles / traces |\n|---|---|")
    for idiom, count in rows:
        print(f"| {idiom} | {count} |")


if __name__ == "__main__":
    main()
