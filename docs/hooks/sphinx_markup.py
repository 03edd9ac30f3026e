"""Griffe extension: the docstrings' Sphinx markup, as the docs site's Markdown reads it, and each
module's ``__all__`` as its documented members.

The docstrings are written for ``help()`` and Sphinx readers: ``.. math::`` blocks and ``:func:``
roles. On the site a ``.. math::`` block becomes one ``$$`` display per equation (blank-line
separated), rendered to MathML by ``focal_docs.py``, and a role becomes inline code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|data|meth|attr|mod):`~?([^`]+)`")


def _display_math(text: str) -> str:
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        if line.strip() != ".. math::":
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        body, i = [], i + 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i].strip())
            i += 1
        equations = [eq.strip() for eq in "\n".join(body).split("\n\n") if eq.strip()]
        for equation in equations:
            out += [f"{indent}$$", *(f"{indent}{part}" for part in equation.split("\n")), f"{indent}$$", ""]
    return "\n".join(out)


# focal.torch's criteria and focal.keras' losses carry their function's whole docstring for help();
# on the site their first paragraph is enough, with the function's page one click away
WRAPPER = re.compile(r"^(``nn.Module`` criterion|Keras loss) for ")


class SphinxMarkup(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        text = obj.docstring.value
        if WRAPPER.match(text):
            text = text.split("\n\n", 1)[0]
        obj.docstring.value = ROLE.sub(r"`\1`", _display_math(text))

    def on_module_members(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        """A module (not a package) with ``__all__`` shows what it exports, not what it imports."""
        if mod.exports is None or mod.is_package:
            return
        exported = {name if isinstance(name, str) else name.name for name in mod.exports}
        for name in [n for n in mod.members if n not in exported]:
            del mod.members[name]
