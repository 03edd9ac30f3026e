"""``python -m focal demo``: cross entropy against focal loss on an imbalanced data set, on every backend.

The data are scikit-learn's handwritten digits (shipped inside scikit-learn, no download) made a
rare-class problem: one digit is the positive class, kept at 1 positive per ``ratio`` negatives.
A logistic-regression model (64 pixels + bias) is trained by full-batch Adam, with the gradient
from each framework's own autodiff, so every backend trains the same model to the same numbers.
The table gives the minority class's average precision and recall on the held-out half.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import focal

from .frameworks import Framework, installed, to_numpy, value_and_grad

__all__ = ["Result", "imbalanced_digits", "minority_metrics", "run"]

# (name, gamma, alpha): alpha=None is plain (unweighted) cross entropy at gamma 0
LOSSES: tuple[tuple[str, float, float | None], ...] = (
    ("cross entropy", 0.0, None), ("focal", 2.0, 0.25), ("focal", 2.0, None))


def imbalanced_digits(*, minority: int = 9, ratio: int = 50,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: digit ``minority`` against the nine others, 1 in ``ratio``.

    Pixels are scaled to [0, 1] (float64, shape ``(n, 64)``); labels are 0/1 floats. The positives
    are a random subset of that digit's images; the split is half and half, stratified.
    Needs scikit-learn (``pip install "focal-losses[demo]"``).
    """
    from sklearn.datasets import load_digits

    x, digit = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    negatives = np.flatnonzero(digit != minority)
    positives = rng.choice(np.flatnonzero(digit == minority), size=max(2, len(negatives) // ratio), replace=False)
    train, test = [], []
    for group in (positives, negatives):
        group = rng.permutation(group)
        train.append(group[: len(group) // 2])
        test.append(group[len(group) // 2:])
    tr, te = np.concatenate(train), np.concatenate(test)
    y = (digit == minority).astype(np.float64)
    return x[tr] / 16.0, y[tr], x[te] / 16.0, y[te]


def minority_metrics(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """``(average precision, recall at probability 0.5)`` of the positive class; scores are logits."""
    from sklearn.metrics import average_precision_score

    positive = y_true == 1.0
    recall = float(np.mean(scores[positive] > 0.0)) if positive.any() else float("nan")
    return float(average_precision_score(y_true, scores)), recall


@dataclass
class Result:
    backend: str
    loss: str
    gamma: float
    alpha: float | None
    average_precision: float
    recall: float
    seconds: float
    test_logits: np.ndarray
    test_labels: np.ndarray


def _train(fw: Framework, x: np.ndarray, y: np.ndarray, gamma: float, alpha: float | None, steps: int,
           lr: float = 0.05) -> np.ndarray:
    """Full-batch Adam on ``mean(sigmoid_focal_loss(x @ w, y))``; returns the weights as NumPy."""
    design = fw.asarray(np.concatenate([x, np.ones((x.shape[0], 1))], axis=1))
    targets = fw.asarray(y[:, None])
    w = fw.asarray(np.zeros((design.shape[1], 1)))
    m, v = w * 0.0, w * 0.0
    b1, b2 = 0.9, 0.999

    params: dict[str, Any] = {"gamma": gamma, "alpha": alpha}

    def loss(weights: Any) -> Any:
        return focal.sigmoid_focal_loss(design @ weights, targets, **params)

    step_grad = None if fw.value_and_grad is None else fw.value_and_grad(loss)
    for step in range(1, steps + 1):
        if step_grad is None:  # chain rule by hand through the linear model
            _, dlogits = value_and_grad(fw, focal.sigmoid_focal_loss, design @ w, targets, **params)
            grad = design.T @ dlogits
        else:
            _, grad = step_grad(w)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        w = w - lr * (m / (1 - b1**step)) / ((v / (1 - b2**step)) ** 0.5 + 1e-8)
    return to_numpy(w)[:, 0]


def _progress(done: int, total: int, what: str) -> None:
    width = 30
    filled = width * done // total
    end = "\n" if done == total or not sys.stderr.isatty() else ""
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what:<28}{end}")
    sys.stderr.flush()


def run(backends: Sequence[str] | None = None, *, steps: int = 500, minority: int = 9, ratio: int = 50,
        progress: Callable[[int, int, str], None] | None = _progress) -> list[Result]:
    """Train with each loss of ``LOSSES`` on each installed backend; the results, in table order."""
    frameworks = installed(tuple(backends)) if backends else installed()
    x_train, y_train, x_test, y_test = imbalanced_digits(minority=minority, ratio=ratio)
    total = len(frameworks) * len(LOSSES)
    results: list[Result] = []
    for fw in frameworks:
        for name, gamma, alpha in LOSSES:
            if progress:
                progress(len(results), total, f"{fw.name} {name}")
            start = time.perf_counter()
            w = _train(fw, x_train, y_train, gamma, alpha, steps)
            seconds = time.perf_counter() - start
            logits = x_test @ w[:-1] + w[-1]
            ap, recall = minority_metrics(y_test, logits)
            results.append(Result(fw.name, name, gamma, alpha, ap, recall, seconds, logits, y_test))
    if progress:
        progress(total, total, "done")
    return results


def table(results: Sequence[Result]) -> str:
    lines = [f"{'backend':<18}{'loss':<15}{'gamma':>6}{'alpha':>6}{'minority AP':>13}{'recall':>8}{'seconds':>9}"]
    for r in results:
        alpha = "-" if r.alpha is None else f"{r.alpha:g}"
        lines.append(f"{r.backend:<18}{r.loss:<15}{r.gamma:>6g}{alpha:>6}{r.average_precision:>13.4f}{r.recall:>8.3f}"
                     f"{r.seconds:>9.2f}")
    return "\n".join(lines)


def figure(results: Sequence[Result]) -> Any:
    """Precision-recall curves of each loss (from the first backend: the others give the same curves), as a
    matplotlib figure whose title, labels and legend lie inside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    fig, ax = plt.subplots(figsize=(6, 4.5))
    first = results[0].backend
    for r in results:
        if r.backend == first:
            precision, recall, _ = precision_recall_curve(r.test_labels, r.test_logits)
            label = f"{r.loss} (γ={r.gamma:g}, α={r.alpha}): AP {r.average_precision:.3f}"
            ax.step(recall, precision, where="post", label=label)
    ax.set_xlabel("recall (minority class)")
    ax.set_ylabel("precision")
    # two short lines: one line of this at 6 inches ran past both edges of the figure
    ax.set_title(f"Imbalanced digits, held-out half\n(the same curves on every backend; {first} shown)",
                 fontsize=11)
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    return fig


def plot(results: Sequence[Result], path: str) -> None:
    """Write :func:`figure` to ``path`` (PNG)."""
    import matplotlib.pyplot as plt

    fig = figure(results)
    fig.savefig(path, dpi=120)
    plt.close(fig)
