"""MkDocs hooks: the variant pages' plots, drawn at build time by ``python -m focal plot``, and every
formula rendered to MathML at build time (no JavaScript, nothing fetched: the site reads offline).

A page asks for a plot with ``<!-- plot: ARGS -->`` (``ARGS`` as given to ``python -m focal plot``,
without ``--out``); the marker becomes the image and a caption with the command.
"""

from __future__ import annotations

import contextlib
import html
import io
import posixpath
import re
import shlex
import tempfile
from pathlib import Path
from typing import Any

from latex2mathml.converter import convert
from mkdocs.structure.files import File, Files

PLOT = re.compile(r"<!-- plot: (.*?) -->")
# the migration guide's markers for tests/test_migration.py, shown to the reader too
CHECK = re.compile(r"<!-- check(?:: (\w+=\w+))? -->")
NOT_CHECKED = re.compile(r"<!-- not checked here: (.*?) -->")
# pymdownx.arithmatex (generic mode) wraps display math in \[ \] and inline math in \( \)
MATH = re.compile(r'<(div|span) class="arithmatex">\\[\[(](.*?)\\[\])]</\1>', re.S)


def _plot_name(src_uri: str, index: int) -> str:
    return f"plots/{Path(src_uri).stem}-{index}.png"


def on_files(files: Files, config: Any) -> Files:
    from focal.__main__ import main

    out = Path(tempfile.mkdtemp(prefix="focal-plots-"))
    for page in list(files.documentation_pages()):
        text = page.content_string
        markers = PLOT.findall(text)
        if len(markers) != text.count("<!-- plot:"):
            raise ValueError(f"{page.src_uri}: a plot marker must be one line, <!-- plot: ARGS -->")
        for index, args in enumerate(markers):
            name = _plot_name(page.src_uri, index)
            path = out / Path(name).name
            with contextlib.redirect_stdout(io.StringIO()):
                main(["plot", *shlex.split(args), "--out", str(path)])
            files.append(File.generated(config, name, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    counter = iter(range(1_000))

    def figure(match: re.Match[str]) -> str:
        src = posixpath.relpath(_plot_name(page.file.src_uri, next(counter)), posixpath.dirname(page.file.src_uri))
        return (f"![Loss and gradient against p_t]({src})\n\n"
                f"*Drawn when this site was built, by `python -m focal plot {match.group(1)}`.*")

    markdown = CHECK.sub(lambda m: "*Checked: the test suite runs this block" + (f" with `{m.group(1)}`" if m.group(1)
                                                                                   else "") + ".*", markdown)
    markdown = NOT_CHECKED.sub(lambda m: f"*Not run against the library itself ({m.group(1)}); the tests run it "
                                         "against a restatement of the library's source.*", markdown)
    return PLOT.sub(figure, markdown)


def on_page_content(content: str, page: Any, config: Any, files: Files) -> str:
    def mathml(match: re.Match[str]) -> str:
        return convert(html.unescape(match.group(2)).strip(), display="block" if match.group(1) == "div" else "inline")

    return MATH.sub(mathml, content)
