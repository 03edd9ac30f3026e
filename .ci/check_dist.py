"""Check the built distributions in DIST (``python .ci/check_dist.py DIST``), from the repository root.

- The sdist holds every file git tracks (the tests, the documentation sources, LICENSE, ...) and nothing
  else but what the build adds (PKG-INFO, setup.cfg, the egg-info), so a packager can build, test and
  document from it.
- The wheel holds the package, its ``py.typed`` and the LICENSE, no tests; its metadata names
  ``focal-losses``, the version ``focal/__init__.py`` holds, and the Apache-2.0 license expression.
"""

from __future__ import annotations

import ast
import email
import pathlib
import subprocess
import sys
import tarfile
import zipfile

NAME = "focal-losses"
BUILD_ADDS = {"PKG-INFO", "setup.cfg"}


def source_version() -> str:
    tree = ast.parse(pathlib.Path("focal/__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("focal/__init__.py sets no __version__")


def one(dist: pathlib.Path, pattern: str) -> pathlib.Path:
    found = sorted(dist.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"expected one {pattern} in {dist}, found {[p.name for p in found]}")
    return found[0]


def check_sdist(path: pathlib.Path, version: str) -> list[str]:
    problems = []
    prefix = f"focal_losses-{version}/"
    if not path.name.startswith(f"focal_losses-{version}."):
        problems.append(f"sdist {path.name}: expected focal_losses-{version}.tar.gz")
    with tarfile.open(path) as tar:
        members = {m.name.removeprefix(prefix) for m in tar.getmembers() if m.isfile()}
    members = {m for m in members if not m.startswith("focal_losses.egg-info/") and m not in BUILD_ADDS}
    tracked = set(subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout.split())
    if missing := sorted(tracked - members):
        problems.append(f"sdist lacks tracked files: {missing}")
    if extra := sorted(members - tracked):
        problems.append(f"sdist holds untracked files: {extra}")
    for needed in ("LICENSE", "CHANGELOG.md", "tests/conftest.py", "docs/index.md", "mkdocs.yml"):
        if needed not in members:
            problems.append(f"sdist lacks {needed}")
    return problems


def check_wheel(path: pathlib.Path, version: str) -> list[str]:
    problems = []
    with zipfile.ZipFile(path) as wheel:
        names = set(wheel.namelist())
        info = f"focal_losses-{version}.dist-info/"
        metadata = email.message_from_bytes(wheel.read(info + "METADATA"))
    expected = {"Name": NAME, "Version": version, "License-Expression": "Apache-2.0"}
    for field, value in expected.items():
        if metadata.get(field) != value:
            problems.append(f"wheel METADATA {field}: {metadata.get(field)!r}, expected {value!r}")
    if "LICENSE" not in metadata.get_all("License-File", []):
        problems.append("wheel METADATA names no License-File LICENSE")
    for needed in ("focal/__init__.py", "focal/py.typed", "focal/backends/torch.py", info + "licenses/LICENSE"):
        if needed not in names:
            problems.append(f"wheel lacks {needed}")
    if stray := sorted(n for n in names if not n.startswith(("focal/", info))):
        problems.append(f"wheel holds files outside the package: {stray}")
    return problems


def main(dist: str) -> int:
    version = source_version()
    folder = pathlib.Path(dist)
    problems = check_sdist(one(folder, "*.tar.gz"), version) + check_wheel(one(folder, "*.whl"), version)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{NAME} {version}: the sdist holds every tracked file; the wheel's metadata and files are right")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
