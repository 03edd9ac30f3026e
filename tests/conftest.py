"""Fixtures: ``lib`` runs a test on every importable library x device; ``dtype`` on float32 and float64."""

from __future__ import annotations

import pytest

from libs import AUTODIFF_LIBS, LIBS, MISSING


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = ["focal libraries: " + ", ".join(lib.id for lib in LIBS)]
    if MISSING:
        lines.append("focal libraries not importable (their cases are skipped): " + ", ".join(MISSING))
    return lines


@pytest.fixture(params=LIBS, ids=lambda lib: lib.id)
def lib(request: pytest.FixtureRequest):
    return request.param


@pytest.fixture(params=AUTODIFF_LIBS, ids=lambda lib: lib.id)
def autodiff_lib(request: pytest.FixtureRequest):
    return request.param


@pytest.fixture(params=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> str:
    return request.param
