"""Find the backend of an array, einops-style: look only at frameworks already in ``sys.modules``.

Nothing here imports a framework: a backend module (which does import its framework) is loaded
when focal is imported after its framework, or else the first time an array of that framework is
seen. A loaded framework's backend is asked first; other arrays' (NumPy's, any array-API
library's) backends are cached per array type.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from ._base import Backend

__all__ = ["Backend", "backend_for"]

# (module that must already be imported, focal module holding its backend)
_FRAMEWORKS = (
    ("torch", "focal.backends.torch"),
    ("jax", "focal.backends.jax"),
    ("tensorflow", "focal.backends.tensorflow"),
)
_loaded: list[Backend] = []  # the frameworks' backends, as their glue loads
_by_type: dict[type, Backend] = {}  # the generic backends found, per array type
_generic: dict[int, Backend] = {}


def backend_for(x: Any) -> Backend:
    """The backend that owns ``x``; ``TypeError`` when ``x`` is not an array of a known kind.

    A loaded framework's own check comes first (an isinstance or two): under ``torch.compile`` dynamo
    guards on what this reads, and the list changes only when a framework's glue loads, where a
    cache of types would change with the first array of every new type (a NumPy array in between
    would recompile the caller's graph)."""
    for backend in _loaded:
        if backend.owns(x):
            return backend
    kind = type(x)
    cached = _by_type.get(kind)
    if cached is not None:
        return cached
    found = _detect(x)
    if found not in _loaded:
        _by_type[kind] = found
    return found


def _glue(module: str) -> Backend:
    """The backend of a framework's glue module, loaded once."""
    loaded = sys.modules.get(module)
    if loaded is None:
        loaded = importlib.import_module(module)
    backend: Backend = loaded.BACKEND
    if backend not in _loaded:
        _loaded.append(backend)
    return backend


def _detect(x: Any) -> Backend:
    for framework, module in _FRAMEWORKS:
        if framework in sys.modules:
            backend = _glue(module)
            if backend.owns(x):
                return backend
    import array_api_compat

    try:
        xp = array_api_compat.array_namespace(x)
    except TypeError:
        raise TypeError(
            f"logits must be an array (NumPy, JAX, PyTorch, TensorFlow or any array-API library), "
            f"got {type(x).__module__}.{type(x).__qualname__}"
        ) from None
    return _generic.setdefault(id(xp), Backend(xp))


def _load_present() -> None:
    """Load the glue of frameworks imported before focal, so that the first call inside
    ``torch.compile(fullgraph=True)`` or ``jax.jit`` finds it without importing (dynamo cannot
    trace an import). A framework imported later is loaded at its first eager call."""
    for framework, module in _FRAMEWORKS:
        if framework in sys.modules:
            _glue(module)


_load_present()
