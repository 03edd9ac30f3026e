"""The focal losses of a linear layer's output, never holding more than a chunk of its logits (``focal._linear``)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from . import _checks
from ._docs import document
from ._linear import LinearKernel, default_chunk_size, default_tiles, fold_rows
from ._plan import Call, denominator, plans
from ._sigmoid import _plan_sigmoid_focal
from ._softmax import _plan_softmax_focal
from .backends._base import Array


class LinearPlan:
    """A checked call of a fused linear loss: the kernel, the arrays it reads, and the reduction's denominator.

    ``hidden`` is flattened to ``(N, H)`` (its leading axes are the rows) and the row-shaped arrays with it; the
    loss's per-element arrays (``sample_weight``, ``where``) are split into those with a row axis, cut into chunks,
    and those shared by every row (one per class), passed whole.
    """

    def __init__(self, planner: Any, per_class: bool, hidden: Array, weight: Array, bias: Array | None,
                 targets: Array, *, reduction: str, sample_weight: Any, normalizer: Any, chunk_size: Any,
                 class_chunk_size: Any = None, where: Any = None, options: dict[str, Any],
                 arrays: dict[str, Any]) -> None:
        if not hasattr(hidden, "shape") or not hasattr(hidden, "dtype"):
            raise TypeError(f"hidden must be an array of hidden states (..., H), got {type(hidden).__name__}")
        if len(hidden.shape) < 1:
            raise ValueError("hidden must have a last axis of features (..., H), got a 0-d array")
        # a Call on one row: its checks of the other arguments against hidden's library, device and dtype, without
        # casting all of hidden to the compute dtype
        call = Call(hidden[(slice(0, 1),) * (len(hidden.shape) - 1) + (Ellipsis,)], targets,
                    reduction=reduction, weight=None, normalizer=normalizer)
        self.call, self.backend, xp = call, call.backend, call.xp
        self.xp = xp
        hidden = self.backend.array(hidden)
        if not xp.isdtype(hidden.dtype, "real floating"):
            raise TypeError(f"hidden must have a real floating dtype, got {hidden.dtype}")
        self.hidden_shape = tuple(hidden.shape)
        self.row_shape = row_shape = self.hidden_shape[:-1]
        features = self.hidden_shape[-1]
        weight = self._primal("weight", weight, hidden)
        if len(weight.shape) != 2 or weight.shape[1] != features:
            raise ValueError(f"weight has shape {tuple(weight.shape)}, expected (C, {features}): one row of the "
                             f"hidden size {features} per class (nn.Linear's weight)")
        classes = int(weight.shape[0])
        if classes < 1 or features < 1:
            raise ValueError(f"weight has shape {tuple(weight.shape)}: it needs at least one class and one feature")
        if bias is not None:
            bias = self._primal("bias", bias, hidden)
            _checks.check_shape("bias", bias.shape, (classes,), "one per class, as weight's rows")
        self.rows = rows = math.prod(row_shape)
        self.classes, self.per_class = classes, per_class
        self.hidden = xp.reshape(hidden, (rows, features))
        self.weight, self.bias = weight, bias
        self.reduction = call.reduction
        element_shape = (*row_shape, classes)
        row_arrays: dict[str, Array] = {"targets": self._targets(call.targets, row_shape, element_shape)}
        shared: dict[str, Array] = {}
        options = dict(options)
        if sample_weight is None or (_checks.is_scalar(sample_weight) and not hasattr(sample_weight, "dtype")):
            options["weight"] = None if sample_weight is None else _checks.check_number(
                "sample_weight", sample_weight, low=0.0, high=math.inf)
        else:
            checked = call.within("sample_weight", call.cast(call.adopt("sample_weight", sample_weight)), 0.0,
                                  math.inf, ">= 0")
            checked = self.backend.no_gradient("sample_weight", checked)
            self._place("weight", "sample_weight", checked, element_shape if per_class else row_shape, row_arrays,
                        shared)
        if where is not None:
            mask = call.adopt("where", where)
            if not xp.isdtype(mask.dtype, "bool"):
                raise TypeError(f"where must be a boolean array (True: the class takes part), got dtype {mask.dtype}")
            if tuple(mask.shape) == row_shape:  # one per row, as optax
                mask = xp.expand_dims(mask, axis=-1)
            self._place("where", "where", mask, element_shape, row_arrays, shared)
        for name, value in arrays.items():
            if _is_array_scalar(value) or (hasattr(value, "dtype") and len(value.shape) > 0):
                shared[name] = self.backend.no_gradient(name, call.adopt(name, value))
            elif hasattr(value, "dtype"):  # a NumPy number: a number (the options are hashed)
                options[name] = float(value)
            else:
                options[name] = tuple(value) if isinstance(value, list) else value
        self.valid = self._valid(row_arrays, shared, options)
        denominator = None if self.reduction == "none" else self._denominator()
        if isinstance(denominator, float) and denominator == 1.0:
            denominator = None  # a sum: nothing to divide
        elif isinstance(denominator, float):
            denominator = xp.full((), denominator, dtype=call.dtype, device=call.device)
        elif denominator is not None and call.normalizer is not None:
            denominator = self.backend.no_gradient("normalizer", denominator)
        blocks = self._blocks_serve(row_arrays, shared, options)
        size, block = default_tiles(rows, features, classes, xp, blocks=blocks, elementwise=per_class)
        if chunk_size is not None:
            size, block = _check_chunk("chunk_size", chunk_size, "rows per chunk"), 0
        if class_chunk_size is not None:
            block = _check_chunk("class_chunk_size", class_chunk_size, "classes per block")
            if not blocks:
                raise ValueError(self._no_blocks(row_arrays, shared, options))
        if blocks and not per_class and not 0 < block < classes:
            # every class in one block: the statistics' pass keeps its exp(z − m) for the gradient (five passes
            # over a chunk's logits where the unfused kernel takes nine)
            block = classes
        elif block >= classes:
            block = 0
        self.kernel = LinearKernel(planner, tuple(sorted(options.items())), tuple(row_arrays), tuple(shared),
                                   chunk=max(1, min(size, rows)), rows=rows, per_class=per_class,
                                   reduce=self.reduction != "none", normalized=denominator is not None,
                                   class_block=block)
        self.aux = (*row_arrays.values(), *shared.values(), *(() if denominator is None else (denominator,)))

    def _blocks_serve(self, row_arrays: dict[str, Array], shared: dict[str, Array], options: dict[str, Any]) -> bool:
        """Whether the class blocks serve this call: the sigmoid loss, or the softmax loss of integer labels (its
        target kernel) without ``where`` or label smoothing."""
        return self._no_blocks(row_arrays, shared, options) == ""

    def _no_blocks(self, row_arrays: dict[str, Array], shared: dict[str, Array], options: dict[str, Any]) -> str:
        """Why the class blocks do not serve this call ("" where they do)."""
        smoothing = options.get("label_smoothing", 0.0)
        if self.per_class:
            pass  # elementwise: each block is the unfused loss of its classes
        elif row_arrays["targets"].ndim != 1 or "where" in row_arrays or "where" in shared:
            return "class_chunk_size takes integer class indices without where"
        elif "label_smoothing" in shared or not (isinstance(smoothing, (int, float)) and smoothing == 0):
            return "class_chunk_size takes no label_smoothing"
        return ""

    def _primal(self, name: str, x: Any, hidden: Array) -> Array:
        """``weight`` or ``bias``: an array of hidden's library and device (a gradient flows to it), of its dtype."""
        if not hasattr(x, "dtype"):
            raise TypeError(f"{name} must be an array of hidden's library, got {type(x).__name__}")
        self.call.own(name, x)
        x = self.backend.array(x)
        if x.dtype != hidden.dtype:
            raise TypeError(f"{name} has dtype {x.dtype} but hidden has {hidden.dtype}: pass one dtype (under "
                            "mixed precision, the layer's compute dtype)")
        return x

    def _targets(self, targets: Array, row_shape: tuple[int, ...], element_shape: tuple[int, ...]) -> Array:
        xp, shape = self.xp, tuple(targets.shape)
        if not self.per_class and xp.isdtype(targets.dtype, "integral") and shape == row_shape:
            return xp.reshape(targets, (self.rows,))
        if shape != element_shape:
            one = f"integer class indices of shape {row_shape}, or " if not self.per_class else ""
            raise ValueError(f"targets has shape {shape}, expected {one}one target per class, of shape "
                             f"{element_shape} (hidden's rows {row_shape} and weight's {self.classes} classes)")
        targets = xp.reshape(targets, (self.rows, self.classes))
        if xp.isdtype(targets.dtype, "real floating"):
            targets = self.backend.no_gradient("targets", targets)
        return targets

    def _place(self, key: str, name: str, x: Array, loss_shape: tuple[int, ...], row_arrays: dict[str, Array],
               shared: dict[str, Array]) -> None:
        """An array that broadcasts to the loss's elements: with a row axis (cut into chunks) where it varies
        along hidden's rows, else shared by every row."""
        xp, shape = self.xp, tuple(x.shape)
        if not _checks.broadcasts(shape, loss_shape):
            raise ValueError(f"{name} has shape {shape}, which does not broadcast to the loss's shape {loss_shape} "
                             f"(hidden's rows {self.row_shape}" + (f" and {self.classes} classes)" if len(
                                 loss_shape) > len(self.row_shape) else ")"))
        x = xp.reshape(x, (1,) * (len(loss_shape) - len(shape)) + shape)
        lead = len(self.row_shape)
        tail = tuple(x.shape[lead:])
        if all(s == 1 for s in x.shape[:lead]):
            shared[key] = xp.reshape(x, (1, *tail) if tail else ())
        else:
            x = xp.broadcast_to(x, (*self.row_shape, *tail))
            row_arrays[key] = xp.reshape(x, (self.rows, *tail))

    def _valid(self, row_arrays: dict[str, Array], shared: dict[str, Array], options: dict[str, Any]) -> Any:
        """The number of loss elements the mean divides by: rows (softmax) or elements (sigmoid) that are not
        ``ignore_index``, and rows ``where`` leaves a class of; None where every one counts."""
        xp, ignore = self.xp, options.get("ignore_index")
        targets = row_arrays["targets"]
        if self.per_class:
            if ignore is None:
                return None

            def body(count: Any, chunk: tuple[Array, ...]) -> Any:
                return count + xp.sum(xp.astype(chunk[0] != ignore, self.call.dtype)), (None,)

            zero = xp.zeros_like(targets[:1, 0], dtype=self.call.dtype)[0] if self.rows else 0.0
            size = default_chunk_size(self.rows, int(self.hidden.shape[1]), self.classes, xp)
            return fold_rows(xp, body, zero, (targets,), self.rows, size)[0] if self.rows else None
        valid = None
        if ignore is not None and targets.ndim == 1:
            valid = targets != ignore
        where = row_arrays.get("where", shared.get("where"))
        if where is not None:
            kept = xp.broadcast_to(xp.any(where, axis=-1), (self.rows,))  # where is (N, C), (N, 1) or (1, C)
            valid = kept if valid is None else valid & kept
        return None if valid is None else xp.sum(xp.astype(valid, self.call.dtype))

    def _denominator(self) -> Any:
        valid = self.valid
        return denominator(self.call, self.rows * (self.classes if self.per_class else 1),
                           None if valid is None else (lambda: valid))

    def _finish(self, out: Array) -> Array:
        if self.reduction == "none":
            out = self.xp.reshape(out, self.row_shape)
        return self.call.out(out)  # a reduced loss: already divided by its denominator (the kernel's normalized)

    def loss(self) -> Array:
        quiet = self.backend.quiet()
        if quiet is None:
            return self._finish(self.backend.apply_linear(self.kernel, self.hidden, self.weight, self.bias, self.aux))
        with quiet:
            return self._finish(self.backend.apply_linear(self.kernel, self.hidden, self.weight, self.bias, self.aux))

    def value_and_grad(self) -> tuple[Array, tuple[Array, Array, Array | None]]:
        """The loss and ``(d hidden, d weight, d bias)`` computed directly (any library, NumPy included)."""
        quiet = self.backend.quiet()
        if quiet is None:
            return self._value_and_grad()
        with quiet:
            return self._value_and_grad()

    def _value_and_grad(self) -> tuple[Array, tuple[Array, Array, Array | None]]:
        xp, stop = self.xp, self.backend.stop_gradient
        hidden, weight = stop(self.hidden), stop(self.weight)
        bias = None if self.bias is None else stop(self.bias)
        aux = tuple(stop(a) for a in self.aux)
        wanted = (True, True, bias is not None)
        out, residuals = self.kernel.forward(xp, hidden, weight, bias, aux, wanted)
        cotangent = xp.ones_like(out) if self.reduction == "none" else 1.0
        dhidden, dweight, dbias = self.kernel.vjp(xp, (hidden, weight, bias, aux), residuals, cotangent, wanted)
        dhidden = xp.reshape(dhidden, self.hidden_shape)
        return self._finish(out), (dhidden, dweight, dbias)


