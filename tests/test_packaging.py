"""``import focal`` imports no framework; the README's commands are what CI runs; the main job runs; the release
is one name, one version and one license."""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys

import pytest
from libs import LIBS

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_import_focal_loads_no_framework():
    code = ("import sys, focal; focal.sigmoid_focal_loss; "
            "print(','.join(m for m in ('torch', 'jax', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def test_the_framework_faces_load_on_first_use():
    """``import focal`` then ``focal.torch`` / ``focal.keras`` / ``focal.boosting``: loaded at first use (as the
    README's snippets use them), not at ``import focal``."""
    code = ("import sys, focal; before = [m for m in ('torch', 'keras') if m in sys.modules]; "
            "assert {'torch', 'keras', 'boosting'} <= set(dir(focal)); "
            "print(before, focal.torch.SigmoidFocalLoss.__name__, focal.keras.SoftmaxFocalLoss.__name__, "
            "focal.boosting.xgboost_objective.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]", "SigmoidFocalLoss", "SoftmaxFocalLoss", "xgboost_objective"]
    with pytest.raises(AttributeError, match="has no attribute 'tensorflow'"):
        import focal

        focal.tensorflow  # noqa: B018


def test_numpy_call_loads_no_framework():
    code = ("import sys, numpy as np, focal; focal.softmax_focal_loss(np.zeros((2, 3)), np.array([0, 2])); "
            "print(','.join(m for m in ('torch', 'jax', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


COMMANDS = {"agree.py", "bench.py", "bench_loop.py", "demo.py", "frameworks.py", "main.py", "matrix.py",
            "matrix_cases.py", "matrix_frameworks.py", "plot.py"}


def _imports(path: pathlib.Path) -> set[str]:
    """The modules a file imports, relative imports resolved against its package."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            out |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return out


def test_the_library_and_the_commands_are_apart():
    """The commands live in ``focal/commands/`` alone, and no module of the library imports from there."""
    root_files = {p.name for p in (ROOT / "focal").glob("*.py")}
    assert not {name.lstrip("_") for name in root_files} & COMMANDS, root_files
    assert {p.name for p in (ROOT / "focal" / "commands").glob("*.py")} == COMMANDS | {"__init__.py"}
    library = [p for p in (ROOT / "focal").rglob("*.py") if "commands" not in p.parts and p.name != "__main__.py"]
    assert len(library) > 20
    for path in library:
        assert not [m for m in _imports(path) if m.startswith("focal.commands")], path
    assert _imports(ROOT / "focal" / "__main__.py") >= {"focal.commands.main"}


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


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_one_version_read_by_the_build_and_the_installed_metadata():
    """focal/__init__.py holds the version; the build reads it from there, so the installed metadata agrees."""
    import importlib.metadata

    import focal

    project = _pyproject()
    assert project["project"]["name"] == "focal-losses"
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "focal.__version__"}
    assert importlib.metadata.version("focal-losses") == focal.__version__
    assert re.search(rf"^## {re.escape(focal.__version__)} ", (ROOT / "CHANGELOG.md").read_text(), re.M)


def test_license_is_the_full_apache_text_and_named_in_the_metadata():
    import importlib.metadata

    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    for part in ("Apache License", "Version 2.0, January 2004", "TERMS AND CONDITIONS FOR USE, REPRODUCTION",
                 "9. Accepting Warranty or Additional Liability", "END OF TERMS AND CONDITIONS"):
        assert part in text
    assert importlib.metadata.metadata("focal-losses")["License-Expression"] == "Apache-2.0"
    assert {"Repository", "Changelog"} <= set(project["urls"])


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
INDEX_INSTALL = re.compile(r"pip install\s+(?:-\S+\s+)*[\"']?(focal[\w.-]*)(\[[\w,]*\])?[\"']?(?=\s|$|`)", re.M)


def test_every_install_line_names_our_distribution():
    """``pip install focal`` gets somebody else's package (the index's `focal`, an unrelated project with the same
    import name): every install line in the README and the docs says ``focal-losses``, and the README says why."""
    lines = []
    for page in DOCS:
        for match in INDEX_INSTALL.finditer(page.read_text(encoding="utf-8")):
            lines.append((page.name, match.group(0)))
            assert match.group(1) == "focal-losses", (page, match.group(0))
    assert len(lines) >= 8, lines  # the README's and index's two, one per getting-started page
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"index's `focal` is an unrelated package.*never install it beside\s+`focal-losses`", readme,
                     re.S)


def test_ci_checks_the_release():
    run = (ROOT / ".ci" / "run").read_text()
    release = (ROOT / ".ci" / "release").read_text()
    assert "bash .ci/release" in run
    for step in ("python -m build", "twine check --strict", ".ci/check_dist.py", "-m focal agree"):
        assert step in release
