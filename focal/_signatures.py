"""The keyword parameters of a functional loss, for the framework wrappers (focal.torch, focal.keras)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def keyword_defaults(fn: Callable[..., Any], exclude: tuple[str, ...]) -> dict[str, Any]:
    """``fn``'s keyword-only parameters and their defaults, less ``exclude``."""
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in exclude}


def check_known(owner: str, given: dict[str, Any], known: dict[str, Any]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise TypeError(f"{owner}() got unexpected parameters {unknown}; it takes {sorted(known)}")


def keyword_signature(defaults: dict[str, Any], first: tuple[str, ...] = ("self",)) -> inspect.Signature:
    """A signature that shows the keyword parameters in ``help()`` and IDEs."""
    return inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in first]
        + [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in defaults.items()])
