"""Every bad input a public loss can get, and what it gets: the source of the table in docs/bad-input.md.

A :class:`Case` is one bad input for one family of losses (the entry points that take the same kind
of targets). ``tests/test_bad_inputs.py`` runs each case on each entry point of its family that has
the parameter, on every library, eagerly and under ``jax.jit`` / ``tf.function``; and it checks that
the table in the docs is :func:`table` (``python tests/bad_inputs.py`` prints it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import focal

RNG = np.random.default_rng(5)
X = RNG.normal(size=(4, 5))
BINARY = (RNG.random((4, 5)) > 0.5).astype(np.float64)
LABELS = np.array([0, 4, 2, 1])
DISTANCES = np.array([0.5, 3.2, 1.0, 2.7])  # DFL: 5 bins, distances in [0, 4]

SOFT_OUTSIDE = BINARY.copy()
SOFT_OUTSIDE[1, 3] = 1.5
INTEGER_OUTSIDE = BINARY.astype(np.int64)
INTEGER_OUTSIDE[1, 3] = 2
ONEHOT_OUTSIDE = np.eye(5, dtype=np.int64)[LABELS]
ONEHOT_OUTSIDE[1, 0] = 2
NEGATIVE_WEIGHT = np.ones((4, 5))
NEGATIVE_WEIGHT[1, 3] = -1.0
NEGATIVE_ROW_WEIGHT = np.ones(4)
NEGATIVE_ROW_WEIGHT[1] = -1.0
PROBS = 1.0 / (1.0 + np.exp(-X))
PROBS_OUTSIDE = PROBS.copy()
PROBS_OUTSIDE[1, 3] = 1.2
ROWS_OUTSIDE = np.full((4, 5), 0.2)
ROWS_OUTSIDE[1] = [1.5, -0.5, 0.0, 0.0, 0.0]
SOFTMAX_PROBS = np.exp(X) / np.exp(X).sum(axis=1, keepdims=True)
SOFTMAX_PROBS_OUTSIDE = SOFTMAX_PROBS.copy()
SOFTMAX_PROBS_OUTSIDE[1, 0] = -0.1

# (entry point, the parameters that put it in the family) by family
FAMILIES: dict[str, list[tuple[Callable[..., Any], dict[str, Any]]]] = {
    "sigmoid": [(focal.sigmoid_focal_loss, {}), (focal.asymmetric_loss, {}), (focal.quality_focal_loss, {}),
                (focal.varifocal_loss, {}), (focal.focal_loss_star, {}), (focal.hard_truncated_loss, {}),
                (focal.soft_truncated_loss, {}), (focal.poly1_focal_loss, {})],
    "softmax": [(focal.softmax_focal_loss, {}), (focal.poly1_cross_entropy, {}), (focal.focal_loss_with_negatives, {}),
                (focal.focal_tversky_loss, {}), (focal.hard_truncated_loss, {"activation": "softmax"}),
                (focal.soft_truncated_loss, {"activation": "softmax"}),
                (focal.poly1_focal_loss, {"activation": "softmax"}), (focal.softmax_asymmetric_loss, {})],
    "dfl": [(focal.distribution_focal_loss, {})],
}
# the losses that take integer class indices alone (no dense targets)
LABELS_ONLY = ("softmax_asymmetric_loss",)
# the losses of one value per row (not focal_tversky_loss, one per class)
ROW_LOSSES = ("softmax_focal_loss", "poly1_cross_entropy", "focal_loss_with_negatives", "hard_truncated_loss",
              "softmax_asymmetric_loss",
              "soft_truncated_loss", "poly1_focal_loss", "distribution_focal_loss")
CLEAN_TARGETS = {"sigmoid": BINARY, "softmax": LABELS, "dfl": DISTANCES}
# where the per-element output of a family has the bad element of the data above
ELEMENT = {"sigmoid": (1, 3), "softmax": (1,), "dfl": (1,)}


@dataclass(frozen=True)
class Case:
    """One bad input. ``traced`` is what it gets inside ``jax.jit``/``tf.function``: ``"error"`` (the
    same error: shapes, dtypes and Python parameters are known while tracing) or ``"nan"`` (values
    cannot be read: the affected elements are NaN, ``affects`` says which)."""

    what: str
    families: tuple[str, ...]
    args: dict[str, Any]  # replaces the clean call's: "logits", "targets" or a parameter
    error: type[Exception]
    says: tuple[str, ...]  # fragments of the message, in order
    traced: str = "error"
    affects: str = "element"  # the bad element of the output of reduction="none"; "all"; "class k"; "used"
    example: str = ""  # the bad argument as the table shows it
    libraries: tuple[str, ...] = field(default=())  # only these (an empty tuple: all)
    vectors: bool | None = None  # only the entry points whose parameter takes (True) or refuses (False) a vector
    only: tuple[str, ...] = ()  # only the entry points of these names (an empty tuple: every one that fits)
    dense: bool = False  # the bad argument is a dense target: not for the losses of integer labels alone

    def entries(self) -> list[tuple[Callable[..., Any], dict[str, Any]]]:
        """The entry points that take every argument the case sets."""
        out = []
        for family in self.families:
            for fn, fixed in FAMILIES[family]:
                params = inspect.signature(fn).parameters
                if not all(k in ("logits", "targets") or k in params for k in self.args):
                    continue
                if self.only and fn.__name__ not in self.only:
                    continue
                if self.dense and fn.__name__ in LABELS_ONLY:
                    continue
                takes_vectors = all("Sequence" in str(params[k].annotation) for k in self.args if k in params)
                if self.vectors is None or self.vectors == takes_vectors:
                    out.append((fn, fixed))
        return out

    def family_of(self, fn: Callable[..., Any], fixed: dict[str, Any]) -> str:
        return next(f for f in self.families if (fn, fixed) in FAMILIES[f])


def _cases() -> list[Case]:
    every = ("sigmoid", "softmax", "dfl")
    return [
        Case("logits not floating", every, {"logits": np.arange(20).reshape(4, 5)}, TypeError,
             ("logits", "floating", "int"), example="integer logits"),
        Case("logits not an array", every, {"logits": X.tolist()}, TypeError, ("logits", "list"),
             example="a nested list", libraries=("numpy",)),
        Case("arrays of two libraries", every, {"targets": "other-library"}, TypeError,
             ("targets", "pass arrays of one library"), example="torch logits, JAX targets (NumPy ones are moved)"),
        Case("arrays on two devices", every, {"targets": "other-device"}, ValueError,
             ("targets", "on device", "move them to one device"), example="torch logits on cpu, targets on meta",
             libraries=("torch",)),
        Case("unknown reduction", every, {"reduction": "avg"}, ValueError, ("reduction", "'avg'"),
             example='reduction="avg"'),
        Case("negative normalizer", every, {"normalizer": -2.0}, ValueError, ("normalizer", "-2"),
             example="normalizer=-2.0"),
        Case("negative normalizer array", every, {"normalizer": np.array(-2.0)}, ValueError,
             ("normalizer", ">= 0", "-2"), traced="nan", affects="all", example="normalizer=xp.asarray(-2.0)"),
        Case("normalizer without a reduction", every, {"normalizer": 2.0, "reduction": "none"}, ValueError,
             ("normalizer", "reduction"), example='normalizer=2.0, reduction="none"'),
        Case("weight that does not broadcast", every, {"weight": np.ones((3, 1))}, ValueError,
             ("weight", "(3, 1)", "does not broadcast"), example="weight of shape (3, 1) for 4 rows"),
        Case("negative weight", every, {"weight": -0.5}, ValueError, ("weight", "[0", "-0.5"),
             example="weight=-0.5"),
        Case("negative weight array", ("sigmoid",), {"weight": NEGATIVE_WEIGHT}, ValueError,
             ("weight", ">= 0", "-1"), traced="nan", example="a weight of -1 in a weight array"),
        Case("negative weight array", ("softmax", "dfl"), {"weight": NEGATIVE_ROW_WEIGHT}, ValueError,
             ("weight", ">= 0", "-1"), traced="nan", example="a weight of -1 in a weight array",
             only=ROW_LOSSES),
        # sigmoid family: one float target per logit
        Case("targets of another shape", ("sigmoid",), {"targets": BINARY[:, :3]}, ValueError,
             ("targets", "(4, 3)", "(4, 5)"), example="targets (4, 3) for logits (4, 5)"),
        Case("integer targets other than 0/1", ("sigmoid",), {"targets": INTEGER_OUTSIDE}, ValueError,
             ("targets", "0 or 1", "2"), traced="nan", example="an int64 target of 2"),
        Case("soft targets outside [0, 1]", ("sigmoid",), {"targets": SOFT_OUTSIDE}, ValueError,
             ("targets", "[0, 1]", "1.5"), traced="nan", example="a target of 1.5"),
        Case("probabilities outside [0, 1]", ("sigmoid",), {"logits": PROBS_OUTSIDE, "from_logits": False},
             ValueError, ("logits", "[0, 1]", "from_logits=False", "1.2"), traced="nan",
             example="from_logits=False with an input of 1.2"),
        Case("gamma < 0", ("sigmoid", "softmax"), {"gamma": -1.0}, ValueError, ("gamma", "[0", "-1"),
             example="gamma=-1.0"),
        Case("gamma not a number", ("sigmoid", "softmax"), {"gamma": "2"}, TypeError, ("gamma", "real number"),
             example='gamma="2"'),
        Case("alpha outside [0, 1]", ("sigmoid", "softmax"), {"alpha": 1.5}, ValueError, ("alpha", "[0, 1]", "1.5"),
             example="alpha=1.5"),
        Case("label_smoothing outside [0, 1)", ("sigmoid", "softmax"), {"label_smoothing": 1.0}, ValueError,
             ("label_smoothing", "[0, 1)", "1.0"), example="label_smoothing=1.0"),
        # hyperparameters given as arrays: checked eagerly, NaN where traced (a jit argument, a tf.Variable)
        Case("gamma < 0 as an array", ("sigmoid", "softmax"), {"gamma": np.array(-1.0)}, ValueError,
             ("gamma", "0, inf", "-1"), traced="nan", affects="used", example="gamma=xp.asarray(-1.0)"),
        Case("alpha outside [0, 1] as an array", ("sigmoid", "softmax"), {"alpha": np.array(1.5)}, ValueError,
             ("alpha", "[0, 1]", "1.5"), traced="nan", affects="used", example="alpha=xp.asarray(1.5)"),
        Case("label_smoothing outside [0, 1) as an array", ("sigmoid", "softmax"),
             {"label_smoothing": np.array(1.0)}, ValueError, ("label_smoothing", "[0, 1)", "1"), traced="nan",
             affects="used", example="label_smoothing=xp.asarray(1.0)"),
        # per-class vectors (along the class axis)
        Case("gamma vector of another length", ("sigmoid", "softmax"), {"gamma": [2.0] * 3}, ValueError,
             ("gamma", "(3,)", "(5,)"), example="gamma=[2.0, 2.0, 2.0] for 5 classes", vectors=True),
        Case("gamma vector with a negative entry", ("sigmoid", "softmax"),
             {"gamma": np.array([2.0, 2.0, 2.0, 2.0, -1.0])},
             ValueError, ("gamma", ">= 0", "-1"), traced="nan", affects="class 4",
             example="gamma=xp.asarray([2., 2., 2., 2., -1.])", vectors=True),
        Case("a gamma vector where the loss takes one gamma", ("sigmoid", "softmax"), {"gamma": [2.0] * 5},
             TypeError, ("gamma", "real number", "list"), example="gamma=[2.0] * 5", vectors=False),
        Case("alpha vector of another length", ("softmax",), {"alpha": [0.25] * 4}, ValueError,
             ("alpha", "(4,)", "(5,)"), example="alpha=[0.25] * 4 for 5 classes", vectors=True),
        Case("alpha vector with a negative entry", ("softmax",), {"alpha": np.array([1.0, 1.0, 1.0, 1.0, -1.0])},
             ValueError,
             ("alpha", ">= 0", "-1"), traced="nan", affects="class 4",
             example="alpha=xp.asarray([1., 1., 1., 1., -1.])", vectors=True),
        Case("an alpha vector where the loss takes one alpha", ("sigmoid", "softmax"), {"alpha": [0.25] * 5},
             TypeError, ("alpha", "real number", "list"), example="alpha=[0.25] * 5", vectors=False),
        # softmax family: integer labels or class probabilities
        Case("labels outside [0, C)", ("softmax",), {"targets": np.array([0, 7, 2, 1])}, ValueError,
             ("targets", "outside [0, 5)", "from 7 to 7"), traced="nan", example="label 7 for 5 classes"),
        Case("labels outside [0, C) other than ignore_index", ("softmax",),
             {"targets": np.array([0, -1, 2, 1]), "ignore_index": -100}, ValueError,
             ("targets", "outside [0, 5)", "ignore_index"), traced="nan", example="label -1 with ignore_index=-100"),
        Case("float targets of the labels' shape", ("softmax",), {"targets": LABELS.astype(np.float64)}, ValueError,
             ("targets", "(4,)", "(4, 5)", "integer class indices"), example="float labels of shape (4,)", dense=True),
        Case("float targets to a loss of integer labels", ("softmax",), {"targets": LABELS.astype(np.float64)},
             TypeError, ("targets", "integer class indices", "(4,)", "float"), example="float labels of shape (4,)",
             only=LABELS_ONLY),
        Case("bool targets of the labels' shape", ("softmax",), {"targets": LABELS > 1}, ValueError,
             ("targets", "(4,)", "(4, 5)", "integer class indices"), example="bool labels of shape (4,)", dense=True),
        Case("integer targets of the logits' shape other than 0/1", ("softmax",), {"targets": ONEHOT_OUTSIDE},
             ValueError, ("targets", "0 or 1", "one-hot", "2"), traced="nan", example="an int64 one-hot entry of 2",
             dense=True),
        Case("class probabilities outside [0, 1]", ("softmax",), {"targets": ROWS_OUTSIDE}, ValueError,
             ("targets", "[0, 1]", "from -0.5 to 1.5"), traced="nan", example="a row (1.5, -0.5, 0, 0, 0)", dense=True),
        Case("softmax probabilities outside [0, 1]", ("softmax",),
             {"logits": SOFTMAX_PROBS_OUTSIDE, "from_logits": False}, ValueError,
             ("logits", "[0, 1]", "-0.1"), traced="nan", example="from_logits=False with an input of -0.1"),
        Case("class axis out of range", ("softmax", "dfl"), {"axis": 2}, ValueError, ("axis=2", "2 dimensions"),
             example="axis=2 for 2-d logits"),
        Case("ignore_index not an int", ("softmax",), {"ignore_index": 0.5}, TypeError, ("ignore_index", "int"),
             example="ignore_index=0.5"),
        # distribution focal loss: a float distance per row
        Case("distances outside [0, bins − 1]", ("dfl",), {"targets": np.array([0.5, 4.5, 1.0, 2.7])}, ValueError,
             ("targets", "[0, 4]", "4.5"), traced="nan", example="a distance of 4.5 with 5 bins"),
        Case("bool distances", ("dfl",), {"targets": np.array([True, False, True, True])}, TypeError,
             ("targets", "floating", "bool"), example="bool distances"),
        # the parameters of one loss
        Case("unknown form", ("sigmoid",), {"form": "logit"}, ValueError, ("form", "'logit'"), example='form="logit"'),
        Case("unknown activation", ("sigmoid",), {"activation": "relu"}, ValueError, ("activation", "'relu'"),
             example='activation="relu"'),
        Case("margin outside [0, 1]", ("sigmoid", "softmax"), {"margin": 1.5}, ValueError, ("margin", "[0, 1]", "1.5"),
             example="margin=1.5"),
        Case("k < 0", ("sigmoid", "softmax"), {"k": -1.0}, ValueError, ("k", "[0", "-1"), example="k=-1.0"),
        Case("beta < 0", ("sigmoid",), {"beta": -1.0}, ValueError, ("beta", "[0", "-1"), example="beta=-1.0",
             only=("quality_focal_loss",)),
        Case("gamma_neg < 0", ("sigmoid",), {"gamma_neg": -1.0}, ValueError, ("gamma_neg", "[0", "-1"),
             example="gamma_neg=-1.0"),
        Case("clip outside [0, 1)", ("sigmoid",), {"clip": 1.0}, ValueError, ("clip", "[0, 1)", "1.0"),
             example="clip=1.0"),
        Case("Tversky weight < 0", ("softmax",), {"a": -0.5}, ValueError, ("a", "[0", "-0.5"), example="a=-0.5"),
        Case("smooth < 0", ("softmax",), {"smooth": -1.0}, ValueError, ("smooth", "[0", "-1"), example="smooth=-1.0"),
    ]


CASES = _cases()


def _other() -> list[tuple[str, str, type[Exception], tuple[str, ...], Callable[[], Any]]]:
    """The other entry points: (entry point, bad input, error, message fragments, the call)."""

    def torch_criterion(**params: Any) -> Callable[[], Any]:
        def call() -> Any:
            import focal.torch

            return focal.torch.SigmoidFocalLoss(**params)(*_torch(X, BINARY * 2.0))
        return call

    def keras_loss(cls: str, **params: Any) -> Callable[[], Any]:
        def call() -> Any:
            import focal.keras

            return getattr(focal.keras, cls)(**params)(np.eye(5)[LABELS], X, sample_weight=np.ones(4))
        return call

    return [
        ("focal.value_and_grad", "a function that is not a focal loss", TypeError, ("value_and_grad", "focal loss"),
         lambda: focal.value_and_grad(np.sum)),
        ("focal.class_balanced_alpha", "a count of 0", ValueError, ("counts", ">= 1"),
         lambda: focal.class_balanced_alpha([10, 0])),
        ("focal.class_balanced_alpha", "beta=1.0", ValueError, ("beta", "[0, 1)", "1.0"),
         lambda: focal.class_balanced_alpha([10, 3], beta=1.0)),
        ("focal.boosting.sigmoid_focal_grad_hess", "a target of 2", ValueError, ("targets", "[0, 1]", "2"),
         lambda: _boosting().sigmoid_focal_grad_hess(X, BINARY * 2.0)),
        ("focal.boosting.xgboost_objective / lightgbm_objective", "gamma=-1.0", ValueError, ("gamma", "-1"),
         lambda: _boosting().xgboost_objective(gamma=-1.0)),
        ("focal.boosting.xgboost_objective / lightgbm_objective", "margins of shape (4, 5) (multi-class)",
         ValueError, ("binary", "(4, 5)"), lambda: _boosting().lightgbm_objective()(BINARY, X)),
        ("focal.torch criteria", "an unknown parameter", TypeError, ("unexpected parameters", "['gama']"),
         lambda: _torch_module().SigmoidFocalLoss(gama=2.0)),
        ("focal.torch criteria", "a bad value (a target of 2, gamma=-1): at the first call", ValueError,
         ("targets", "[0, 1]"), torch_criterion()),
        ("focal.keras losses", "an unknown parameter", TypeError, ("unexpected parameters", "['gama']"),
         lambda: _keras_module().SoftmaxFocalLoss(gama=2.0)),
        ("focal.keras losses", "sample_weight for FocalTverskyLoss (one number per batch)", ValueError,
         ("FocalTverskyLoss", "sample_weight"), keras_loss("FocalTverskyLoss")),
    ]


def _boosting() -> Any:
    import focal.boosting

    return focal.boosting


def _torch_module() -> Any:
    import focal.torch

    return focal.torch


def _keras_module() -> Any:
    import focal.keras

    return focal.keras


def _torch(*arrays: np.ndarray) -> list[Any]:
    import torch

    return [torch.as_tensor(a) for a in arrays]


OTHER = _other()


FAMILY_LABELS = {"sigmoid": "every sigmoid loss", "softmax": "every softmax loss", "dfl": "`distribution_focal_loss`"}


def _entry_name(fn: Callable[..., Any], fixed: dict[str, Any]) -> str:
    return f"`{fn.__name__}`" + (" (softmax)" if fixed else "")


def _who(case: Case) -> str:
    """The entry points of a case, a whole family by its name."""
    entries = case.entries()
    parts = []
    for family in case.families:
        members = FAMILIES[family]
        taken = [m for m in members if m in entries]
        if taken == members:
            parts.append(FAMILY_LABELS[family])
        else:
            parts.extend(_entry_name(fn, fixed) for fn, fixed in taken)
    return ", ".join(parts)


def table() -> str:
    """The markdown table of docs/bad-input.md."""
    lines = ["| bad input | example | entry points | eagerly, on the CPU | traced (`jax.jit`, `tf.function`, "
             "`torch.compile`), or on an accelerator |",
             "|---|---|---|---|---|"]
    for case in CASES:
        traced = "the same error" if case.traced == "error" else (
            "NaN loss" if case.affects == "all" else
            "NaN wherever it is used (every element; varifocal's negatives)" if case.affects == "used" else
            f"NaN where {case.affects}'s value is used" if case.affects.startswith("class ") else
            "NaN in the affected elements")
        lines.append(f"| {case.what} | {case.example} | {_who(case)} | `{case.error.__name__}` naming "
                     f"`{case.says[0]}` | {traced} |")
    families = "; ".join(f"{FAMILY_LABELS[f]}: {', '.join(_entry_name(fn, fixed) for fn, fixed in members)}"
                         for f, members in FAMILIES.items() if f != "dfl")
    lines += ["", f"Families: {families}.", "", "| entry point | bad input | eagerly |", "|---|---|---|"]
    lines += [f"| `{entry}` | {what} | `{error.__name__}` naming `{says[0]}` |"
              for entry, what, error, says, _ in OTHER]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
