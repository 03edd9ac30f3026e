"""``torch.compile`` as PyTorch users run it: ``fullgraph=True`` in a process that has used focal on other
libraries first, no warning from focal or its dependencies while compiling or calling, and the default path's
own compiles (``focal.backends._torch_fused``) serving many configurations without reaching dynamo's
recompile limit."""

from __future__ import annotations

import functools
import logging
import warnings

import numpy as np
import pytest
from helpers import assert_close, record_fused_runs, require_installed, run_script

import focal

torch = pytest.importorskip("torch")
from focal.backends import _torch_fused as fused  # noqa: E402

RNG = np.random.default_rng(13)
X = torch.as_tensor(RNG.normal(size=(8, 5)) * 3)
Y = torch.as_tensor((RNG.random((8, 5)) > 0.7).astype(np.float64))
SOFT = torch.as_tensor(RNG.random((8, 5)))
LABELS = torch.as_tensor(RNG.integers(0, 5, size=8))
ROWS = torch.softmax(torch.as_tensor(RNG.normal(size=(8, 5))), dim=1)

# 30 distinct configurations of the losses and their options: each a kernel of its own
CONFIGURATIONS = [
    lambda x: focal.sigmoid_focal_loss(x, Y), lambda x: focal.sigmoid_focal_loss(x, Y, form="split"),
    lambda x: focal.sigmoid_focal_loss(x, Y, reduction="none").sum(),
    lambda x: focal.sigmoid_focal_loss(x, Y, ignore_index=-1.0),
    lambda x: focal.sigmoid_focal_loss(x, Y, pos_weight=2.0),
    lambda x: focal.sigmoid_focal_loss(x, Y, gamma=[0.0, 1.0, 2.0, 3.0, 4.0]),
    lambda x: focal.sigmoid_focal_loss(x, Y, alpha=None), lambda x: focal.sigmoid_focal_loss(x, Y, gamma=focal.flsd53),
    lambda x: focal.softmax_focal_loss(x, LABELS), lambda x: focal.softmax_focal_loss(x, LABELS, alpha=[0.1] * 5),
    lambda x: focal.softmax_focal_loss(x, LABELS, label_smoothing=0.1), lambda x: focal.softmax_focal_loss(x, ROWS),
    lambda x: focal.softmax_focal_loss(x, LABELS, ignore_index=3),
    lambda x: focal.softmax_focal_loss(x, LABELS, normalized=True),
    lambda x: focal.softmax_focal_loss(x, LABELS, reduced_threshold=0.5),
    lambda x: focal.poly1_cross_entropy(x, LABELS), lambda x: focal.poly1_focal_loss(x, Y),
    lambda x: focal.poly1_focal_loss(x, LABELS, activation="softmax"),
    lambda x: focal.focal_loss_with_negatives(x, LABELS),
    lambda x: focal.focal_loss_with_negatives(x, LABELS, activation="sigmoid"),
    lambda x: focal.hard_truncated_loss(x, Y), lambda x: focal.hard_truncated_loss(x, LABELS, activation="softmax"),
    lambda x: focal.soft_truncated_loss(x, Y), lambda x: focal.soft_truncated_loss(x, LABELS, activation="softmax"),
    lambda x: focal.focal_loss_star(x, Y), lambda x: focal.asymmetric_loss(x, Y),
    lambda x: focal.quality_focal_loss(x, SOFT), lambda x: focal.varifocal_loss(x, SOFT),
    lambda x: focal.distribution_focal_loss(x, ROWS[:, 0] * 4), lambda x: focal.focal_tversky_loss(x, LABELS),
]


def test_fullgraph_in_a_process_that_used_numpy_jax_and_tensorflow_first():
    require_installed("jax", "tensorflow")
    run = run_script("torch_after_others.py", timeout=600)
    assert run["glue_loaded_on_import"], "focal's torch glue must load when torch is imported after focal"
    for name in ("sigmoid", "softmax"):
        compiled, eager = run[name]["compiled"], run[name]["eager"]
        assert_close(compiled[0], eager[0], 1e-12, f"{name} value")
        assert_close(np.array(compiled[1]), np.array(eager[1]), 1e-12, f"{name} gradient")
    assert run["warnings"] == []


@pytest.mark.parametrize("index", range(len(CONFIGURATIONS)))
def test_compiling_and_calling_warns_nothing(index):
    """Every configuration traced by dynamo with ``fullgraph=True`` (its "eager" backend: the tracing is what
    warns, as array-api-compat's lru_cache-d helpers did) and called: no warning at all."""
    loss = CONFIGURATIONS[index]
    torch._dynamo.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        leaf = X.clone().requires_grad_(True)
        torch.compile(loss, fullgraph=True, backend="eager")(leaf).backward()
        with torch.no_grad():
            torch.compile(loss, fullgraph=True, backend="eager")(X)
    assert [str(w.message) for w in caught] == []
    assert torch.isfinite(leaf.grad).all()


class _Limit(logging.Handler):
    """Records dynamo's log lines about its recompile limit."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.hits: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "recompile_limit" in message or "cache_size_limit" in message:
            self.hits.append(message)


def test_thirty_configurations_compile_without_reaching_the_recompile_limit(monkeypatch):
    """The default path compiles one function per kernel (a code object of its own): 30 configurations, 30 kernels'
    compiles, each run by dynamo (its "eager" backend: the counting is dynamo's), and its recompile-limit warning
    never; the same configurations through one shared code object do reach it (the test can fail)."""
    monkeypatch.setattr(fused, "COMPILE", functools.partial(torch.compile, dynamic=None, backend="eager"))
    monkeypatch.setattr(fused, "_compiled", {})
    calls = record_fused_runs(monkeypatch)
    torch._dynamo.reset()
    limit = _Limit()
    logging.getLogger("torch._dynamo").addHandler(limit)
    try:
        counters = torch._dynamo.utils.counters
        before = counters["stats"]["unique_graphs"]
        for loss in CONFIGURATIONS:
            loss(X.clone().requires_grad_(True)).backward()
        compiles = counters["stats"]["unique_graphs"] - before
        for loss in CONFIGURATIONS:  # a second round compiles nothing new
            loss(X.clone().requires_grad_(True)).backward()
        assert counters["stats"]["unique_graphs"] - before == compiles
        assert len(calls) == 2 * len(CONFIGURATIONS) and set(calls) == {"forward"}
        assert len(fused._compiled) == compiles >= 28, (len(fused._compiled), compiles)
        assert limit.hits == []
        # the control: one shared code object for every kernel reaches the limit after 8
        torch._dynamo.reset()
        shared = torch.compile(fused._forward, dynamic=None, backend="eager")
        monkeypatch.setattr(fused, "COMPILE", lambda fn: shared)
        monkeypatch.setattr(fused, "_compiled", {})
        for loss in CONFIGURATIONS[:12]:
            loss(X.clone().requires_grad_(True)).backward()
        assert limit.hits, "the control did not reach dynamo's recompile limit"
    finally:
        logging.getLogger("torch._dynamo").removeHandler(limit)
        torch._dynamo.reset()
