"""The loss cases the conformance suite runs on every library: inputs, parameters and the reference.

A case makes its own float64 NumPy data from a fixed seed; ``Run`` turns it into one library's
arrays, calls ``focal`` and computes what the reference says the loss and its gradient are.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import focal
import reference


@dataclass(frozen=True)
class Case:
    id: str
    loss: str  # "sigmoid" or "softmax"
    params: dict[str, Any] = field(default_factory=dict)
    reduction: str = "mean"
    weight: str | None = None  # None, "full" (loss shape) or "rows" (broadcast along the last axis)
    normalizer: float | None = None
    shape: tuple[int, ...] = (6, 5)
    target: str = "hard"  # sigmoid: hard, soft, bool; softmax: labels, onehot, soft
    scale: float = 3.0

    @property
    def fn(self) -> Any:
        return focal.sigmoid_focal_loss if self.loss == "sigmoid" else focal.softmax_focal_loss

    @property
    def axis(self) -> int | None:
        return None if self.loss == "sigmoid" else self.params.get("axis", -1) % len(self.shape)

    def data(self) -> dict[str, Any]:
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        from_logits = self.params.get("from_logits", True)
        if from_logits:
            x = rng.normal(size=self.shape) * self.scale
        elif self.loss == "sigmoid":
            x = rng.uniform(0.02, 0.98, size=self.shape)
        else:
            x = rng.dirichlet(np.ones(self.shape[self.axis]), size=self._rows()).reshape(self._rows_first())
            x = np.moveaxis(x, -1, self.axis)
        if self.loss == "sigmoid":
            t = rng.random(self.shape)
            t = {"hard": (t > 0.6).astype(np.float64), "soft": t, "bool": t > 0.6}[self.target]
            loss_shape = self.shape
        else:
            classes = self.shape[self.axis]
            loss_shape = tuple(s for i, s in enumerate(self.shape) if i != self.axis)
            labels = rng.integers(0, classes, size=loss_shape)
            ignore = self.params.get("ignore_index")
            if ignore is not None:
                labels[rng.random(loss_shape) < 0.3] = ignore
            if self.target == "labels":
                t = labels
            else:
                rows = np.eye(classes)[labels] if self.target == "onehot" else \
                    rng.dirichlet(np.ones(classes) * 0.5, size=loss_shape)
                t = np.moveaxis(rows, -1, self.axis)
        weight = None
        if self.weight == "full":
            weight = rng.uniform(0.5, 2.0, size=loss_shape)
        elif self.weight == "rows":
            weight = rng.uniform(0.5, 2.0, size=loss_shape[:-1] + (1,))
        return {"x": x, "t": t, "weight": weight, "loss_shape": loss_shape}

    def _rows(self) -> int:
        return int(np.prod(self._rows_first()[:-1]))

    def _rows_first(self) -> tuple[int, ...]:
        shape = list(self.shape)
        classes = shape.pop(self.axis)
        return tuple(shape) + (classes,)

    def reference(self, x: np.ndarray, t: np.ndarray, weight: Any) -> tuple[Any, np.ndarray]:
        """The reduced loss and its gradient w.r.t. ``x`` (of the summed loss for ``"none"``)."""
        if self.loss == "sigmoid":
            params = dict(self.params)

            def per_element(v: np.ndarray) -> np.ndarray:
                return reference.sigmoid_focal(v, t.astype(np.float64), **params)
            count = None
        else:
            params = dict(self.params)

            def per_element(v: np.ndarray) -> np.ndarray:
                return reference.softmax_focal(v, t, **params)
            ignore = params.get("ignore_index")
            count = int(np.sum(t != ignore)) if ignore is not None and t.dtype.kind == "i" else None
        value = reference.reduce(per_element(x), self.reduction, weight=weight, normalizer=self.normalizer,
                                 count=count)
        cotangent = np.ones(per_element(x).shape)
        if weight is not None:
            cotangent = cotangent * weight
        if self.reduction != "none":
            if self.normalizer is not None:
                cotangent = cotangent / max(self.normalizer, np.finfo(np.float64).eps)
            elif self.reduction == "mean":
                cotangent = cotangent / max(count if count is not None else cotangent.size, 1)
        d = reference.elementwise_derivative(per_element, x, self.axis)
        if self.axis is not None:
            cotangent = np.expand_dims(cotangent, self.axis)
        return value, cotangent * d

    def kwargs(self, weight: Any) -> dict[str, Any]:
        return {**self.params, "reduction": self.reduction, "weight": weight, "normalizer": self.normalizer}


SIGMOID = [
    Case("sig-default", "sigmoid"),
    Case("sig-gamma0", "sigmoid", {"gamma": 0.0}, reduction="sum"),
    Case("sig-gamma0.5-soft", "sigmoid", {"gamma": 0.5}, target="soft"),
    Case("sig-gamma1-noalpha", "sigmoid", {"gamma": 1.0, "alpha": None}, reduction="none"),
    Case("sig-gamma5-alpha0.9", "sigmoid", {"gamma": 5.0, "alpha": 0.9}, reduction="sum"),
    Case("sig-soft-none", "sigmoid", {"gamma": 2.0}, target="soft", reduction="none"),
    Case("sig-bool", "sigmoid", {"gamma": 1.5}, target="bool"),
    Case("sig-weight", "sigmoid", {}, weight="full"),
    Case("sig-weight-rows-none", "sigmoid", {"gamma": 0.5}, weight="rows", reduction="none"),
    Case("sig-normalizer", "sigmoid", {}, normalizer=3.0, reduction="sum"),
    Case("sig-smoothing", "sigmoid", {"label_smoothing": 0.1, "gamma": 1.0}),
    Case("sig-probs", "sigmoid", {"from_logits": False, "gamma": 2.0}),
    Case("sig-3d", "sigmoid", {"alpha": 0.5}, shape=(2, 3, 4), target="soft"),
]

SOFTMAX = [
    Case("sm-default", "softmax", target="labels"),
    Case("sm-gamma0", "softmax", {"gamma": 0.0}, target="labels", reduction="sum"),
    Case("sm-gamma0.5", "softmax", {"gamma": 0.5}, target="labels"),
    Case("sm-alpha-scalar", "softmax", {"alpha": 0.25, "gamma": 1.0}, target="labels", reduction="none"),
    Case("sm-alpha-vector", "softmax", {"alpha": [0.1, 0.2, 0.3, 0.9, 1.0], "gamma": 2.0}, target="labels"),
    Case("sm-gamma5", "softmax", {"gamma": 5.0}, target="labels", reduction="sum"),
    Case("sm-ignore", "softmax", {"ignore_index": -100}, target="labels"),
    Case("sm-ignore-smoothing", "softmax", {"ignore_index": 2, "label_smoothing": 0.2}, target="labels"),
    Case("sm-onehot", "softmax", {"gamma": 2.0}, target="onehot"),
    Case("sm-soft", "softmax", {"gamma": 1.5, "alpha": [0.5, 0.5, 0.25, 1.0, 0.75]}, target="soft"),
    Case("sm-soft-gamma0.5", "softmax", {"gamma": 0.5}, target="soft", reduction="none"),
    Case("sm-axis1", "softmax", {"axis": 1}, target="labels", shape=(2, 4, 3, 5)),
    Case("sm-axis1-soft", "softmax", {"axis": 1, "gamma": 1.0}, target="soft", shape=(2, 4, 3)),
    Case("sm-weight", "softmax", {}, target="labels", weight="full"),
    Case("sm-weight-rows", "softmax", {}, target="labels", weight="rows", shape=(3, 4, 5), reduction="sum"),
    Case("sm-normalizer", "softmax", {"gamma": 2.0}, target="labels", normalizer=2.5),
    Case("sm-smoothing", "softmax", {"label_smoothing": 0.1}, target="labels"),
    Case("sm-probs", "softmax", {"from_logits": False}, target="labels"),
    Case("sm-probs-soft", "softmax", {"from_logits": False, "gamma": 1.0}, target="soft"),
]

CASES = SIGMOID + SOFTMAX


@dataclass
class Run:
    """One case on one library in one dtype."""

    case: Case
    lib: Any
    dtype: str

    def __post_init__(self) -> None:
        d = self.case.data()
        self.x64 = d["x"].astype(self.dtype).astype(np.float64)
        self.t = d["t"] if d["t"].dtype.kind in "ib" else d["t"].astype(self.dtype).astype(np.float64)
        self.w = None if d["weight"] is None else d["weight"].astype(self.dtype).astype(np.float64)
        lib = self.lib
        self.x = lib.array(self.x64, self.dtype)
        self.targets = lib.array(self.t, None if self.t.dtype.kind in "ib" else self.dtype)
        self.weight = None if self.w is None else lib.array(self.w, self.dtype)

    def loss(self, x: Any = None) -> Any:
        return self.case.fn(self.x if x is None else x, self.targets, **self.case.kwargs(self.weight))

    def summed(self, x: Any) -> Any:
        out = self.loss(x)
        return self.lib.sum(out) if self.case.reduction == "none" else out

    def value_and_grad(self) -> tuple[Any, Any]:
        return focal.value_and_grad(self.case.fn)(self.x, self.targets, **self.case.kwargs(self.weight))

    def expected(self) -> tuple[Any, np.ndarray]:
        return self.case.reference(self.x64, self.t, self.w)
