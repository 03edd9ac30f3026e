"""``python -m focal demo`` and ``plot``, and every example, in a shortened mode: what they print."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import require_installed, run_command
from libs import LIBS

from focal.commands.plot import VARIANTS, curves

EXAMPLE_LINE = re.compile(r"loss: (.+?)\s+minority AP: ([0-9.]+)\s+recall: ([0-9.]+)")
PNG = b"\x89PNG\r\n\x1a\n"


def _assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 20_000, (path, len(data))


def test_demo_trains_every_backend_to_the_same_numbers(tmp_path):
    require_installed("sklearn", "matplotlib")
    out = tmp_path / "demo.png"
    done = run_command(["-m", "focal", "demo", "--steps", "60", "--plot", str(out)])
    rows = [line.split() for line in done.stdout.splitlines()
            if line.split() and line.split()[0] in {lib.name for lib in LIBS}]
    assert {r[0] for r in rows} == {lib.name for lib in LIBS}, done.stdout
    assert len(rows) == 3 * len({lib.name for lib in LIBS})
    by_loss: dict[tuple[str, ...], set[str]] = {}
    for r in rows:  # backend, loss (one or two words), gamma, alpha, AP, recall, seconds
        ap, recall = float(r[-3]), float(r[-2])
        assert 0.0 <= recall <= 1.0 and 0.02 < ap <= 1.0, r
        by_loss.setdefault(tuple(r[1:-3]), set()).add(r[-3])
    assert all(len(aps) == 1 for aps in by_loss.values()), by_loss  # every backend: the same AP
    assert "15/15" in done.stderr or f"{len(rows)}/{len(rows)}" in done.stderr  # the progress bar finished
    assert "oneDNN" not in done.stderr and "absl::InitializeLog" not in done.stderr  # TensorFlow's start-up log
    _assert_png(out)


@pytest.mark.parametrize("command,module,extra", [("demo", "sklearn", "demo"), ("plot", "matplotlib", "demo")])
def test_a_command_without_what_it_needs_names_the_extra_to_install(command, module, extra):
    """As where scikit-learn or matplotlib is not installed (a None in sys.modules makes an import fail): one
    line naming the extra, exit status 2, no traceback."""
    import subprocess
    import sys

    from helpers import ROOT

    code = (f"import sys; sys.modules[{module!r}] = None; from focal.__main__ import main; "
            f"sys.exit(main([{command!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f'pip install "focal-losses[{extra}]"' in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_demo_figure_keeps_its_text_inside():
    """The title, axis labels and legend lie inside the saved figure (a one-line title ran past both edges)."""
    require_installed("sklearn", "matplotlib")
    from focal.commands import demo

    fig = demo.figure(demo.run(["numpy"], steps=5))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    frame = fig.bbox
    for text in (ax.title, ax.xaxis.label, ax.yaxis.label, ax.get_legend()):
        box = text.get_window_extent(renderer)
        assert box.width > 0 and frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 \
            and box.y1 <= frame.y1, (text, box, frame)


def test_plot_writes_a_png_and_its_curves_are_the_paper_formula(tmp_path):
    require_installed("matplotlib")
    out = tmp_path / "curves.png"
    done = run_command(["-m", "focal", "plot", "--variant", "sigmoid_focal_loss", "--variant", "hard_truncated_loss",
                        "--gamma", "0", "--gamma", "2", "--out", str(out)])
    assert str(out) in done.stdout
    _assert_png(out)
    p_t = np.linspace(0.01, 0.99, 50)
    loss, neg_grad = curves("sigmoid_focal_loss", 2.0, p_t)
    np.testing.assert_allclose(loss, -(1 - p_t) ** 2 * np.log(p_t), rtol=1e-12)
    # d/dx of −(1−p)^2 log p at y = 1: (1−p)^2 (2 p log p − (1 − p))
    np.testing.assert_allclose(-neg_grad, (1 - p_t) ** 2 * (2 * p_t * np.log(p_t) - (1 - p_t)), rtol=1e-10)
    with pytest.raises(ValueError, match="variant must be one of"):
        curves("focal", 2.0, p_t)


def test_plot_curves_of_the_other_kinds_of_example():
    """Two-class softmax, varifocal's negative side, DFL bins and a Tversky pixel reduce to closed forms."""
    p_t = np.linspace(0.01, 0.99, 50)
    focal_loss = -(1 - p_t) ** 2 * np.log(p_t)
    focal_grad = -(1 - p_t) ** 2 * (2 * p_t * np.log(p_t) - (1 - p_t))  # −∂/∂x_t, as above
    for variant in ("softmax_focal_loss", "varifocal_loss"):  # varifocal's α is 1 in the plot
        loss, neg_grad = curves(variant, 2.0, p_t)
        np.testing.assert_allclose(loss, focal_loss, rtol=1e-12, err_msg=variant)
        np.testing.assert_allclose(neg_grad, focal_grad, rtol=1e-10, err_msg=variant)
    loss, neg_grad = curves("distribution_focal_loss", None, p_t)
    np.testing.assert_allclose(loss, -np.log(p_t), rtol=1e-12)
    np.testing.assert_allclose(neg_grad, 1 - p_t, rtol=1e-12)
    loss, neg_grad = curves("poly1_cross_entropy", 2.0, p_t)
    np.testing.assert_allclose(loss, -np.log(p_t) + 2 * (1 - p_t), rtol=1e-12)
    np.testing.assert_allclose(neg_grad, (1 - p_t) * (1 + 2 * p_t), rtol=1e-12)
    loss, _ = curves("focal_tversky_loss", 0.75, p_t)
    tversky = (p_t + 1) / (p_t + 0.7 * (1 - p_t) + 1)  # TP = p, FN = 1 − p, FP = 0, smooth 1
    np.testing.assert_allclose(loss, (1 - tversky) ** 0.75, rtol=1e-12)
    for variant in VARIANTS:
        loss, neg_grad = curves(variant, 1.0, p_t)
        assert np.isfinite(loss).all() and np.isfinite(neg_grad).all() and (loss >= 0).all(), variant


