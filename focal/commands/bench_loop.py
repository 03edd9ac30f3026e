"""``python -m focal bench --loop``: a user's first training steps, each implementation in a fresh process.

30 steps of the sigmoid loss's forward and backward on anchor counts that change every step (65536, 81920,
98304 x 80 in turn, as a detector's image sizes do) and a γ schedule (2, then 1.5 at step 10, then 1 at step
20), with the compiler's on-disk cache empty: every compile the steps cause is inside the time. Only the loss
is timed (inputs are made outside the clock); the process's start and imports are not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

STEPS = 30
ANCHORS = (65536, 81920, 98304)
CLASSES = 80
ALPHA = 0.25


def gamma_at(step: int) -> float:
    return 2.0 if step < 10 else 1.5 if step < 20 else 1.0


def _loss(impl: str) -> Any:
    import torch.nn.functional as F

    import focal

    if impl == "focal":
        return lambda x, t, gamma: focal.sigmoid_focal_loss(x, t, alpha=ALPHA, gamma=gamma, reduction="sum")
    if impl == "torchvision":
        from torchvision.ops import sigmoid_focal_loss

        return lambda x, t, gamma: sigmoid_focal_loss(x, t, alpha=ALPHA, gamma=gamma, reduction="sum")
    return lambda x, t, gamma: F.binary_cross_entropy_with_logits(x, t, reduction="sum")


def child(impl: str) -> str:
    """The steps, in this (fresh) process: JSON with the first step's and the total time, and the compiles."""
    import torch
    from torch._dynamo.utils import counters

    compiled_before = counters["stats"]["unique_graphs"]  # a Counter: 0 where nothing was compiled
    loss = _loss(impl)
    generator = torch.Generator().manual_seed(0)
    times = []
    for step in range(STEPS):
        shape = (ANCHORS[step % len(ANCHORS)], CLASSES)
        x = (torch.randn(shape, generator=generator) * 2.0).requires_grad_(True)
        t = (torch.rand(shape, generator=generator) < 0.01).float()
        start = time.perf_counter()
        loss(x, t, gamma_at(step)).backward()
        times.append(time.perf_counter() - start)
    compiles = int(counters["stats"]["unique_graphs"] - compiled_before)
    return json.dumps({"first_s": times[0], "total_s": sum(times), "compiles": compiles})


IMPLS = ("focal", "torchvision", "floor: F.binary_cross_entropy_with_logits")


def run(no_compiler: bool) -> str:
    """Each implementation in a fresh process with an empty compiler cache; the report, as markdown."""
    import importlib.util

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if no_compiler:
        env["TORCHDYNAMO_DISABLE"] = "1"
    mode = "no compiler (TORCHDYNAMO_DISABLE=1)" if no_compiler else "default"
    lines = [f"### first {STEPS} training steps, sigmoid, {mode}", "",
             "| implementation | first step s | all steps s | compiles | time / ours |", "|---|---|---|---|---|"]
    ours = None
    for impl in IMPLS:
        if impl == "torchvision" and importlib.util.find_spec("torchvision") is None:
            continue
        with tempfile.TemporaryDirectory() as cache:
            done = subprocess.run([sys.executable, "-m", "focal", "bench", "--loop-child", impl], capture_output=True,
                                  text=True, env={**env, "TORCHINDUCTOR_CACHE_DIR": cache})
        if done.returncode != 0:
            lines.append(f"| {impl} | failed: {done.stderr.strip().splitlines()[-1:]} | | | |")
            continue
        out = json.loads(done.stdout.strip().splitlines()[-1])
        if impl == "focal":
            ours = out["total_s"]
        ratio = "-" if ours is None else f"{out['total_s'] / ours:.2f}"
        lines.append(f"| {impl} | {out['first_s']:.2f} | {out['total_s']:.2f} | {out['compiles']} | {ratio} |")
    return "\n".join(lines)
