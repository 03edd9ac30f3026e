"""``python -m focal bench --matrix``: every public loss and main option, on every framework mode, against the
framework's own cross entropy of the same shape and targets (the floor) and the peer.

Each mode runs in a process of its own (``matrix_frameworks.MODES``: PyTorch without a compiler, PyTorch's default
path in steady state, a user's ``torch.compile``, ``jax.jit``, TensorFlow's XLA and plain ``tf.function``, NumPy;
with ``--device cuda`` the PyTorch and JAX modes and CuPy).
In it, each case's implementations run in turn, ``repeats`` times after ``warmup``, alternating (ours, floor, peer):
a ratio is the median of the per-round ratios, so a slow patch of the machine slows both sides of it. ``fwd`` is the
summed loss with no gradient wanted, ``fwd+bwd`` the loss and its gradient w.r.t. the logits. With ``--memory`` a
second process per mode measures each implementation's peak memory in one fwd+bwd, after an unmeasured one (as
``python -m focal bench``).

Targets (issue 21): fwd+bwd <= 2.0x the floor without a compiler and <= 1.5x where one fuses; fwd <= 1.5x the floor;
never slower than the peer; memory no more than the peer's.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import matrix_cases as mc
from . import matrix_frameworks as mf
from .bench import machine

MEASURE_MEMORY = os.environ.get("FOCAL_BENCH_MEMORY") == "1"
FUSED_TARGET, PLAIN_TARGET, FORWARD_TARGET = 1.5, 2.0, 1.5


@dataclass
class Cell:
    case: str
    mode: str
    ours_ms: float | None = None  # fwd+bwd
    floor_ms: float | None = None
    vs_floor: float | None = None  # median of per-round ratios
    fwd_vs_floor: float | None = None
    peer: str | None = None
    vs_peer: float | None = None
    fwd_vs_peer: float | None = None
    ours_mib: float | None = None
    peer_mib: float | None = None
    floor_mib: float | None = None
    error: str | None = None

    def target(self) -> float:
        return FUSED_TARGET if mf.MODES[self.mode][2] else PLAIN_TARGET

    def misses(self) -> list[str]:
        """What this cell misses of its targets, in words (empty: it meets them all)."""
        out = []
        if self.vs_floor is not None and self.vs_floor > self.target():
            out.append(f"fwd+bwd {self.vs_floor:.2f}x floor > {self.target()}")
        if self.fwd_vs_floor is not None and self.fwd_vs_floor > FORWARD_TARGET:
            out.append(f"fwd {self.fwd_vs_floor:.2f}x floor > {FORWARD_TARGET}")
        if self.vs_peer is not None and self.vs_peer > 1.0:
            out.append(f"{self.vs_peer:.2f}x peer")
        if self.ours_mib is not None and self.peer_mib is not None and self.ours_mib > self.peer_mib * 1.05 + 1:
            out.append(f"memory {self.ours_mib:.0f} > peer's {self.peer_mib:.0f} MiB")
        return out


def _rounds(runs: Sequence[Callable[[], Any]], warmup: int, repeats: int) -> list[list[float]]:
    """Each run's times (s), the runs alternating within each round (and their order reversed every other round)."""
    for run in runs:
        for _ in range(warmup):
            run()
    times: list[list[float]] = [[] for _ in runs]
    for i in range(repeats):
        order = list(enumerate(runs))
        for k, run in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - start)
    return times


def _ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def _measure_case(fw: mf.Framework, case: mc.Case, scale: float, warmup: int, repeats: int) -> Cell:
    cell = Cell(case.name, fw.mode)
    data = mc.make(case, scale, fw.channels_first)
    x, d = fw.convert(data)
    impls: list[tuple[Callable[[], Any], Callable[[], Any]]] = [fw.ours_timers(case, x, d)]
    impls.append(fw.timers(fw.prepare(fw.floor(case.floor)), x, d))
    peer = fw.peer(case.peer) if case.peer else None
    if peer is not None:
        cell.peer = peer[0]
        impls.append(fw.timers(fw.prepare(peer[1]), x, d))
    if MEASURE_MEMORY:
        for _, run in impls:  # the process's one-time allocations (thread pools, caches) before any is measured
            run()
        peaks = [fw.peak(run, x, d) for _, run in impls]
        cell.ours_mib, cell.floor_mib = peaks[0], peaks[1]
        cell.peer_mib = peaks[2] if peer is not None else None
        return cell
    forward = _rounds([f for f, _ in impls], warmup, repeats)
    both = _rounds([b for _, b in impls], warmup, repeats)
    cell.ours_ms, cell.floor_ms = (statistics.median(t) * 1e3 for t in both[:2])
    cell.vs_floor, cell.fwd_vs_floor = _ratio(both[0], both[1]), _ratio(forward[0], forward[1])
    if peer is not None:
        cell.vs_peer, cell.fwd_vs_peer = _ratio(both[0], both[2]), _ratio(forward[0], forward[2])
    return cell


