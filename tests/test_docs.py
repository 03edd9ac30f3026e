"""The documentation site builds with warnings as errors, and has what it promises.

``mkdocs build`` (strict in mkdocs.yml) draws every variant's curves with ``python -m focal plot`` and
renders every formula to MathML; this builds it into a temporary folder and reads the pages back.
"""

from __future__ import annotations

import re

import pytest
from helpers import ROOT, require_installed, run_command

import focal

HELPERS = {"value_and_grad", "class_balanced_alpha", "flsd53", "set_value_checks", "get_value_checks"}
VARIANT_PAGES = sorted((ROOT / "docs" / "variants").glob("*.md"))


# the fused linear losses are the unfused ones' on a layer's output: one page of their own, not variants
FUSED = {"linear_softmax_focal_loss", "linear_sigmoid_focal_loss"}
FUSED_PAGE = ROOT / "docs" / "large-class-counts.md"


def test_every_loss_has_a_variant_page():
    documented = {name for page in VARIANT_PAGES for name in re.findall(r"^::: focal\.(\w+)$", page.read_text(), re.M)}
    assert documented == set(focal.__all__) - HELPERS - FUSED
    assert set(re.findall(r"^::: focal\.(\w+)$", FUSED_PAGE.read_text(), re.M)) == FUSED
    nav = (ROOT / "mkdocs.yml").read_text()
    assert all(f"variants/{page.name}" in nav for page in VARIANT_PAGES)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    require_installed("mkdocs", "material", "mkdocstrings_handlers", "latex2mathml", "matplotlib")
    out = tmp_path_factory.mktemp("site")
    run_command(["-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)], NO_MKDOCS_2_WARNING="1")
    return out


@pytest.mark.parametrize("page", [p.stem for p in VARIANT_PAGES])
def test_variant_page_has_its_formula_plot_and_reference(site, page):
    html = (site / "variants" / page / "index.html").read_text(encoding="utf-8")
    assert "<math" in html and 'class="arithmatex"' not in html  # every formula became MathML
    images = re.findall(r'<img alt="Loss and gradient against p_t" src="([^"]+)"', html)
    assert images and "python -m focal plot --variant" in html
    for src in images:
        png = (site / "variants" / page / src).resolve()
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000, src
    assert re.search(r'id="focal\.\w+"', html) and "References" in html  # the docstring, with its source


def test_pages_read_in_a_1280_pixel_browser(site):
    """No name broken mid-word, no code clipped (what a 1280-pixel-wide Chromium showed): the stylesheet breaks
    inline code at spaces only and wraps a code block's long lines; table cells' code may also break after a dot
    between names, an underscore and an opening bracket, nowhere else; the home page's blocks fit its column."""
    css = (site / "stylesheets" / "focal.css").read_text()
    assert "word-break: normal" in css and "white-space: pre-wrap" in css
    migration = (site / "migration" / "index.html").read_text(encoding="utf-8")
    assert "stylesheets/focal.css" in migration and "<wbr>" in migration
    assert re.findall(r"[^._(\[]<wbr>", migration) == []
    assert "Categorical<wbr>" not in migration and "CategoricalFocalCrossentropy" in migration
    home = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    for block in re.findall(r"```bash\n(.*?)```", home, re.S):
        assert max(len(line) for line in block.splitlines()) <= 78, block  # the column holds about 80


@pytest.mark.parametrize("module", ["torch", "keras"])
def test_reference_lists_every_class(site, module):
    html = (site / "reference" / module / "index.html").read_text(encoding="utf-8")
    mod = pytest.importorskip(f"focal.{module}")
    missing = [name for name in mod.__all__ if f'id="focal.{module}.{name}"' not in html]
    assert not missing


def _public_functions():
    import focal.boosting

    for module in (focal, focal.boosting):
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj):
                yield pytest.param(obj, id=f"{module.__name__}.{name}")


@pytest.mark.parametrize("fn", list(_public_functions()))
def test_every_parameter_of_a_public_function_is_documented(fn):
    """An ``Args:`` entry per parameter, in the signature's order, and a source to cite."""
    import inspect

    doc = fn.__doc__
    parameters = list(inspect.signature(fn).parameters)
    if parameters or "\n    Args:\n" in doc:
        args = doc[doc.index("\n    Args:\n"):]
        documented = re.findall(r"^        (\w+):", args, re.M)
        assert documented[: len(parameters)] == parameters
    assert "References:" in doc or "Lin et al." in doc or fn.__name__ == "value_and_grad"


GETTING_STARTED = sorted((ROOT / "docs" / "getting-started").glob("*.md"))
_NEEDS = {"jax": "jax", "pytorch": "torch", "tensorflow": "tensorflow", "keras": "keras", "boosting": "xgboost"}


@pytest.mark.parametrize("page", GETTING_STARTED, ids=[p.stem for p in GETTING_STARTED])
def test_getting_started_code_runs(page):
    """A page's Python blocks run in order, in one namespace, as a reader would paste them."""
    require_installed(_NEEDS.get(page.stem, "numpy"))
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    assert blocks
    namespace: dict = {"__name__": "getting_started"}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)


def test_fused_linear_page_code_runs():
    """The fused linear page's blocks (PyTorch, JAX with Flax) run as written."""
    require_installed("torch", "jax", "flax")
    blocks = re.findall(r"```python\n(.*?)```", FUSED_PAGE.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, str(FUSED_PAGE), "exec"), {"__name__": "fused_linear"})


def test_readme_code_runs():
    """The README's Python blocks run as written, in order, in one namespace, as a reader would paste them (after
    a bare ``import focal``: ``focal.torch`` and ``focal.keras`` load on first use)."""
    require_installed("jax", "torch", "keras")
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4
    namespace: dict = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["grads"].shape == (16, 5) and float(namespace["loss"]) > 0
