"""The loss cases the conformance suite runs on every library: inputs, parameters and the reference.

A case names a ``focal`` function and the reference that computes the same loss naively, the
parameters both take, and the kind of targets; it makes its own float64 NumPy data from a fixed
seed. ``Run`` turns it into one library's arrays, calls ``focal`` and asks the reference what the
loss and its gradient are (the gradient by the complex step through the reduced reference loss).
"""

from __future__ import annotations

import functools
import inspect
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import reference

import focal

# (focal function, reference, how the loss is shaped): "elements" (one per logit), "rows" (one
# per row along the class axis), "classes" (one per class, over the whole batch)
LOSSES: dict[str, tuple[Callable[..., Any], Callable[..., Any], str]] = {
    "sigmoid": (focal.sigmoid_focal_loss, reference.sigmoid_focal, "elements"),
    "softmax": (focal.softmax_focal_loss, reference.softmax_focal, "rows"),
    "negatives": (focal.focal_loss_with_negatives, reference.focal_with_negatives, "rows"),
    "hard-sigmoid": (focal.hard_truncated_loss, reference.hard_truncated_sigmoid, "elements"),
    "hard-softmax": (focal.hard_truncated_loss, reference.hard_truncated_softmax, "rows"),
    "soft-sigmoid": (focal.soft_truncated_loss, reference.soft_truncated_sigmoid, "elements"),
    "soft-softmax": (focal.soft_truncated_loss, reference.soft_truncated_softmax, "rows"),
    "star": (focal.focal_loss_star, reference.focal_star, "elements"),
    "poly-sigmoid": (focal.poly1_focal_loss, reference.sigmoid_focal, "elements"),
    "poly-softmax": (focal.poly1_focal_loss, reference.softmax_focal, "rows"),
    "poly-ce": (focal.poly1_cross_entropy, reference.softmax_focal, "rows"),
    "asl": (focal.asymmetric_loss, reference.asymmetric, "elements"),
    "asl-softmax": (focal.softmax_asymmetric_loss, reference.softmax_asymmetric, "rows"),
    "qfl": (focal.quality_focal_loss, reference.quality_focal, "elements"),
    "vfl": (focal.varifocal_loss, reference.varifocal, "elements"),
    "dfl": (focal.distribution_focal_loss, reference.distribution_focal, "rows"),
    "tversky": (focal.focal_tversky_loss, reference.focal_tversky, "classes"),
}
# what the reference needs beyond the case's parameters: focal's defaults that the reference lacks
REFERENCE_DEFAULTS = {"poly-sigmoid": {"epsilon": 1.0}, "poly-softmax": {"epsilon": 1.0},
                      "poly-ce": {"epsilon": 1.0, "gamma": 0.0}}