def child(mode: str, names: Sequence[str] | None, scale: float, warmup: int, repeats: int,
          device: str = "cpu") -> str:
    """One mode's cells, as one JSON line."""
    framework, _, _ = mf.MODES[mode]
    fw = framework(mode, device)
    cells = []
    for case in select(names):
        sys.stderr.write(f"{mode}: {case.name}\n")
        if mode == "torch.compile":
            import torch

            torch._dynamo.reset()  # a fresh compile per case, as a user's process has (and no recompile limit)
        try:
            cells.append(_measure_case(fw, case, scale, warmup, repeats))
        except Exception as error:  # noqa: BLE001 - a cell that fails is reported, the others still run
            cells.append(Cell(case.name, mode, error=f"{type(error).__name__}: {str(error)[:200]}"))
    return json.dumps([dataclasses.asdict(c) for c in cells])


def select(names: Sequence[str] | None) -> list[mc.Case]:
    """The cases whose name contains one of ``names`` (all without)."""
    return [c for c in mc.CASES if not names or any(n in c.name for n in names)]


def _child_cells(mode: str, names: Sequence[str] | None, scale: float, warmup: int, repeats: int,
                 memory: bool, device: str) -> tuple[list[Cell], str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **mf.MODES[mode][1]}
    if memory:
        env.update({"FOCAL_BENCH_MEMORY": "1", "MALLOC_MMAP_THRESHOLD_": "65536"})
    command = [sys.executable, "-m", "focal", "bench", "--matrix-child", mode, "--scale", str(scale),
               "--warmup", str(warmup), "--repeats", str(repeats), "--device", device]
    for name in names or ():
        command += ["--case", name]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return [], done.stderr[-2000:]
    return [Cell(**c) for c in json.loads(done.stdout.strip().splitlines()[-1])], ""


GPU_MODES = ("torch eager", "torch default", "torch.compile", "jax.jit", "cupy")  # the modes that run on a CUDA device


def available(modes: Sequence[str] | None, device: str = "cpu") -> list[str]:
    cpu_modes = tuple(m for m in mf.MODES if m != "cupy")
    chosen = modes or (GPU_MODES if device.startswith("cuda") else cpu_modes)
    return [m for m in chosen if importlib.util.find_spec(mf.FRAMEWORK_MODULE[m])]


def measure(modes: Sequence[str] | None, names: Sequence[str] | None, scale: float, warmup: int, repeats: int,
            memory: bool, device: str = "cpu") -> tuple[list[Cell], list[str]]:
    """Every cell of the chosen modes and cases; and the errors of modes whose process failed."""
    cells: list[Cell] = []
    failures = []
    for mode in available(modes, device):
        timed, error = _child_cells(mode, names, scale, warmup, repeats, memory=False, device=device)
        if error:
            failures.append(f"{mode}: {error}")
            continue
        if memory:
            measured, error = _child_cells(mode, names, scale, 1, 1, memory=True, device=device)
            for cell, other in zip(timed, measured):
                cell.ours_mib, cell.peer_mib, cell.floor_mib = other.ours_mib, other.peer_mib, other.floor_mib
        cells += timed
    return cells, failures


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(cells: Sequence[Cell], scale: float, device: str = "cpu") -> str:
    lines = [f"# focal bench --matrix ({device}, float32, scale {scale})", "", machine(), "",
             f"Targets: fwd+bwd <= {PLAIN_TARGET}x the floor without a compiler, <= {FUSED_TARGET}x where one fuses; "
             f"fwd <= {FORWARD_TARGET}x; <= 1x the peer. Ratios are medians of alternating rounds.", ""]
    header = ["case", "fwd+bwd ms", "floor ms", "x floor", "fwd x floor", "peer", "x peer", "fwd x peer",
              "MiB (peer)", "misses"]
    for mode in dict.fromkeys(c.mode for c in cells):
        rows = [c for c in cells if c.mode == mode]
        met = sum(1 for c in rows if not c.error and not c.misses())
        lines += [f"## {mode}: {met} of {len(rows)} cells meet every target", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for c in rows:
            if c.error:
                lines.append(f"| {c.case} | failed: {c.error} |" + " |" * (len(header) - 2))
                continue
            memory = "-" if c.ours_mib is None else f"{c.ours_mib:.0f} ({_fmt(c.peer_mib, 0)})"
            lines.append("| " + " | ".join([c.case, _fmt(c.ours_ms, 1), _fmt(c.floor_ms, 1), _fmt(c.vs_floor),
                                            _fmt(c.fwd_vs_floor), c.peer or "-", _fmt(c.vs_peer),
                                            _fmt(c.fwd_vs_peer), memory, "; ".join(c.misses()) or "ok"]) + " |")
        lines.append("")
    return "\n".join(lines)


def heatmap(cells: Sequence[Cell], path: str) -> str:
    """A PNG of the ratios to the floor (fwd+bwd and fwd), cases down, modes across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    cases = list(dict.fromkeys(c.case for c in cells))
    modes = list(dict.fromkeys(c.mode for c in cells))
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.6 * len(modes), 1.5 + 0.32 * len(cases)), sharey=True)
    for ax, key, title in zip(axes, ("vs_floor", "fwd_vs_floor"), ("fwd+bwd / floor", "fwd / floor")):
        grid = [[next((getattr(c, key) for c in cells if c.case == case and c.mode == mode), None) or float("nan")
                 for mode in modes] for case in cases]
        image = ax.imshow(grid, cmap="RdYlGn_r", norm=LogNorm(vmin=0.5, vmax=8.0), aspect="auto")
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if value == value:
                    ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(modes)), modes, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(cases)), cases, fontsize=8)
        ax.set_title(title)
    fig.colorbar(image, ax=axes, shrink=0.6, label="ours / framework's cross entropy")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
