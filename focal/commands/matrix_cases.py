"""The cases of ``python -m focal bench --matrix``: every public loss with its main options, its data, its floor
(the framework's own cross entropy of the same shape and targets) and its peer (a published implementation, or the
formula written naively in a few array-API lines and differentiated by the framework).

Data are NumPy arrays made once per case (seeded), converted to each framework; softmax data are channels-first for
PyTorch (class axis 1, as its convolutions give them) and channels-last elsewhere (class axis -1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# rows of each data kind at --scale 1: the sizes of issue 21's measurements (5.2 M logits; DFL 1.1 M)
ROWS = {"binary": 65536, "dense": 2 * 256 * 512, "bins": 65536}
CLASSES = {"binary": 80, "dense": 19, "bins": 17}
IGNORE_BINARY, IGNORE_LABEL = -1, 255
SMOOTHING = 0.1  # the label-smoothing cases' (and their floors' and peers')


@dataclass(frozen=True)
class Case:
    """One row of the matrix: ``focal.<loss>(logits, targets, **kwargs)`` summed, on ``data``.

    ``kwargs`` values that name an extra (``"@alpha"``, ``"@gamma"``, ``"@where"``) are arrays made with the data and
    converted to the framework once; ``axis=True`` passes the framework's class axis. ``floor`` names the
    framework's cross entropy to compare with (``MatrixFloors``), ``peer`` a peer (``None``: none exists).
    """

    name: str
    loss: str
    data: str
    floor: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    peer: str | None = None
    axis: bool = False

    def call_kwargs(self, axis: int, extras: dict[str, Any]) -> dict[str, Any]:
        kwargs = {k: extras[v[1:]] if isinstance(v, str) and v.startswith("@") else v for k, v in self.kwargs}
        if self.axis:
            kwargs["axis"] = axis
        return {**kwargs, "reduction": "sum"}


def _case(name: str, loss: str, data: str, floor: str, peer: str | None = None, axis: bool = False,
          **kwargs: Any) -> Case:
    return Case(name, loss, data, floor, tuple(kwargs.items()), peer, axis)


CASES: tuple[Case, ...] = (
    # sigmoid (detection heads, multi-label): 65536 x 80, 1% positives
    _case("sigmoid_focal_loss", "sigmoid_focal_loss", "binary", "bce", "sigmoid-focal"),
    _case("sigmoid γ=0.5", "sigmoid_focal_loss", "binary", "bce", "sigmoid-focal-0.5", gamma=0.5),
    _case("sigmoid per-class γ", "sigmoid_focal_loss", "binary", "bce", gamma="@gamma"),
    _case("sigmoid form=split", "sigmoid_focal_loss", "binary", "bce", "sigmoid-focal", form="split"),
    _case("sigmoid label_smoothing=0.1", "sigmoid_focal_loss", "binary", "bce", label_smoothing=SMOOTHING),
    _case("sigmoid ignore_index=-1", "sigmoid_focal_loss", "binary-ignore", "bce", ignore_index=IGNORE_BINARY),
    _case("sigmoid from_logits=False", "sigmoid_focal_loss", "binary-probs", "bce-probs", from_logits=False),
    _case("sigmoid pos_weight", "sigmoid_focal_loss", "binary", "bce", pos_weight=3.0),
    _case("sigmoid detach_modulator", "sigmoid_focal_loss", "binary", "bce", detach_modulator=True),
    _case("quality_focal_loss", "quality_focal_loss", "quality", "bce", "qfl"),
    _case("varifocal_loss", "varifocal_loss", "quality", "bce", "vfl"),
    _case("varifocal detach_modulator", "varifocal_loss", "quality", "bce", detach_modulator=True),
    _case("asymmetric_loss", "asymmetric_loss", "binary", "bce", "asl"),
    _case("asymmetric detach_modulator", "asymmetric_loss", "binary", "bce", detach_modulator=True),
    _case("poly1_focal_loss", "poly1_focal_loss", "binary", "bce"),
    _case("focal_loss_star", "focal_loss_star", "binary", "bce"),
    _case("hard_truncated_loss", "hard_truncated_loss", "binary", "bce"),
    _case("soft_truncated_loss", "soft_truncated_loss", "binary", "bce"),
    _case("focal_loss_with_negatives sigmoid", "focal_loss_with_negatives", "binary", "bce", activation="sigmoid"),
    # softmax (segmentation): 2 x 19 x 256 x 512, integer labels
    _case("softmax_focal_loss", "softmax_focal_loss", "labels", "ce", "softmax-focal-labels", axis=True),
    _case("softmax per-class α", "softmax_focal_loss", "labels", "ce-weight", axis=True, alpha="@alpha"),
    _case("softmax per-class γ", "softmax_focal_loss", "labels", "ce", axis=True, gamma="@gamma"),
    _case("softmax ignore_index=255", "softmax_focal_loss", "labels-ignore", "ce-ignore", axis=True,
          ignore_index=IGNORE_LABEL),
    _case("softmax label_smoothing=0.1", "softmax_focal_loss", "labels", "ce-smooth", "softmax-focal-smooth",
          axis=True, label_smoothing=SMOOTHING),
    _case("softmax probability targets", "softmax_focal_loss", "probs", "ce-probs", "softmax-focal-dense",
          axis=True),
    _case("softmax where (class mask)", "softmax_focal_loss", "labels", "ce", axis=True, where="@where"),
    _case("softmax normalized", "softmax_focal_loss", "labels", "ce", axis=True, normalized=True),
    _case("softmax detach_modulator", "softmax_focal_loss", "labels", "ce", axis=True, detach_modulator=True),
    _case("softmax from_logits=False", "softmax_focal_loss", "labels-probs", "nll", axis=True, from_logits=False),
    _case("poly1_cross_entropy", "poly1_cross_entropy", "labels", "ce", "poly1-ce", axis=True),
    _case("softmax_asymmetric_loss", "softmax_asymmetric_loss", "labels", "ce-smooth", "asl-softmax", axis=True),
    _case("focal_loss_with_negatives", "focal_loss_with_negatives", "labels", "ce", axis=True),
    _case("hard_truncated_loss softmax", "hard_truncated_loss", "labels", "ce", axis=True, activation="softmax"),
    _case("soft_truncated_loss softmax", "soft_truncated_loss", "labels", "ce", axis=True, activation="softmax"),
    _case("focal_tversky_loss", "focal_tversky_loss", "labels", "ce", "tversky", axis=True),
    # DFL (box regression): 65536 x 17 bins, real-valued distances
    _case("distribution_focal_loss", "distribution_focal_loss", "distances", "ce", "dfl"),
)


@dataclass
class Data:
    """A case's inputs (NumPy, float32 logits): ``targets`` as ours take them, ``labels`` (integer) or ``dense``
    (float, the logits' shape) as the floor and the peer take them, ``extras`` the per-case arrays."""

    logits: np.ndarray
    targets: np.ndarray
    labels: np.ndarray | None = None
    dense: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def make(case: Case, scale: float, channels_first: bool, seed: int = 0) -> Data:
    """The case's inputs at ``scale`` (a fraction of the rows); softmax logits NCHW where ``channels_first``."""
    rng = np.random.default_rng(seed)
    kind = {"binary": "binary", "binary-ignore": "binary", "binary-probs": "binary", "quality": "binary",
            "distances": "bins"}.get(case.data, "dense")
    rows, classes = max(2, int(ROWS[kind] * scale)), CLASSES[kind]
    extras = {"gamma": np.linspace(1.0, 3.0, classes, dtype=np.float32),
              "alpha": np.linspace(0.25, 1.0, classes, dtype=np.float32)}
    logits = (rng.standard_normal((rows, classes)) * 2.0).astype(np.float32)
    if kind == "binary":
        positive = rng.random((rows, classes)) < 0.01
        targets = positive.astype(np.float32)
        if case.data == "binary-ignore":
            targets[rng.random((rows, classes)) < 0.05] = IGNORE_BINARY
        elif case.data == "quality":
            targets = (positive * rng.uniform(0.1, 1.0, (rows, classes))).astype(np.float32)
        elif case.data == "binary-probs":
            logits = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        return Data(logits, targets, dense=targets, extras=extras)
    if kind == "bins":
        distances = rng.uniform(0.0, classes - 1.0, rows).astype(np.float32)
        return Data(logits, distances, labels=np.floor(distances).astype(np.int64), extras=extras)
    # dense: a batch of 2 images, 256 x 512 pixels; the last class is no pixel's label (so `where` may leave it out)
    labels = rng.integers(0, classes - 1, rows)
    if case.data == "labels-ignore":
        labels[rng.random(rows) < 0.05] = IGNORE_LABEL
    onehot = np.eye(classes, dtype=np.float32)[np.minimum(labels, classes - 1)] * (labels != IGNORE_LABEL)[:, None]
    # mixup of two images' one-hot targets: probabilities
    lam = rng.uniform(0.0, 1.0, (rows, 1)).astype(np.float32)
    mixed = lam * onehot + (1 - lam) * np.eye(classes, dtype=np.float32)[rng.integers(0, classes - 1, rows)]
    if case.data == "labels-probs":
        logits = _softmax(logits).astype(np.float32)
    extras["where"] = np.arange(classes) != classes - 1
    width = rows // 2 // 256 if rows >= 512 else 1
    shape = (2, 256, width) if rows == 2 * 256 * width else (rows, 1, 1)
    count = math.prod(shape)

    def image(a: np.ndarray) -> np.ndarray:
        a = a[:count].reshape(*shape, *a.shape[1:])
        return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if channels_first and a.ndim == 4 else a

    labels, logits, onehot, mixed = (image(labels), image(logits), image(onehot), image(mixed))
    if channels_first:
        extras["where"] = extras["where"].reshape(1, classes, 1, 1)
    if case.data == "probs":
        return Data(logits, mixed, dense=mixed, extras=extras)
    return Data(logits, labels, labels=labels, dense=onehot, extras=extras)


# --- the naive formulas: a few array-API lines as a user writes them, differentiated by the framework ----------


def _log_softmax(xp: Any, z: Any, axis: int) -> Any:
    m = xp.max(z, axis=axis, keepdims=True)
    return z - m - xp.log(xp.sum(xp.exp(z - m), axis=axis, keepdims=True))


def naive_dense_softmax_focal(xp: Any, z: Any, y: Any, axis: int, gamma: float = 2.0, smoothing: float = 0.0) -> Any:
    """``−Σ y (1 − p)^γ log p`` on dense targets (label-smoothed if asked): the 4-line form of issue 21."""
    if smoothing:
        y = y * (1.0 - smoothing) + smoothing / z.shape[axis]
    log_p = _log_softmax(xp, z, axis)
    return -xp.sum(y * (1.0 - xp.exp(log_p)) ** gamma * log_p)


def naive_quality_focal(xp: Any, x: Any, q: Any, beta: float = 2.0) -> Any:
    """QFL (Li et al. 2020) as mmdet writes it: ``BCE(x, q) |q − σ(x)|^β``."""
    sigma = 1.0 / (1.0 + xp.exp(-x))
    bce = xp.maximum(x, 0.0) - x * q + xp.log1p(xp.exp(-xp.abs(x)))
    return xp.sum(bce * xp.abs(q - sigma) ** beta)


def naive_asymmetric(xp: Any, x: Any, y: Any, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05,
                     eps: float = 1e-8) -> Any:
    """ASL as timm's ``AsymmetricLossMultiLabel`` writes it (re-typed in array-API calls, for JAX and TF)."""
    xs_pos = 1.0 / (1.0 + xp.exp(-x))
    xs_neg = xp.minimum(1.0 - xs_pos + clip, 1.0)
    loss = y * xp.log(xp.maximum(xs_pos, eps)) + (1.0 - y) * xp.log(xp.maximum(xs_neg, eps))
    pt = xs_pos * y + xs_neg * (1.0 - y)
    return -xp.sum(loss * (1.0 - pt) ** (gamma_pos * y + gamma_neg * (1.0 - y)))


def naive_dfl(xp: Any, z: Any, t: Any) -> Any:
    """DFL as ultralytics' ``DFLoss`` writes it: the cross entropy of the two bins around ``t``, weighted."""
    left = xp.astype(xp.floor(t), xp.int32)
    w_left = xp.astype(left, z.dtype) + 1.0 - t
    log_p = _log_softmax(xp, z, -1)
    at_left = xp.take_along_axis(log_p, xp.expand_dims(left, axis=-1), axis=-1)[:, 0]
    right = xp.minimum(left + 1, z.shape[-1] - 1)
    at_right = xp.take_along_axis(log_p, xp.expand_dims(right, axis=-1), axis=-1)[:, 0]
    return -xp.sum(at_left * w_left + at_right * (1.0 - w_left))


def naive_tversky(xp: Any, z: Any, y: Any, axis: int, a: float = 0.7, b: float = 0.3, gamma: float = 0.75,
                  smooth: float = 1.0) -> Any:
    """Focal Tversky (Abraham & Khan 2019) on one-hot targets, summed over classes, as its authors' code writes it."""
    p = xp.exp(_log_softmax(xp, z, axis))
    dims = tuple(i for i in range(z.ndim) if i != axis % z.ndim)
    tp = xp.sum(p * y, axis=dims)
    fn = xp.sum((1.0 - p) * y, axis=dims)
    fp = xp.sum(p * (1.0 - y), axis=dims)
    ti = (tp + smooth) / (tp + a * fn + b * fp + smooth)
    return xp.sum((1.0 - ti) ** gamma)