def _is_array_scalar(value: Any) -> bool:
    """A 0-d array of a framework (a traced or learnable hyperparameter), not a Python or NumPy number."""
    return hasattr(value, "dtype") and tuple(getattr(value, "shape", (1,))) == () and not (
        type(value).__module__ == "numpy")


def _check_chunk(name: str, size: Any, what: str) -> int:
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"{name} must be a positive int ({what}) or None, got {size!r}")
    return int(size)


@document
def linear_softmax_focal_loss(
    hidden: Array,
    weight: Array,
    targets: Array,
    bias: Array | None = None,
    *,
    alpha: float | Sequence[float] | Array | None = None,
    gamma: float | Sequence[float] | Array | Any = 2.0,
    ignore_index: int | None = None,
    reduction: str = "mean",
    sample_weight: Array | float | None = None,
    normalizer: Array | float | None = None,
    label_smoothing: float = 0.0,
    reduced_threshold: float | None = None,
    where: Array | None = None,
    chunk_size: int | None = None,
    class_chunk_size: int | None = None,
    detach_modulator: bool = False,
) -> Array:
    r"""The softmax focal loss of a linear layer's output, ``softmax_focal_loss(hidden @ weight.T + bias, targets)``,
    without ever holding more than a chunk of its rows.

    .. math::

        z = h W^\top + b,\qquad p = \operatorname{softmax}(z),\qquad
        \mathrm{FL}(z, t) = -\alpha_t\,(1-p_t)^{\gamma} \log p_t

    Per chunk of ``chunk_size`` rows the logits are formed, the focal kernel gives the chunk's loss and its gradient
    w.r.t. them, and that gradient becomes the chunk's ``d hidden`` and its share of ``d weight`` and ``d bias`` at
    once (in the forward pass; the backward scales them by the cotangent). Where a chunk would be a few rows only
    (a vocabulary many times the hidden size), the rows meet ``class_chunk_size`` classes at a time instead, in two
    passes: an online log-sum-exp of the blocks' logits, then each block's logits formed again and turned into its
    gradient (``focal._class_blocks``). With many classes the logits are the
    memory of a language model's or a 21k-class classifier's loss: 8192 rows × 128k classes in float32 is 4 GiB, and
    its gradient as much again; here a chunk's. With ``γ = 0`` and no α it is the cross entropy of
    ``hidden @ weight.T + bias`` (Liger-Kernel's fused linear cross entropy).

    Args:
        hidden: the layer's input, ``(..., H)``: its leading axes are the rows (``(B, T, H)`` hidden states of a
            language model: shift them and the labels first, as the model's own loss does). float16/bfloat16 are
            multiplied in their dtype and the loss and ``d weight`` accumulated in float32 (one chunk of rows over
            blocks of classes writes each block's rows of ``d weight`` once, in its dtype).
        weight: the layer's weight, ``(C, H)`` (``nn.Linear``'s), of hidden's library and dtype.
        targets: integer class indices of hidden's leading shape (values in [0, C) or ``ignore_index``), or class
            probabilities of shape ``(..., C)``.
        bias: the layer's bias ``(C,)``, or None.
        alpha: as :func:`focal.softmax_focal_loss`: None, a scalar in [0, 1] or one weight per class.
        gamma: ``γ ≥ 0`` (default 2), a per-class vector or :data:`focal.flsd53`.
        ignore_index: a label whose rows count neither in the loss nor in the mean (-100 for a language model's
            padding and prompt tokens). Default None.
        reduction: ``"mean"`` (over the rows not ignored; default), ``"sum"``, or ``"none"`` (one loss per row, of
            hidden's leading shape: its backward runs the chunks again).
        sample_weight: per-row weights broadcastable to hidden's leading shape, multiplied before reducing
            (the unfused loss's ``weight``: here ``weight`` is the layer's). Default None.
        normalizer: divide the sum by ``max(normalizer, eps)`` instead (a Hugging Face ``Trainer``'s
            ``num_items_in_batch``), a number or 0-d array. Default None.
        label_smoothing: ``y ← y (1 − ls) + ls / C``, in [0, 1), made per chunk. Default 0.
        reduced_threshold: the reduced focal loss's threshold (as :func:`focal.softmax_focal_loss`). Default None.
        where: optax's ``where``: classes where it is False are left out of the softmax and the loss; of shape
            ``(..., C)`` (or broadcasting to it: ``(C,)`` for one mask of every row) or of hidden's leading shape
            (one per row). Default None.
        chunk_size: rows per chunk. Default None: ``N / ceil(C / H)`` rounded up to a power of two (PyTorch's
            ``LinearCrossEntropyOptions`` and Liger-Kernel's choice: a chunk's logits about the size of all rows'
            hidden states), at least 128 rows, at most N. Given alone, chunks span every class.
        class_chunk_size: classes per block. Default None: blocks where ``N / ceil(C / H)`` is below 128 rows (up
            to 8192 rows at a time, and as many logits as that chunk would hold), else every class at once.
            Integer labels without ``where`` or label smoothing, on every framework; elsewhere giving it is a
            ``ValueError``.
        detach_modulator: the modulating factor held constant, as :func:`focal.softmax_focal_loss`. Default False.

    Returns:
        The loss, of hidden's library and dtype (per row with ``reduction="none"``). Gradients reach ``hidden``,
        ``weight`` and ``bias`` (``torch.autograd``, ``jax.grad``, ``tf.GradientTape``; ``focal.value_and_grad``
        gives ``(loss, (d hidden, d weight, d bias))`` on any library); the hyperparameters, the targets and
        ``sample_weight`` have none here (asking for one is a ``TypeError``; the unfused loss gives them).

    References:
        Lin, Goyal, Girshick, He, Dollár. Focal Loss for Dense Object Detection. ICCV 2017.
        Hsu et al. Liger Kernel: Efficient Triton Kernels for LLM Training, 2024 (the fused linear cross entropy).
    """
    return _plan_linear_softmax(hidden, weight, targets, bias, alpha=alpha, gamma=gamma, ignore_index=ignore_index,
                                reduction=reduction, sample_weight=sample_weight, normalizer=normalizer,
                                label_smoothing=label_smoothing, reduced_threshold=reduced_threshold, where=where,
                                chunk_size=chunk_size, class_chunk_size=class_chunk_size,
                                detach_modulator=detach_modulator).loss()


