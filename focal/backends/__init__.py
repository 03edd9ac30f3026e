"""Find the backend of an array, einops-style: look only at frameworks already in ``sys.modules``.

Nothing here imports a framework: a backend module (which does import its framework) is loaded
when focal is imported after its framework, or else the first time an array of that framework is
seen; the answer is cached per array type.
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
_by_type: dict[type, Backend] = {}
_generic: dict[int, Backend] = {}


def backend_for(x: Any) -> Backend:
    """The backend that owns ``x``; ``TypeError`` when ``x`` is not an array of a known kind."""
    kind = type(x)
    backend = _by_type.get(kind)
    if backend is None:
        backend = _detect(x)
        _by_type[kind] = backend
    return backend


def _detect(x: Any) -> Backend:
    for framework, module in _FRAMEWORKS:
        if framework in sys.modules:
            loaded = sys.modules.get(module) or importlib.import_module(module)
            backend: Backend = loaded.BACKEND
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
        if framework in sys.modules and module not in sys.modules:
            importlib.import_module(module)


_load_present()