def _example(script: str, **env: str) -> dict[str, tuple[float, float]]:
    done = run_command([f"examples/{script}", "--quick"], **env)
    found = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in EXAMPLE_LINE.finditer(done.stdout)}
    for name, (ap, recall) in found.items():
        assert 0.02 < ap <= 1.0 and 0.0 <= recall <= 1.0, (script, name, ap, recall)
    return found


def test_torch_example():
    require_installed("torch", "sklearn")
    assert set(_example("torch_train.py")) == {"cross entropy", "focal gamma=2"}


@pytest.mark.parametrize("backend", ["jax"])  # tests/test_keras.py fits on all three backends
def test_keras_example(backend):
    require_installed("keras", backend, "sklearn")
    assert set(_example("keras_train.py", KERAS_BACKEND=backend)) == {"cross entropy", "focal gamma=2"}


def test_flax_example():
    require_installed("flax", "optax", "sklearn")
    assert set(_example("flax_train.py")) == {"cross entropy", "focal gamma=2"}


def test_hugging_face_trainer_example():
    """A Trainer on a tiny causal LM built from a config: the fused loss equals the unfused one on the model's own
    logits, and training lowers it."""
    require_installed("torch", "transformers", "accelerate")
    done = run_command(["examples/hf_trainer.py", "--quick"], HF_HUB_OFFLINE="1")
    fused, unfused = map(float, re.search(r"fused ([\d.]+), unfused on the logits ([\d.]+)", done.stdout).groups())
    assert abs(fused - unfused) <= 1e-5 * unfused, done.stdout
    first, last = map(float, re.search(r"first step ([\d.]+), last step ([\d.]+)", done.stdout).groups())
    assert last < first, done.stdout


def test_rtdetr_example():
    """A tiny RT-DETR from a config with focal's VFL patched into transformers' criterion: the same loss and
    parameter gradients as transformers' own (which the default, differentiating the weight, does not give), and
    training lowers the loss."""
    require_installed("torch", "transformers")
    done = run_command(["examples/rtdetr_train.py", "--quick"], HF_HUB_OFFLINE="1")
    found = re.search(r"transformers' VFL ([\d.]+), focal's ([\d.]+); gradient difference ([\d.e+-]+) of the largest; "
                      r"without detach_modulator ([\d.e+-]+)", done.stdout)
    assert found, done.stdout
    theirs, ours, gap, differentiated = map(float, found.groups())
    assert abs(ours - theirs) <= 1e-5 * theirs and gap < 1e-5, done.stdout
    assert differentiated > 1e-3, done.stdout
    first, last = map(float, re.search(r"first step ([\d.]+), last step ([\d.]+)", done.stdout).groups())
    assert last < first, done.stdout


def test_xgboost_example():
    require_installed("xgboost", "lightgbm", "sklearn")
    found = _example("xgboost_train.py")
    assert set(found) == {"xgboost logistic", "xgboost focal", "lightgbm binary", "lightgbm focal"}


