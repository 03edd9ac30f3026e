"""Fixtures: ``lib`` runs a test on every importable library x device; ``dtype`` on float32 and float64."""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import HealthCheck, settings
from libs import AUTODIFF_LIBS, LIBS, MISSING

# ultralytics probes the network and writes a settings file in the home directory when imported
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="focal-yolo-"))

# the same examples in every run (a CI failure reproduces); `--hypothesis-profile=long` draws many more
_FIXTURES_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]  # `lib` holds no state
settings.register_profile("default", max_examples=15, derandomize=True, deadline=None,
                          suppress_health_check=_FIXTURES_OK)
settings.register_profile("long", max_examples=500, deadline=None, suppress_health_check=_FIXTURES_OK)
settings.load_profile("default")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-cases", type=int, default=100, help="cases of tests/test_fuzz.py (default 100)")
    parser.addoption("--fuzz-seed", type=int, default=0, help="seed of tests/test_fuzz.py's cases (default 0)")


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
