"""``import focal`` imports no framework; the README's commands are what CI runs; the main job runs."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

from libs import LIBS

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_import_focal_loads_no_framework():
    code = ("import sys, focal; focal.sigmoid_focal_loss; "
            "print(','.join(m for m in ('torch', 'jax', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def test_numpy_call_loads_no_framework():
    code = ("import sys, numpy as np, focal; focal.softmax_focal_loss(np.zeros((2, 3)), np.array([0, 2])); "
            "print(','.join(m for m in ('torch', 'jax', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def _readme_commands(name: str = "setup") -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {name} -->\s*```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert block, f"README.md has no {name} block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_the_readme_test_command_and_the_docs_build():
    main_job, test_command = _readme_commands()
    assert "pytest" in test_command and "python -m focal" in main_job
    assert test_command in (ROOT / ".ci" / "run").read_text()
    # the docs command's build is the one tests/test_docs.py runs, strict by mkdocs.yml
    (docs_command,) = _readme_commands("docs")
    assert docs_command.endswith("mkdocs build") and "strict: true" in (ROOT / "mkdocs.yml").read_text()
    assert '"mkdocs", "build", "--strict"' in (ROOT / "tests" / "test_docs.py").read_text()


def test_main_job_prints_every_installed_backend():
    out = subprocess.run([sys.executable, "-m", "focal"], capture_output=True, text=True, check=True, cwd=ROOT,
                         timeout=300)
    lines = out.stdout.splitlines()
    for name in {lib.name for lib in LIBS}:
        assert sum(line.startswith(name + " ") for line in lines) == 2, out.stdout
    assert "max difference from numpy" in out.stdout
    worst = float(re.search(r"max difference from numpy: ([0-9.eE+-]+)", out.stdout).group(1))
    assert worst < 1e-10
