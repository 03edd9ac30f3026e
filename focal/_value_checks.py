"""Whether an eager call reads its arguments' values back to check them (the value-checks mode).

Reading a value (a label in range? a target in [0, 1]?) costs nothing on a CPU, but on an accelerator it is a
device-to-host synchronisation: the host waits for the device's queue to drain, a step cannot be captured by
``torch.cuda.graph``, and ``torch.cuda.set_sync_debug_mode("error")`` raises. So by default a call reads values
only where its logits live on the CPU; elsewhere it reads nothing and marks the elements a bad value touches NaN,
as it does under ``jax.jit``, ``tf.function`` and ``torch.compile`` (docs/bad-input.md).
"""

from __future__ import annotations

import os
from types import TracebackType

MODES = ("auto", "raise", "nan")
ENVIRONMENT = "FOCAL_VALUE_CHECKS"


class _State:
    mode: str | None = None  # None: not read from the environment yet


def _checked(mode: object, source: str) -> str:
    if mode not in MODES:
        raise ValueError(f"{source} must be one of {MODES}, got {mode!r}")
    return str(mode)


def get_value_checks() -> str:
    """The value-checks mode now: ``"auto"``, ``"raise"`` or ``"nan"`` (see :class:`set_value_checks`); at first
    the environment variable ``FOCAL_VALUE_CHECKS``'s, else ``"auto"``.

    Returns:
        The mode's name.

    References:
        PyTorch, CUDA semantics: asynchronous execution (a read of a device tensor's value synchronises);
        ``torch.cuda.set_sync_debug_mode``.
    """
    if _State.mode is None:
        _State.mode = _checked(os.environ.get(ENVIRONMENT, "auto"), f"the environment variable {ENVIRONMENT}")
    return _State.mode


class set_value_checks:  # noqa: N801 - a function to the user, as torch.set_grad_enabled
    """Set how an eager call checks the values of its arrays (labels in range, targets and probabilities in
    [0, 1], weights and per-class vectors ``>= 0``), for the whole process; as a context manager, for its block.

    - ``"auto"`` (the default): where the logits live on the CPU (NumPy, or any framework's CPU arrays) a bad
      value is a ``ValueError`` naming the argument; on an accelerator (a GPU, a TPU, PyTorch's ``meta`` device)
      nothing is read back, and the elements a bad value touches come out NaN, in the loss and in the gradient,
      as under ``jax.jit``, ``tf.function`` and ``torch.compile``.
    - ``"raise"``: the ``ValueError`` on every device, for debugging: one device-to-host synchronisation per call
      on an accelerator (a CUDA graph cannot capture the call).
    - ``"nan"``: nothing is read on any device; NaN where a bad value is, also on the CPU.

    Values that cannot be read (traced by a compiler, or batched by ``torch.func``/``jax.vmap``) are always
    marked NaN. Shapes, dtypes and Python parameters are checked on every device and in every mode. The
    environment variable ``FOCAL_VALUE_CHECKS`` (``auto``, ``raise`` or ``nan``) sets the mode of a process
    whose script one does not edit; this function overrides it.

    Args:
        mode: ``"auto"``, ``"raise"`` or ``"nan"``; another value is a ``ValueError`` naming ``mode``.

    Example::

        focal.set_value_checks("raise")          # from here on
        with focal.set_value_checks("raise"):    # this block only
            loss = focal.softmax_focal_loss(logits.cuda(), labels.cuda())

    References:
        PyTorch, CUDA semantics: asynchronous execution, and ``torch.cuda.set_sync_debug_mode``, which reports a
        synchronisation; JAX's transfer guards (``jax.transfer_guard_device_to_host``), which refuse one. The
        function-and-context-manager form is ``torch.set_grad_enabled``'s.
    """

    def __init__(self, mode: str) -> None:
        self.mode = _checked(mode, "mode")
        # as it was: None where the environment was not read yet (a bad FOCAL_VALUE_CHECKS is then said at the first
        # call outside this mode, not here, where the mode overrides it)
        self.previous = _State.mode
        _State.mode = self.mode

    def __enter__(self) -> set_value_checks:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        _State.mode = self.previous

    def __repr__(self) -> str:
        return f"focal.set_value_checks({self.mode!r})"


def reads_device(on_host: bool) -> bool:
    """Whether a call whose logits are concrete reads values back, its logits being ``on_host`` or not."""
    mode = get_value_checks()
    return on_host if mode == "auto" else mode == "raise"
