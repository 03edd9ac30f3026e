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
# inline code in a table cell, and the places where it may break
CELL_CODE = re.compile(r"(<td[^>]*>)(.*?)(</td>)", re.S)
CODE = re.compile(r"(<code>)(.*?)(</code>)", re.S)
TAG = re.compile(r"(<[^>]*>)")
# after a dot between names (not in 0.25 or ...), an underscore in a name, an opening bracket before an argument
BREAKS = re.compile(r"(?<=[A-Za-z_]\.)(?=[A-Za-z_])|(?<=_)(?=[A-Za-z0-9])|(?<=[(\[])(?=[A-Za-z0-9\"'])")


def _plot_name(src_uri: str, index: int) -> str:
    return f"plots/{Path(src_uri).stem}-{index}.png"


def on_files(files: Files, config: Any) -> Files:
    from focal.commands.main import main

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


def _breakable(cell: re.Match[str]) -> str:
    """A table cell whose code may break after ``.``, ``_`` and ``(``, and nowhere inside a word: the stylesheet
    (stylesheets/focal.css) stops Material's breaking anywhere ("CategoricalFocalCrossentrop|y"), and a long
    call then needs these places to break at to fit its column."""
    def text_only(code: str) -> str:  # the text between tags (an autoref's attributes stay as they are)
        return "".join(part if TAG.fullmatch(part) else BREAKS.sub("<wbr>", part) for part in TAG.split(code))

    code = CODE.sub(lambda m: m.group(1) + text_only(m.group(2)) + m.group(3), cell.group(2))
    return cell.group(1) + code + cell.group(3)


def on_page_content(content: str, page: Any, config: Any, files: Files) -> str:
    def mathml(match: re.Match[str]) -> str:
        return convert(html.unescape(match.group(2)).strip(), display="block" if match.group(1) == "div" else "inline")

    return CELL_CODE.sub(_breakable, MATH.sub(mathml, content))