@dataclass(frozen=True)
class Case:
    id: str
    loss: str
    params: dict[str, Any] = field(default_factory=dict)
    reduction: str = "mean"
    weight: str | None = None  # None, "full" (loss shape) or "rows" (broadcast along the last axis)
    normalizer: float | None = None
    shape: tuple[int, ...] = (6, 5)
    target: str = "hard"  # hard, soft, bool, quality; labels, onehot, soft-rows; distance
    scale: float = 3.0

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def fn(self) -> Callable[..., Any]:
        return LOSSES[self.loss][0]

    @property
    def kind(self) -> str:
        return LOSSES[self.loss][2]

    @property
    def axis(self) -> int | None:
        return None if self.kind == "elements" else self.params.get("axis", -1) % len(self.shape)

    def loss_shape(self) -> tuple[int, ...]:
        if self.kind == "elements":
            return self.shape
        if self.kind == "classes":
            return (self.shape[self.axis],)
        return tuple(s for i, s in enumerate(self.shape) if i != self.axis)

    def data(self) -> dict[str, Any]:
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        if self.params.get("from_logits", True):
            x = rng.normal(size=self.shape) * self.scale
        elif self.kind == "elements":
            x = rng.uniform(0.02, 0.98, size=self.shape)
        else:
            classes = self.shape[self.axis]
            rows = rng.dirichlet(np.ones(classes) * 2.0, size=int(np.prod(self.shape)) // classes)
            rows_shape = tuple(s for i, s in enumerate(self.shape) if i != self.axis) + (classes,)
            x = np.moveaxis(rows.reshape(rows_shape), -1, self.axis)
        t = self._targets(rng)
        weight = None
        if self.weight == "full":
            weight = rng.uniform(0.5, 2.0, size=self.loss_shape())
        elif self.weight == "rows":
            weight = rng.uniform(0.5, 2.0, size=self.loss_shape()[:-1] + (1,))
        return {"x": x, "t": t, "weight": weight}

    def _targets(self, rng: np.random.Generator) -> np.ndarray:
        if self.target in ("hard", "soft", "bool", "quality"):
            u = rng.random(self.shape)
            hard = (u > 0.6).astype(np.float64)
            out = {"hard": hard, "soft": u, "bool": u > 0.6, "quality": hard * rng.uniform(0.1, 1.0, self.shape)}[
                self.target]
            ignore = self.params.get("ignore_index")
            if ignore is not None:  # a sigmoid loss's ignored elements: their float target is ignore_index
                out = np.where(rng.random(self.shape) < 0.3, float(ignore), out)
            return out
        classes = self.shape[self.axis]
        rows = tuple(s for i, s in enumerate(self.shape) if i != self.axis)
        if self.target == "distance":
            return rng.uniform(0.0, classes - 1.0, size=rows)
        labels = rng.integers(0, classes, size=rows)
        ignore = self.params.get("ignore_index")
        if ignore is not None:
            labels[rng.random(rows) < 0.3] = ignore
        if self.target == "labels":
            return labels
        dense = np.eye(classes)[labels] if self.target == "onehot" else \
            rng.dirichlet(np.ones(classes) * 0.5, size=rows)
        return np.moveaxis(dense, -1, self.axis)

    def reference_loss(self, t: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        ref = LOSSES[self.loss][1]
        accepted = inspect.signature(ref).parameters
        params = {**REFERENCE_DEFAULTS.get(self.loss, {}), **self.params}
        params = {k: v for k, v in params.items() if k in accepted}  # e.g. "activation" picks the reference
        if params.get("gamma") is focal.flsd53:
            params["gamma"] = "flsd53"
        return lambda v: ref(v, t, **params)

    def count(self, t: np.ndarray) -> int | None:
        ignore = self.params.get("ignore_index")
        if ignore is not None and (t.dtype.kind == "i" and self.kind == "rows" or self.kind == "elements"):
            return int(np.sum(t != ignore))
        return None

    def reference(self, x: np.ndarray, t: np.ndarray, weight: Any) -> tuple[Any, np.ndarray]:
        """The reduced loss and its gradient w.r.t. ``x`` (of the summed loss for ``"none"``)."""
        per_element = self.reference_loss(t)
        count = self.count(t)
        value = reference.reduce(per_element(x), self.reduction, weight=weight, normalizer=self.normalizer,
                                 count=count)
        summed = "sum" if self.reduction == "none" else self.reduction
        grad = reference.gradient(lambda v: reference.reduce(per_element(v), summed, weight=weight,
                                                             normalizer=self.normalizer, count=count), x)
        return value, grad

    def kwargs(self, weight: Any) -> dict[str, Any]:
        extra = {} if self.kind == "classes" else {"normalizer": self.normalizer}
        return {**self.params, "reduction": self.reduction, "weight": weight, **extra}


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
    Case("sig-pos-weight", "sigmoid", {"pos_weight": [0.5, 1.0, 2.0, 3.0, 0.0], "gamma": 1.5}, target="soft"),
    Case("sig-split-pos-weight", "sigmoid", {"form": "split", "pos_weight": [2.0, 1.0, 0.5, 1.0, 4.0]},
         reduction="sum"),
    Case("sig-ignore", "sigmoid", {"ignore_index": -100.0, "gamma": 0.5}, weight="full"),
    Case("sig-ignore-none", "sigmoid", {"ignore_index": 255.0}, target="soft", reduction="none"),
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
    Case("sm-soft", "softmax", {"gamma": 1.5, "alpha": [0.5, 0.5, 0.25, 1.0, 0.75]}, target="soft-rows"),
    Case("sm-soft-gamma0.5", "softmax", {"gamma": 0.5}, target="soft-rows", reduction="none"),
    Case("sm-axis1", "softmax", {"axis": 1}, target="labels", shape=(2, 4, 3, 2)),
    Case("sm-axis1-soft", "softmax", {"axis": 1, "gamma": 1.0}, target="soft-rows", shape=(2, 4, 3)),
    Case("sm-weight", "softmax", {}, target="labels", weight="full"),
    Case("sm-weight-rows", "softmax", {}, target="labels", weight="rows", shape=(3, 2, 5), reduction="sum"),
    Case("sm-normalizer", "softmax", {"gamma": 2.0}, target="labels", normalizer=2.5),
    Case("sm-smoothing", "softmax", {"label_smoothing": 0.1}, target="labels"),
    Case("sm-probs", "softmax", {"from_logits": False}, target="labels"),
    Case("sm-probs-soft", "softmax", {"from_logits": False, "gamma": 1.0}, target="soft-rows"),
]

VARIANTS = [
    Case("sig-split-soft", "sigmoid", {"form": "split", "gamma": 1.5}, target="soft"),
    Case("sig-split-hard", "sigmoid", {"form": "split", "alpha": None}, reduction="none"),
    Case("sig-gamma-vector", "sigmoid", {"gamma": [0.0, 0.5, 1.0, 2.0, 5.0]}),
    Case("sig-flsd53", "sigmoid", {"gamma": focal.flsd53}, target="soft", scale=1.0),
    Case("sm-gamma-vector", "softmax", {"gamma": [0.0, 0.5, 1.0, 2.0, 5.0]}, target="labels"),
    Case("sm-gamma-vector-soft", "softmax", {"gamma": [0.5, 0.5, 1.0, 2.0, 3.0]}, target="soft-rows"),
    Case("sm-flsd53", "softmax", {"gamma": focal.flsd53}, target="labels", scale=1.0),
    Case("sm-reduced", "softmax", {"reduced_threshold": 0.3}, target="labels"),
    Case("sm-reduced-soft", "softmax", {"reduced_threshold": 0.4, "gamma": 1.0}, target="soft-rows"),
    Case("sm-normalized", "softmax", {"normalized": True, "alpha": 0.5}, target="labels", reduction="sum"),
    Case("sm-normalized-ignore", "softmax", {"normalized": True, "ignore_index": -1}, target="labels",
         reduction="none"),
    Case("neg-softmax", "negatives", {}, target="labels"),
    Case("neg-softmax-soft", "negatives", {"gamma": 1.0, "alpha": 0.5}, target="soft-rows", reduction="sum"),
    Case("neg-sigmoid", "negatives", {"activation": "sigmoid"}, target="labels"),
    Case("neg-sigmoid-axis0", "negatives", {"activation": "sigmoid", "axis": 0, "alpha": None}, target="soft-rows",
         reduction="none"),
    Case("hard-sig", "hard-sigmoid", {"margin": 0.6}, scale=1.5),
    Case("hard-sm", "hard-softmax", {"activation": "softmax", "margin": 0.4}, target="labels", scale=1.5),
    Case("soft-sig", "soft-sigmoid", {"k": 2.0}),
    Case("soft-sig-soft", "soft-sigmoid", {"k": 1.0}, target="soft", reduction="sum"),
    Case("soft-sm", "soft-softmax", {"activation": "softmax", "k": 0.5}, target="labels"),
    Case("soft-sm-ignore", "soft-softmax", {"activation": "softmax", "ignore_index": 9}, target="labels"),
    Case("star", "star", {}),
    Case("star-alpha", "star", {"gamma": 1.0, "beta": 0.0, "alpha": 0.25}, reduction="sum"),
    Case("poly-sig", "poly-sigmoid", {"epsilon": 1.0}),
    Case("poly-sig-neg", "poly-sigmoid", {"epsilon": -0.5, "gamma": 0.5}, target="soft"),
    Case("poly-sm", "poly-softmax", {"activation": "softmax", "epsilon": 2.0, "alpha": None}, target="labels"),
    Case("poly-sm-soft", "poly-softmax", {"activation": "softmax", "epsilon": 1.0, "alpha": None, "gamma": 1.0},
         target="soft-rows"),
    Case("poly-ce", "poly-ce", {"epsilon": 1.0}, target="labels"),
    Case("poly-ce-soft", "poly-ce", {"epsilon": 2.0}, target="soft-rows", reduction="sum"),
    Case("asl", "asl", {}, reduction="sum"),
    Case("asl-params", "asl", {"gamma_pos": 1.0, "gamma_neg": 2.0, "clip": 0.0}),
    Case("asl-softmax", "asl-softmax", {}, target="labels"),
    Case("asl-softmax-params", "asl-softmax", {"gamma_pos": 1.0, "gamma_neg": 2.5, "label_smoothing": 0.3},
         target="labels", reduction="sum"),
    Case("asl-softmax-axis1", "asl-softmax", {"axis": 1, "gamma_pos": 0.5, "gamma_neg": 1.0}, target="labels",
         shape=(2, 4, 3), reduction="none"),
    Case("asl-softmax-ignore", "asl-softmax", {"ignore_index": -100, "gamma_pos": 1.0}, target="labels"),
    Case("asl-softmax-ignore-none", "asl-softmax", {"ignore_index": 3, "axis": 1}, target="labels", shape=(2, 4, 3),
         reduction="none"),
    Case("asl-softmax-weight", "asl-softmax", {"label_smoothing": 0.0, "gamma_pos": 2.0}, target="labels",
         weight="full"),
    Case("qfl", "qfl", {}, target="quality"),
    Case("qfl-beta1", "qfl", {"beta": 1.0}, target="quality", reduction="none"),
    Case("vfl", "vfl", {}, target="quality"),
    Case("vfl-params", "vfl", {"alpha": 0.5, "gamma": 1.0}, target="quality", reduction="sum"),
    Case("dfl", "dfl", {}, target="distance", shape=(6, 8)),
    # the modulating factor held constant (RT-DETR's VFL, timm's disable_torch_grad_focal_loss)
    Case("sig-detach", "sigmoid", {"detach_modulator": True}),
    Case("sig-detach-soft", "sigmoid", {"detach_modulator": True, "gamma": 0.5, "pos_weight": 2.0}, target="soft",
         reduction="none"),
    Case("sig-split-detach", "sigmoid", {"detach_modulator": True, "form": "split", "gamma": 1.5}, target="soft",
         reduction="sum"),
    Case("asl-detach", "asl", {"detach_modulator": True, "gamma_pos": 1.0}, target="soft", reduction="sum"),
    Case("asl-detach-gamma", "asl", {"detach_modulator": True, "gamma_neg": 2.5, "clip": 0.0}),
    Case("vfl-detach", "vfl", {"detach_modulator": True}, target="quality"),
    Case("sm-detach", "softmax", {"detach_modulator": True, "alpha": [0.1, 0.2, 0.3, 0.9, 1.0]}, target="labels"),
    Case("sm-detach-soft", "softmax", {"detach_modulator": True, "gamma": 0.5}, target="soft-rows", reduction="sum"),
    Case("sm-detach-reduced", "softmax", {"detach_modulator": True, "reduced_threshold": 0.3}, target="labels"),
    Case("sm-detach-normalized", "softmax", {"detach_modulator": True, "normalized": True}, target="labels",
         reduction="sum"),
    Case("dfl-axis0", "dfl", {"axis": 0}, target="distance", shape=(5, 4), reduction="sum"),
    Case("tversky", "tversky", {"axis": 1}, target="labels", shape=(2, 3, 4), scale=1.0),
    Case("tversky-sigmoid", "tversky", {"activation": "sigmoid", "gamma": 1.5}, target="hard", shape=(4, 3),
         reduction="none"),
    Case("tversky-soft-ignore", "tversky", {"ignore_index": -1, "a": 0.5, "b": 0.5, "gamma": 2.0}, target="labels",
         shape=(5, 4), reduction="sum"),
]

CASES = SIGMOID + SOFTMAX + VARIANTS


@functools.cache
def _expected(case: Case, dtype: str) -> tuple[Any, np.ndarray]:
    d = case.data()
    x = d["x"].astype(dtype).astype(np.float64)
    t = d["t"] if d["t"].dtype.kind in "ib" else d["t"].astype(dtype).astype(np.float64)
    w = None if d["weight"] is None else d["weight"].astype(dtype).astype(np.float64)
    return case.reference(x, t, w)


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
        w = None if d["weight"] is None else d["weight"].astype(self.dtype).astype(np.float64)
        lib = self.lib
        self.x = lib.array(self.x64, self.dtype)
        self.targets = lib.array(self.t, None if self.t.dtype.kind in "ib" else self.dtype)
        self.weight = None if w is None else lib.array(w, self.dtype)

    def loss(self, x: Any = None) -> Any:
        return self.case.fn(self.x if x is None else x, self.targets, **self.case.kwargs(self.weight))

    def summed(self, x: Any) -> Any:
        out = self.loss(x)
        return self.lib.sum(out) if self.case.reduction == "none" else out

    def value_and_grad(self) -> tuple[Any, Any]:
        return focal.value_and_grad(self.case.fn)(self.x, self.targets, **self.case.kwargs(self.weight))

    def expected(self) -> tuple[Any, np.ndarray]:
        return _expected(self.case, self.dtype)
