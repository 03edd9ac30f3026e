"""The static checks CI runs: ruff (lint and import order) and mypy --strict on the package.

Both read their settings from pyproject.toml; each failure message is the tool's own report.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT, require_installed


@pytest.mark.parametrize("command", [["ruff", "check", "."], ["mypy"]], ids=["ruff", "mypy"])
def test_static_check(command):
    require_installed(command[0])
    done = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
