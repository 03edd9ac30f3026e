"""The parameters the losses share, documented once and added to each loss's ``Args:`` section.

A loss's docstring documents its own parameters; :func:`document` appends the shared ones it
leaves out, and refuses (at import) a parameter documented nowhere.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])

SHARED = {
    "logits": "real floating array of any supported library (NumPy, JAX, PyTorch, TensorFlow, CuPy, any "
              "array-API library); float16/bfloat16 are computed in float32.",
    "targets": 'with ``activation="sigmoid"``: floats or bools in [0, 1] of the logits\' shape; with '
               '``"softmax"``: integer class indices of the logits\' shape without ``axis`` (values in [0, C) '
               "or ``ignore_index``), or class probabilities of the logits' shape.",
    "activation": '``"sigmoid"`` (elementwise: binary and multi-label) or ``"softmax"`` (over ``axis``).',
    "axis": "the class axis of ``logits``. Default -1 (the ``focal.torch`` criteria use 1).",
    "ignore_index": "the target value (an integer label, or a sigmoid loss's float target such as -100 or 255) "
                    "whose elements count neither in the loss nor in the mean's denominator. Default None.",
    "reduction": '``"none"`` (per element, or per row of a softmax loss), ``"mean"`` (the default: over the '
                 'elements, or the rows that are not ignored) or ``"sum"``.',
    "weight": "elementwise weights broadcastable to the per-element loss, multiplied before reducing "
              '(``"mean"`` still divides by the count). Default None.',
    "normalizer": "divide the sum by ``max(normalizer, eps)`` instead (mmdet's ``avg_factor``, e.g. the "
                  "number of positive anchors), a number or 0-d array. Default None.",
    "label_smoothing": "``ls`` in [0, 1): binary targets become ``y (1 − ls) + ls / 2``, class targets "
                       "``y (1 − ls) + ls / C``. Default 0.",
    "where": "optax's ``where``: a boolean mask of the logits' shape (or one that broadcasts to it, or of "
             "the rows' shape, one per row): classes where it is False are left out of the softmax and of the "
             "loss, and a row left with no class gives 0 and is not counted in the mean. With "
             "``from_logits=True``. Default None.",
    "from_logits": "``True`` (default): ``logits`` are logits; ``False``: probabilities in [0, 1], clipped "
                   "to ``[eps, 1 − eps]`` of their dtype.",
}
_SECTION = re.compile(r"^    (Returns|Raises|References|Example|Examples|Matching other libraries.*):\s*$", re.M)


def _entry(name: str, text: str) -> str:
    return textwrap.fill(f"{name}: {text}", width=104, initial_indent=" " * 8, subsequent_indent=" " * 12)


def document(fn: F) -> F:
    """Add the shared parameters ``fn``'s ``Args:`` section lacks (creating the section if need be)."""
    doc = fn.__doc__ or ""
    start = doc.find("\n    Args:\n")
    if start < 0:
        after = _SECTION.search(doc)
        cut = after.start() if after else len(doc.rstrip())
        doc = doc[:cut].rstrip("\n ") + "\n\n    Args:\n" + ("\n" + doc[cut:] if after else "\n    ")
        start = doc.find("\n    Args:\n")
    body_start = start + len("\n    Args:\n")
    after = _SECTION.search(doc, body_start)
    body_end = after.start() if after else len(doc.rstrip())
    # one entry per parameter: its "        name:" line and the deeper-indented lines under it
    entries = {m.group(1): m.group(0).rstrip() for m in re.finditer(r"^        (\w+):.*(?:\n {12}.*)*",
                                                                     doc[body_start:body_end], re.M)}
    order = list(inspect.signature(fn).parameters)
    unknown = [name for name in order if name not in entries and name not in SHARED]
    if unknown:
        raise TypeError(f"{fn.__name__}: parameters {unknown} are documented nowhere")
    stray = [name for name in entries if name not in order]
    if stray:
        raise TypeError(f"{fn.__name__}: the docstring documents {stray}, which it does not take")
    body = "\n".join(entries.get(name) or _entry(name, SHARED[name]) for name in order)
    fn.__doc__ = doc[:body_start] + body + "\n\n" + doc[body_end:].lstrip("\n")
    return fn