@plans(linear_softmax_focal_loss)
def _plan_linear_softmax(hidden: Array, weight: Array, targets: Array, bias: Any, *, alpha: Any, gamma: Any,
                         ignore_index: Any, reduction: str, sample_weight: Any, normalizer: Any,
                         label_smoothing: Any, reduced_threshold: Any, where: Any, chunk_size: Any,
                         class_chunk_size: Any, detach_modulator: bool) -> LinearPlan:
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral)):
        raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
    options = {"axis": -1, "ignore_index": ignore_index, "normalizer": None, "from_logits": True,
               "normalized": False, "where": None, "detach_modulator": detach_modulator}
    arrays = {"alpha": alpha, "gamma": gamma, "label_smoothing": label_smoothing,
              "reduced_threshold": reduced_threshold}
    return LinearPlan(_plan_softmax_focal, False, hidden, weight, bias, targets, reduction=reduction,
                      sample_weight=sample_weight, normalizer=normalizer, chunk_size=chunk_size,
                      class_chunk_size=class_chunk_size, where=where, options=options, arrays=arrays)


@document
def linear_sigmoid_focal_loss(
    hidden: Array,
    weight: Array,
    targets: Array,
    bias: Array | None = None,
    *,
    alpha: float | None = 0.25,
    gamma: float | Sequence[float] | Array | Any = 2.0,
    reduction: str = "mean",
    sample_weight: Array | float | None = None,
    normalizer: Array | float | None = None,
    label_smoothing: float = 0.0,
    form: str = "pt",
    ignore_index: float | None = None,
    pos_weight: float | Sequence[float] | Array | None = None,
    chunk_size: int | None = None,
    class_chunk_size: int | None = None,
    detach_modulator: bool = False,
) -> Array:
    r"""The sigmoid (multi-label) focal loss of a linear layer's output,
    ``sigmoid_focal_loss(hidden @ weight.T + bias, targets)``, without ever holding more than a chunk of its rows.

    .. math::

        z = h W^\top + b,\qquad \mathrm{FL}(z, y) = \alpha_t\,(1-p_t)^\gamma\,\mathrm{BCE}(z, y),\quad p = \sigma(z)

    For extreme multi-label tagging, where the classes are many: per chunk of rows the logits, the focal kernel's
    loss and gradient, then the chunk's ``d hidden`` and its share of ``d weight`` and ``d bias``
    (:func:`focal.linear_softmax_focal_loss` has the details).

    Args:
        hidden: the layer's input, ``(..., H)``: its leading axes are the rows.
        weight: the layer's weight, ``(C, H)``, of hidden's library and dtype.
        targets: one target per class, ``(..., C)``: floats in [0, 1], or bool / integer 0/1 labels (a bool or
            uint8 multi-hot array is 1/4 of float32's memory).
        bias: the layer's bias ``(C,)``, or None.
        alpha: weight of the positives in [0, 1], or None. Default 0.25.
        gamma: ``γ ≥ 0`` (default 2), a per-class vector or :data:`focal.flsd53`.
        reduction: ``"mean"`` (over every element not ignored, as the unfused loss; default), ``"sum"``, or
            ``"none"``: one loss per row, summed over the classes (the per-element losses are the logits' size,
            which this loss exists to avoid).
        sample_weight: weights broadcastable to ``(..., C)`` (per row, per class, or both), multiplied before
            reducing (the unfused loss's ``weight``). Default None.
        normalizer: divide the sum by ``max(normalizer, eps)`` instead, a number or 0-d array. Default None.
        label_smoothing: ``y ← y (1 − ls) + ls / 2``, in [0, 1). Default 0.
        form: ``"pt"`` (default) or ``"split"``, as :func:`focal.sigmoid_focal_loss`.
        ignore_index: a target value whose elements count neither in the loss nor in the mean. Default None.
        pos_weight: scales the positive term, a number or one per class ``(C,)``. Default None.
        detach_modulator: the modulating factor held constant, as :func:`focal.sigmoid_focal_loss`. Default False.
        chunk_size: rows per chunk; default as :func:`focal.linear_softmax_focal_loss`.
        class_chunk_size: classes per block: each block of a chunk's logits is the unfused loss of those classes
            (an element per class: one pass, nothing to carry from block to block). Default None: as
            :func:`focal._linear.default_tiles` chooses them.

    Returns:
        The loss, of hidden's library and dtype. Gradients reach ``hidden``, ``weight`` and ``bias``.

    References:
        Lin, Goyal, Girshick, He, Dollár. Focal Loss for Dense Object Detection. ICCV 2017.
    """
    return _plan_linear_sigmoid(hidden, weight, targets, bias, alpha=alpha, gamma=gamma, reduction=reduction,
                                sample_weight=sample_weight, normalizer=normalizer, label_smoothing=label_smoothing,
                                form=form, ignore_index=ignore_index, pos_weight=pos_weight,
                                chunk_size=chunk_size, class_chunk_size=class_chunk_size,
                                detach_modulator=detach_modulator).loss()


