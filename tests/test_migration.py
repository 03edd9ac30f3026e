"""Every checked line of the migration guide (docs/migration.md) runs here, as written.

A Python block there is preceded by ``<!-- check -->`` (run in this process),
``<!-- check: NAME=VALUE -->`` (run in its own process with that environment variable, e.g. another
Keras backend) or ``<!-- not checked here: why -->``. A block with neither fails the suite, and the
unchecked ones must be the peers that cannot install here. Those blocks run too, against stand-ins
that restate the peer's published source (``peer_restatements.py``): that checks our side of the
mapping, not the peer.
"""

from __future__ import annotations

import re
import sys

import peer_restatements
import pytest
from helpers import REQUIRE_OPTIONAL, ROOT, require_installed, run_command

GUIDE = ROOT / "docs" / "migration.md"
BLOCK = re.compile(r"<!-- (check(?:: (\w+)=(\w+))?|not checked here: (.*?)) -->\n```python\n(.*?)```", re.S)
UNCHECKABLE = {"tensorflow_addons", "mmdet"}


def _blocks() -> list[tuple[str, str | None, str, int, bool]]:
    """(section, environment variable or None, code, line, checked) of every Python block."""
    text = GUIDE.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start(5)) + 1
        section = re.findall(r"^## (.+)$", text[: match.start()], re.M)[-1]
        env = f"{match.group(2)}={match.group(3)}" if match.group(2) else None
        found.append((section, env, match.group(5), line, match.group(4) is None))
    return found


BLOCKS = _blocks()
CHECKED = [pytest.param(env, code, line, id=f"{section}-line{line}")
           for section, env, code, line, checked in BLOCKS if checked]
STAND_IN = [pytest.param(section, code, line, id=f"{section}-line{line}")
            for section, _, code, line, checked in BLOCKS if not checked]


def test_every_python_block_says_whether_it_is_checked():
    text = GUIDE.read_text(encoding="utf-8")
    assert text.count("```python") == len(BLOCKS)
    unchecked = {section for section, _, _, _, checked in BLOCKS if not checked}
    assert unchecked == set(peer_restatements.STAND_INS)
    for module in UNCHECKABLE:  # if one of them installs here one day, its block must become a check
        try:
            __import__(module)
        except Exception:
            continue
        pytest.fail(f"{module} imports here: mark its block in docs/migration.md <!-- check -->")


@pytest.mark.parametrize(("env", "code", "line"), CHECKED)
def test_migration_guide_block(env, code, line):
    if env is not None:
        name, value = env.split("=")
        require_installed("keras", value if name == "KERAS_BACKEND" else "keras")
        run_command(["-c", code], **{name: value})
        return
    _run(code, line)


@pytest.mark.parametrize(("section", "code", "line"), STAND_IN)
def test_unchecked_block_against_a_restatement_of_the_peer(section, code, line, monkeypatch):
    require_installed(peer_restatements.FRAMEWORK[section])
    for name, module in peer_restatements.STAND_INS[section]().items():  # restored after the test
        monkeypatch.setitem(sys.modules, name, module)
    _run(code, line)


def _run(code: str, line: int) -> None:
    try:
        exec(compile(code, f"{GUIDE}:{line}", "exec"), {"__name__": "migration_guide"})
    except ModuleNotFoundError as missing:
        if REQUIRE_OPTIONAL:
            raise
        pytest.skip(f"{missing.name} is not installed")