def test_bench_prints_a_table_for_every_installed_framework():
    """A smoke run of ``python -m focal bench`` (one repeat of the small shape): the table's rows and
    columns, not its times (speed is measured by running the bench, never asserted in tests).
    PyTorch and JAX only: TensorFlow's XLA compiles of every peer would add half a minute to CI."""
    frameworks = ["torch", "jax"]
    require_installed(*frameworks)
    args = ["-m", "focal", "bench", "--shape", "latency", "--warmup", "0", "--repeats", "1"]
    done = run_command(args + [a for f in frameworks for a in ("--framework", f)], timeout=600)
    assert "failed" not in done.stdout, done.stdout
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ")]
    table = [[cell.strip() for cell in row] for row in rows if row[0].strip() != "implementation"]
    assert {row[0] for row in table} >= {"focal"}
    for row in table:
        assert len(row) == 10 and row[2] == "latency" and float(row[5]) > 0, row
    ours = [row for row in table if row[0] == "focal"]
    # one row of ours per mode: torch eager + plain path + torch.compile, jax jit, tf.function + XLA
    expected = {"torch": 3, "jax": 1, "tensorflow": 2}
    assert len(ours) == sum(expected[f] for f in frameworks) and all(row[8] == "1.00" for row in ours)
    if "torch" in frameworks:
        assert any(row[0].startswith("torchvision") for row in table)
    if "jax" in frameworks:
        assert any(row[0] == "optax sigmoid_focal_loss" for row in table)


def test_the_bench_loop_times_the_first_steps_and_counts_compiles(monkeypatch):
    """``bench --loop``'s child, shortened to 3 steps: times that add up, and no compile in a user's first steps."""
    import json

    require_installed("torch", "torchvision")
    from focal.backends import _torch_fused
    from focal.commands import bench_loop as _bench_loop

    monkeypatch.setattr(_bench_loop, "STEPS", 3)
    monkeypatch.setattr(_torch_fused, "_plain_calls", 0)  # as in a fresh process
    for impl in _bench_loop.IMPLS:
        out = json.loads(_bench_loop.child(impl))
        assert 0 < out["first_s"] <= out["total_s"] and out["compiles"] == 0, (impl, out)
    assert [_bench_loop.gamma_at(s) for s in (0, 9, 10, 19, 20, 29)] == [2.0, 2.0, 1.5, 1.5, 1.0, 1.0]


def test_the_device_check_dry_run_lists_what_it_would_run():
    """``benchmarks/gpu_check.sh --dry-run``: the commands the GPU check runs, and its test cases on this machine's
    devices (none without a GPU, some with one)."""
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any("-m pytest" in line and "torch-cuda or jax-gpu or cupy-cuda" in line for line in lines), lines
    assert any("-m focal bench --device cuda" in line and "segmentation-large" in line for line in lines), lines
    assert any("-m focal bench --matrix --device cuda" in line and "--mode cupy" in line for line in lines), lines
    assert any("-m pytest" in line and "tests/test_gpu.py tests/test_devices.py" in line for line in lines), lines
    assert any("benchmarks/linear.py --device cuda" in line for line in lines), lines
    assert int(lines[-2].rsplit(":", 1)[1]) > 300  # test_gpu.py's (skipped without a GPU) and the stand-ins
    cases = int(lines[-1].rsplit(":", 1)[1])
    assert (cases > 0) == any(lib.device != "cpu" for lib in LIBS), lines


def _matrix_cells(mode: str, names: list[str] | None, device: str = "cpu") -> list:
    """``bench --matrix``'s child for ``mode``, in this process, on a sliver of the data (one timed round)."""
    import json

    from focal.commands import matrix

    return [matrix.Cell(**c) for c in json.loads(matrix.child(mode, names, scale=0.002, warmup=0, repeats=1,
                                                              device=device))]


