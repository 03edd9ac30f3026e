"""Find the backend of an array, einops-style: look only at frameworks already in ``sys.modules``.

Nothing here imports a framework: a backend module (which does import its framework) is loaded
when focal is imported after its framework, or else the first time an array of that framework is
seen; PyTorch's as soon as torch is imported after focal (:class:`_AfterImport`), since a first call
inside ``torch.compile`` cannot import it. The loaded frameworks' backends are asked first; other
arrays' (NumPy's, any array-API library's) backends are cached per array type.
"""

from __future__ import annotations

import importlib
import importlib.abc
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
        # in _FRAMEWORKS' order, whatever the order of loading: PyTorch's isinstance first, as dynamo cannot trace
        # jax.Array's (a custom __instancecheck__) on a tensor
        order = [glue for _, glue in _FRAMEWORKS]
        _loaded.sort(key=lambda b: order.index(type(b).__module__) if type(b).__module__ in order else len(order))
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
    trace an import). JAX and TensorFlow imported later are loaded at their first call (their tracers
    run Python as it is); PyTorch as soon as it is imported (:class:`_AfterImport`)."""
    for framework, module in _FRAMEWORKS:
        if framework in sys.modules:
            _glue(module)
    if "torch" not in sys.modules and not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport("torch", "focal.backends.torch"))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Loads a framework's glue right after the framework's own import, when focal was imported first: a user's
    first call may be inside ``torch.compile``, where dynamo cannot trace the import of the glue.

    It finds the framework's spec with the other finders and runs the module through them, then imports the glue
    (a failure there is left for the first call to raise) and takes itself off ``sys.meta_path``.
    """

    def __init__(self, framework: str, glue: str) -> None:
        self.framework, self.glue = framework, glue

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != self.framework:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = None if finder is self or find is None else find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _ThenGlue(spec.loader, self)
        return spec

    def loaded(self, module: Any) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        try:
            _glue(self.glue)
        except Exception:  # noqa: BLE001 - never break the user's import; the first call raises it again
            pass


class _ThenGlue(importlib.abc.Loader):
    """The framework's own loader, and the glue once the framework is executed."""

    def __init__(self, loader: Any, after: _AfterImport) -> None:
        self.loader, self.after = loader, after

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        spec = getattr(module, "__spec__", None)
        if spec is not None:  # the module keeps its own loader, as if we had never been here
            spec.loader = self.loader
        module.__loader__ = self.loader
        self.loader.exec_module(module)
        self.after.loaded(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


_load_present()
