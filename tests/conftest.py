"""Fixtures: ``lib`` runs a test on every importable library x device; ``dtype`` on float32 and float64."""

from __future__ import annotations

import os
import sys
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


def _wants_x64(request: pytest.FixtureRequest) -> bool:
    callspec = getattr(request.node, "callspec", None)
    dtype = callspec.params.get("dtype") if callspec is not None else None
    return request.node.get_closest_marker("x64") is not None or dtype == "float64"


@pytest.fixture(autouse=True)
def _jax_precision(request: pytest.FixtureRequest):
    """JAX as its users run it: float32 with x64 off (JAX's default) everywhere, and x64 on for the tests that run
    in float64 (their ``dtype`` is float64, or they are marked ``x64``). Set globally, as a user sets it (a test's
    own ``jax.config.update`` then works), and turned off again after each test."""
    jax = sys.modules.get("jax")
    if jax is None:
        yield
        return
    jax.config.update("jax_enable_x64", _wants_x64(request))
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "x64: run with JAX's 64-bit mode on (jax.enable_x64) for this test only")
