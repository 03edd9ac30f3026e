"""PyTorch's fused path: the kernel compiled by ``torch.compile`` for large inputs.

Eagerly, each array-API call of a kernel is one PyTorch op that reads and writes whole arrays;
compiled, the kernel is one loop over the elements that writes the loss (or its sum) and the
gradient, which the backward then multiplies by the cotangent in place. (Compiling the loss alone
and recomputing the kernel in the backward read the inputs twice and cost 23 ms against 12 on
65536x80, 2 cores.) Without a gradient only the loss is compiled (``value``). The same kernel code
runs either way; compiled results differ from eager ones by rounding only
(tests/test_torch_fused.py).

Used for inputs of at least ``FOCAL_TORCH_FUSED_MIN`` elements (default 65536), once the process
has made ``FOCAL_TORCH_COMPILE_AFTER`` such calls on the plain path (default 100): compiling costs
6-13 s on a 2-core CPU, the plain path up to 2x the compiled one, so compiling on the first call
made a user's first minutes slower than the library they left, and 100 calls in, a training run is
long enough to repay it. Never inside a caller's own ``torch.compile``, nor under
``TORCHDYNAMO_DISABLE=1`` (where torch.compile compiles nothing). ``FOCAL_TORCH_FUSED=0`` turns it off; a platform
where compiling fails (no C++ compiler, no Triton) warns once and stays eager, and a process where
compiling would crash it (TensorFlow imported before triton, below) warns and takes the plain path.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

import torch

from .._kernel import value_of
from . import _torch_namespace as xp
from ._torch_namespace import _wrapped

MIN_ELEMENTS = int(os.environ.get("FOCAL_TORCH_FUSED_MIN", 1 << 16))
COMPILE_AFTER = int(os.environ.get("FOCAL_TORCH_COMPILE_AFTER", 100))
_enabled = os.environ.get("FOCAL_TORCH_FUSED", "1") != "0"
_plain_calls = 0  # large inputs run on the plain path so far


def _value(kernel: Any, wanted: tuple[Any, ...], logits: torch.Tensor, aux: tuple[torch.Tensor, ...],
           params: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return value_of(kernel, xp, logits, aux, params)


def _forward(kernel: Any, wanted: tuple[Any, ...], logits: torch.Tensor, aux: tuple[torch.Tensor, ...],
             params: tuple[torch.Tensor, ...]) -> Any:
    return kernel.forward(xp, logits, aux, params, wanted)


_FUNCTIONS: dict[str, Callable[..., Any]] = {"value": _value, "forward": _forward}
# one compiled function per (function, kernel, wanted): dynamo keeps its graphs and counts its recompiles per code
# object, and a process with many losses and options (a detector's QFL, DFL and VFL heads, a sweep) would reach
# its recompile limit (8) on one shared code object, after which nothing new is compiled
_compiled: dict[tuple[Any, ...], Callable[..., Any]] = {}


# how a kernel is compiled (the tests count dynamo's compiles with its "eager" backend, which skips inductor)
COMPILE: Callable[..., Any] = functools.partial(torch.compile, dynamic=None)


def _own_code(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with a code object of its own (the same code), so dynamo's cache of it is its own."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


def large(logits: torch.Tensor) -> bool:
    """Large, outside a caller's compile and not inside torch.func transforms (vmap, grad)."""
    return (logits.numel() >= MIN_ELEMENTS and not torch.compiler.is_compiling()
            and not _wrapped(logits))


def wanted(logits: torch.Tensor) -> bool:
    """:func:`large`, past the first ``COMPILE_AFTER`` such calls, and where compiling can happen
    (:func:`_can_compile`). The same answer throughout one loss call: only :func:`ran_plain` counts."""
    return _enabled and _plain_calls >= COMPILE_AFTER and large(logits) and _can_compile()


def ran_plain(logits: torch.Tensor) -> None:
    """Count a call that took the plain path, towards ``COMPILE_AFTER``."""
    global _plain_calls
    if large(logits):
        _plain_calls += 1


def _can_compile() -> bool:
    """Not under ``TORCHDYNAMO_DISABLE=1``, where torch.compile runs the function as written and the fused kernel
    run eagerly (hyperparameters read as arrays, not sliced) costs more than the plain path; and
    not where compiling would crash the process: then the plain path from now on, with a warning."""
    global _enabled
    if os.environ.get("TORCHDYNAMO_DISABLE", "") == "1":
        return False
    if not _compiled and _triton_import_would_crash():
        _enabled = False
        warnings.warn("focal: TensorFlow was imported before triton, and importing triton now (torch.compile does) "
                      "would crash this process (tensorflow/tensorflow#124205); the loss runs eagerly. Import "
                      "torch._dynamo (or triton) before tensorflow to get the compiled path.", RuntimeWarning,
                      stacklevel=4)
        return False
    return True


def _triton_import_would_crash() -> bool:
    """torch.compile imports triton; after TensorFlow 2.20+ (loaded with ``RTLD_GLOBAL``, its LLVM then shadows
    triton's) that import kills the process with a segmentation fault (tensorflow/tensorflow#124205)."""
    tf = sys.modules.get("tensorflow")
    if tf is None or "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return False
    try:
        return tuple(int(part) for part in tf.__version__.split(".")[:2]) >= (2, 20)
    except (AttributeError, ValueError):
        return True


def run(which: str, kernel: Any, wanted: tuple[Any, ...], *arrays: Any) -> Any:
    """``_value(kernel, wanted, logits, aux, params)`` or ``_forward`` (the same arguments), compiled; eager (and
    a warning, once) where compiling fails. Hyperparameters are in ``params`` (numbers too:
    ``Call.numbers_as_arrays``), so a new value is not a new compile."""
    global _enabled
    fn = _FUNCTIONS[which]
    if _enabled:
        key = (which, kernel, wanted)
        compiled = _compiled.get(key)
        if compiled is None:
            compiled = _compiled[key] = COMPILE(_own_code(fn))
        try:
            return compiled(kernel, wanted, *arrays)
        except Exception as error:  # noqa: BLE001 - any compiler failure: run the same kernel eagerly
            _enabled = False
            warnings.warn(f"focal: torch.compile of the loss kernel failed ({type(error).__name__}: {error}); "
                          "running eagerly from now on (set FOCAL_TORCH_FUSED=0 to skip the attempt)",
                          RuntimeWarning, stacklevel=3)
    return fn(kernel, wanted, *arrays)
