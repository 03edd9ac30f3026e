"""optax's own tests of its focal and Poly-1 losses, from the installed optax, run on focal.

``SigmoidFocalLossTest`` and ``PolyLossTest`` (``optax/losses/_classification_test.py``, shipped in
the optax wheel) call ``jax.jit(loss)(x, y, gamma=0.0)``, ``epsilon=eps``, ``alpha=1`` (traced
hyperparameters), ``where=mask`` and ``jax.hessian`` at saturated logits. A thin adapter maps
optax's two functions onto ours, with no static arguments; optax's own cross entropies stay optax's,
so they are the independent side of every comparison.
"""

from __future__ import annotations

import importlib.util
import unittest

import numpy as np
import pytest
from helpers import import_or_skip

import focal


def _adapters():
    def sigmoid_focal_loss(logits, labels, alpha=None, gamma=2.0):
        return focal.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=gamma, reduction="none")

    def poly_loss_cross_entropy(logits, labels, epsilon=2.0, axis=-1, where=None):
        return focal.poly1_cross_entropy(logits, labels, epsilon=epsilon, axis=axis, where=where, reduction="none")

    return {"sigmoid_focal_loss": sigmoid_focal_loss, "poly_loss_cross_entropy": poly_loss_cross_entropy}


def test_optax_focal_and_poly_loss_tests_pass_on_focal(monkeypatch):
    import_or_skip("optax")
    import_or_skip("absl")
    spec = importlib.util.find_spec("optax.losses._classification_test")
    if spec is None:
        pytest.fail("optax's _classification_test.py is not in the installed optax")
    suite_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite_module)
    for name, adapter in _adapters().items():
        monkeypatch.setattr(suite_module._classification, name, adapter)
    loader = unittest.TestLoader()
    suite = unittest.TestSuite(loader.loadTestsFromTestCase(getattr(suite_module, cls))
                               for cls in ("SigmoidFocalLossTest", "PolyLossTest"))
    result = unittest.TestResult()
    # optax's tests draw from NumPy's global generator unseeded: the same draws on every run here (an all-False
    # mask, one run in 32, is tested on its own: test_bad_values.py's no-classes cases)
    state = np.random.get_state()
    np.random.seed(20261204)
    try:
        suite.run(result)
    finally:
        np.random.set_state(state)
    problems = [f"{test.id()}: {trace.strip().splitlines()[-1]}" for test, trace in result.failures + result.errors]
    assert not problems, "\n".join(problems)
    assert result.testsRun == 34 and not result.skipped, (result.testsRun, result.skipped)