@plans(linear_sigmoid_focal_loss)
def _plan_linear_sigmoid(hidden: Array, weight: Array, targets: Array, bias: Any, *, alpha: Any, gamma: Any,
                         reduction: str, sample_weight: Any, normalizer: Any, label_smoothing: Any, form: str,
                         ignore_index: Any, pos_weight: Any, chunk_size: Any, class_chunk_size: Any,
                         detach_modulator: bool) -> LinearPlan:
    if form not in ("pt", "split"):
        raise ValueError(f"form must be 'pt' or 'split', got {form!r}")
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Real)):
        raise TypeError(f"ignore_index must be a number or None, got {ignore_index!r}")
    if pos_weight is not None and hasattr(pos_weight, "shape") and len(pos_weight.shape) > 1:
        raise ValueError(f"pos_weight has shape {tuple(pos_weight.shape)}: a number or one per class (C,)")
    options = {"normalizer": None, "from_logits": True, "form": form, "ignore_index": ignore_index,
               "detach_modulator": detach_modulator}
    arrays = {"alpha": alpha, "gamma": gamma, "label_smoothing": label_smoothing, "pos_weight": pos_weight}
    return LinearPlan(_plan_sigmoid_focal, True, hidden, weight, bias, targets, reduction=reduction,
                      sample_weight=sample_weight, normalizer=normalizer, chunk_size=chunk_size,
                      class_chunk_size=class_chunk_size, options=options, arrays=arrays)
