"""The fuzz run of tests/fuzz.py, bounded: ``--fuzz-cases`` cases (default 100, about 30 s here)."""

from __future__ import annotations

import pytest
from fuzz import fuzz


@pytest.mark.x64
def test_fuzz_only_documented_errors_and_the_same_outcome_on_every_library(request: pytest.FixtureRequest):
    cases = request.config.getoption("--fuzz-cases")
    stats = fuzz(cases, seed=request.config.getoption("--fuzz-seed"))
    assert stats["cases"] == cases
    # the draw mixes valid and bad calls: both kinds must have been tried
    assert stats["cases ok"] > cases // 2 and stats["cases error"] > cases // 10, stats