@pytest.mark.parametrize(("mode", "module", "names"), [
    ("torch eager", "torch", None), ("numpy", "numpy", None),
    # every case with a peer, and one of each data kind: a compile per implementation makes all of them minutes
    ("jax.jit", "jax", ["sigmoid_focal", "γ=0.5", "quality", "asymmetric", "softmax_focal", "label_smoothing",
                        "probability", "from_logits", "ignore_index", "poly1_cross", "tversky", "distribution"]),
    ("tf.function", "tensorflow", ["sigmoid_focal", "γ=0.5", "quality", "asymmetric", "softmax_focal",
                                   "label_smoothing", "probability", "from_logits", "ignore_index", "tversky",
                                   "distribution"]),
])
def test_the_matrix_runs_every_case_against_its_floor_and_peer(mode, module, names):
    """Each cell of ``python -m focal bench --matrix`` runs ours, the framework's cross entropy and the peer: no
    error, positive times and ratios, and the peers the docs name (times are the bench's, never asserted)."""
    require_installed(module)
    from focal.commands import matrix

    cells = _matrix_cells(mode, names)
    assert [c.case for c in cells] == [c.name for c in matrix.select(names)]
    for cell in cells:
        assert cell.error is None, cell
        assert cell.ours_ms > 0 and cell.floor_ms > 0 and cell.vs_floor > 0 and cell.fwd_vs_floor > 0, cell
        assert (cell.vs_peer is None) == (cell.peer is None), cell
    peers = {c.case: c.peer for c in cells}
    expected = {"torch eager": {"sigmoid_focal_loss": "torchvision", "softmax_focal_loss": "kornia",
                                "distribution_focal_loss": "ultralytics DFLoss",
                                "asymmetric_loss": "timm AsymmetricLossMultiLabel",
                                "softmax label_smoothing=0.1": "naive formula"},
                "jax.jit": {"sigmoid_focal_loss": "optax", "poly1_cross_entropy": "optax",
                            "focal_tversky_loss": "naive formula"},
                "tf.function": {"sigmoid_focal_loss": "Keras BinaryFocalCrossentropy",
                                "softmax label_smoothing=0.1": "Keras CategoricalFocalCrossentropy"},
                "numpy": {}}[mode]
    installed = {"torchvision": "torchvision", "kornia": "kornia", "ultralytics DFLoss": "ultralytics",
                 "timm AsymmetricLossMultiLabel": "timm", "optax": "optax", "naive formula": "numpy",
                 "Keras BinaryFocalCrossentropy": "keras", "Keras CategoricalFocalCrossentropy": "keras"}
    import importlib.util

    for case, peer in expected.items():
        if importlib.util.find_spec(installed[peer]) is not None:
            assert peers[case] == peer, (case, peers[case])


def test_the_matrix_cupy_mode_runs_on_a_cuda_device_only():
    """CuPy's cells run with ``--device cuda`` only: never among a CPU run's modes, a clear error on the CPU, and
    where a GPU and CuPy are present, every case against CuPy's hand-written cross entropy without error."""
    from focal.commands import matrix
    from focal.commands import matrix_frameworks as mf

    assert "cupy" not in matrix.available(None, "cpu") and "cupy" in matrix.GPU_MODES
    with pytest.raises(ValueError, match="--device cuda"):
        mf.CuPy("cupy", "cpu")
    if not any(lib.name == "cupy" and lib.device != "cpu" for lib in LIBS):
        return  # no GPU here: the CPU half above is the whole check (benchmarks/gpu_check.sh runs the GPU half)
    cells = _matrix_cells("cupy", None, device="cuda")
    assert [c.case for c in cells] == [c.name for c in matrix.select(None)]
    assert all(c.error is None and c.vs_floor > 0 and c.fwd_vs_floor > 0 for c in cells), cells


def test_a_matrix_cell_says_which_targets_it_misses():
    """The targets of issue 21, per cell: a compiler's 1.5x and the plain path's 2.0x of the floor, 1.5x forward,
    1x the peer, memory no more than the peer's."""
    from focal.commands.matrix import Cell, _ratio, _rounds

    assert Cell("c", "jax.jit", vs_floor=1.4, fwd_vs_floor=1.5, vs_peer=1.0).misses() == []
    assert Cell("c", "torch eager", vs_floor=1.9).misses() == []
    assert Cell("c", "jax.jit", vs_floor=1.9).misses() == ["fwd+bwd 1.90x floor > 1.5"]
    assert Cell("c", "numpy", vs_floor=2.5, fwd_vs_floor=1.6, vs_peer=1.2, ours_mib=40.0, peer_mib=20.0).misses() == [
        "fwd+bwd 2.50x floor > 2.0", "fwd 1.60x floor > 1.5", "1.20x peer", "memory 40 > peer's 20 MiB"]
    calls: list[str] = []
    times = _rounds([lambda: calls.append("a"), lambda: calls.append("b")], warmup=1, repeats=3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"] and [len(t) for t in times] == [3, 3]
    assert _ratio([2.0, 9.0, 3.0], [1.0, 3.0, 1.0]) == 3.0  # the median of the rounds' ratios (2, 3, 3)
