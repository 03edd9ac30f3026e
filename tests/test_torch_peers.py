"""Parity with the PyTorch peers that install beside torch 2.14.1: torchvision 0.29, segmentation_models_pytorch
0.6.0 and ultralytics 8.4 (YOLO). Values and gradients, through the mapping docs/migration.md states.

Our side runs through ``focal``'s PyTorch autograd wiring (torch tensors in, ``.backward()``), the peer's through
torch's autodiff of its own formula. Where a peer's semantics differ from ours, a test shows it with numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import import_or_skip

import focal

torch = import_or_skip("torch")
RNG = np.random.default_rng(29)
VALUE_RTOL, GRAD_RTOL = 1e-12, 1e-10  # float64 on both sides


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a))


def value_and_grad(fn, logits: np.ndarray, *args) -> tuple[np.ndarray, np.ndarray]:
    """``fn(x, *args)`` summed, and its gradient w.r.t. the logits, by torch's autograd."""
    x = _tensor(logits).requires_grad_(True)
    out = fn(x, *args)
    out.sum().backward()
    return out.detach().numpy(), x.grad.numpy()


def assert_same(ours: tuple[np.ndarray, np.ndarray], theirs: tuple[np.ndarray, np.ndarray],
                rtol: tuple[float, float] = (VALUE_RTOL, GRAD_RTOL), floor: float = 1e-3) -> None:
    """Elementwise within ``rtol``, and ``floor · rtol`` of the array's largest entry (a cancellation's rounding)."""
    for what, a, b, tol in zip(("value", "gradient"), ours, theirs, rtol):
        assert np.all(np.isfinite(b)), f"the peer's {what} is not finite"
        scale = float(np.max(np.abs(b)))
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale * floor + 1e-300, err_msg=what)


# --- torchvision.ops.sigmoid_focal_loss -------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (-1.0, 2.0), (0.75, 0.0), (0.5, 1.5), (0.25, 0.5)])
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
def test_torchvision_sigmoid_focal_loss(alpha, gamma, reduction, soft):
    tv_ops = import_or_skip("torchvision.ops")
    x = RNG.normal(size=(16, 7)) * 3
    t = RNG.random((16, 7)) if soft else (RNG.random((16, 7)) < 0.2).astype(np.float64)
    theirs = value_and_grad(
        lambda v, y: tv_ops.sigmoid_focal_loss(v, y, alpha=alpha, gamma=gamma, reduction=reduction), x, _tensor(t))
    ours = value_and_grad(lambda v, y: focal.sigmoid_focal_loss(
        v, y, alpha=None if alpha < 0 else alpha, gamma=gamma, reduction=reduction), x, _tensor(t))
    assert_same(ours, theirs)


def test_torchvision_float32_and_its_nan_gradient():
    """float32 within float32's rounding; at saturated logits and γ = 0.5 torchvision's gradient is NaN (its
    ``(1 − p_t) ** γ`` at p_t = 1), ours the true, finite one."""
    tv_ops = import_or_skip("torchvision.ops")
    x = (RNG.normal(size=(64, 80)) * 4).astype(np.float32)
    t = (RNG.random((64, 80)) < 0.05).astype(np.float32)
    theirs = value_and_grad(lambda v, y: tv_ops.sigmoid_focal_loss(v, y, reduction="sum"), x, _tensor(t))
    ours = value_and_grad(lambda v, y: focal.sigmoid_focal_loss(v, y, reduction="sum"), x, _tensor(t))
    assert_same(ours, theirs, rtol=(2e-5, 2e-5))

    x = np.array([3.0, 20.0, 40.0, 60.0])  # float64: p rounds to 1 from x ≈ 37 on
    y = _tensor(np.ones(4))
    _, theirs_grad = value_and_grad(lambda v, y: tv_ops.sigmoid_focal_loss(v, y, alpha=-1, gamma=0.5), x, y)
    _, ours_grad = value_and_grad(lambda v, y: focal.sigmoid_focal_loss(v, y, alpha=None, gamma=0.5,
                                                                        reduction="none"), x, y)
    assert np.isnan(theirs_grad[2:]).all() and np.isfinite(theirs_grad[:2]).all()
    # d/dx of σ(−x)^γ softplus(−x): σ(−x)^γ (−γ σ(x) softplus(−x) − σ(−x)), in float64 without cancellation
    q, sp = np.exp(-x) / (1 + np.exp(-x)), np.log1p(np.exp(-x))
    np.testing.assert_allclose(ours_grad, q ** 0.5 * (-0.5 * (1 - q) * sp - q), rtol=1e-12)
    assert ours_grad[0] == pytest.approx(theirs_grad[0], rel=1e-12)
    # at x = 20 torchvision's 1 − p_t cancels (p_t = 1 − 2e-9): 4e-8 off, where ours is within 1e-12
    assert 1e-8 < abs(theirs_grad[1] / ours_grad[1] - 1) < 1e-6


# --- segmentation_models_pytorch.losses.FocalLoss ---------------------------------------------------------------


def _smp_losses():
    return import_or_skip("segmentation_models_pytorch.losses")


@pytest.mark.parametrize(("alpha", "gamma"), [(None, 2.0), (0.25, 2.0), (0.6, 1.0)])
@pytest.mark.parametrize("ignore_index", [None, -1])
def test_smp_binary(alpha, gamma, ignore_index):
    """``"binary"``: the elementwise sigmoid focal loss, averaged over the elements whose target is not
    ``ignore_index``: ours with that ``ignore_index``."""
    smp_losses = _smp_losses()
    x = RNG.normal(size=(2, 1, 6, 6)) * 3
    t = (RNG.random((2, 1, 6, 6)) < 0.3).astype(np.float64)
    if ignore_index is not None:
        t[RNG.random(t.shape) < 0.25] = ignore_index
    theirs = value_and_grad(smp_losses.FocalLoss("binary", alpha=alpha, gamma=gamma, ignore_index=ignore_index),
                            x, _tensor(t))
    ours = value_and_grad(lambda v, y: focal.sigmoid_focal_loss(v, y, alpha=alpha, gamma=gamma,
                                                                ignore_index=ignore_index), x, _tensor(t))
    assert_same(ours, theirs)


@pytest.mark.parametrize("class_weights", [None, [1.0, 0.5, 2.0, 0.25]])
@pytest.mark.parametrize(("alpha", "gamma"), [(None, 2.0), (0.25, 1.5)])
def test_smp_multilabel(alpha, gamma, class_weights):
    """``"multilabel"``: each class's mean, then their mean (or their ``class_weights``-weighted mean). Equal counts
    per class make the plain mean ours; with weights ``w``: ``weight=w`` on the class axis, the sum divided by the
    elements per class times ``sum(w)``."""
    smp_losses = _smp_losses()
    x = RNG.normal(size=(2, 4, 5, 5)) * 3
    t = (RNG.random((2, 4, 5, 5)) < 0.3).astype(np.float64)
    theirs = value_and_grad(smp_losses.FocalLoss("multilabel", alpha=alpha, gamma=gamma, class_weights=class_weights),
                            x, _tensor(t))
    if class_weights is None:
        def ours_fn(v, y):
            return focal.sigmoid_focal_loss(v, y, alpha=alpha, gamma=gamma)
    else:
        w = _tensor(np.asarray(class_weights))[:, None, None]

        def ours_fn(v, y):
            per_class = v[:, 0].numel()
            return focal.sigmoid_focal_loss(v, y, alpha=alpha, gamma=gamma, weight=w, reduction="sum",
                                            normalizer=per_class * w.sum())
    assert_same(value_and_grad(ours_fn, x, _tensor(t)), theirs)


def test_smp_multilabel_ignore_index_raises_in_smp():
    """smp 0.6.0's ``"multilabel"`` mode indexes each class's ``(N, H, W)`` slice with the ``(N, C, H, W)`` mask of
    ``ignore_index``: it raises. Ours: ``sigmoid_focal_loss(..., ignore_index=...)``, the mean over the rest."""
    smp_losses = _smp_losses()
    x = _tensor(RNG.normal(size=(2, 3, 4, 4)))
    t = (RNG.random((2, 3, 4, 4)) < 0.3).astype(np.float64)
    t[0, 0, 0, 0] = -1
    with pytest.raises(IndexError):
        smp_losses.FocalLoss("multilabel", ignore_index=-1)(x, _tensor(t))
    ours = focal.sigmoid_focal_loss(x, _tensor(t), alpha=None, ignore_index=-1, reduction="none")
    assert float(ours[0, 0, 0, 0]) == 0.0
    assert float(focal.sigmoid_focal_loss(x, _tensor(t), alpha=None, ignore_index=-1)) == pytest.approx(
        float(ours.sum()) / (t.size - 1), rel=1e-14)


@pytest.mark.parametrize("class_weights", [None, [0.5, 1.0, 2.0, 1.0, 3.0]])
@pytest.mark.parametrize(("alpha", "gamma"), [(None, 2.0), (0.25, 2.0), (0.5, 0.0)])
@pytest.mark.parametrize("ignore_index", [None, 255])
def test_smp_multiclass(alpha, gamma, ignore_index, class_weights):
    """``"multiclass"`` is not a softmax loss: per class, a one-vs-rest sigmoid focal loss averaged over the pixels
    whose label is not ``ignore_index``, then the mean over the classes (0.6.0; older releases summed them). Ours:
    the sigmoid focal loss of the one-hot labels with the ignored pixels' targets set to ``ignore_index``: its mean
    is over the kept pixels × classes. With ``class_weights`` ``w``: ``weight=w`` on the class axis, the sum divided
    by the kept pixels times ``sum(w)``."""
    smp_losses = _smp_losses()
    classes = 5
    x = RNG.normal(size=(2, classes, 6, 6)) * 3
    labels = RNG.integers(0, classes, size=(2, 6, 6))
    if ignore_index is not None:
        labels[:, :2] = ignore_index
    theirs = value_and_grad(smp_losses.FocalLoss("multiclass", alpha=alpha, gamma=gamma, ignore_index=ignore_index,
                                                 class_weights=class_weights), x, _tensor(labels))

    def ours_fn(v, y):
        onehot = torch.nn.functional.one_hot(y.clamp(max=classes - 1), classes).movedim(-1, 1).to(v.dtype)
        if ignore_index is None:
            targets = onehot
        else:
            targets = torch.where((y == ignore_index)[:, None], float(ignore_index), onehot)
        if class_weights is None:
            return focal.sigmoid_focal_loss(v, targets, alpha=alpha, gamma=gamma, ignore_index=ignore_index)
        w = torch.as_tensor(class_weights, dtype=v.dtype)[:, None, None]
        kept = y.numel() if ignore_index is None else int((y != ignore_index).sum())
        return focal.sigmoid_focal_loss(v, targets, alpha=alpha, gamma=gamma, ignore_index=ignore_index, weight=w,
                                        reduction="sum", normalizer=kept * w.sum())
    ours = value_and_grad(ours_fn, x, _tensor(labels))
    assert_same(ours, theirs)
    if class_weights is None:  # the mean over the classes, not the sum the guide said before 0.2.0
        valid = (labels != ignore_index)[:, None] * 1.0
        summed = focal.sigmoid_focal_loss(x, np.moveaxis(np.eye(classes)[np.minimum(labels, classes - 1)], -1, 1),
                                          alpha=alpha, gamma=gamma, weight=valid, reduction="sum",
                                          normalizer=valid.sum())
        assert float(theirs[0]) == pytest.approx(float(summed) / classes, rel=1e-12)


def test_smp_soft_targets_are_not_the_pt_form():
    """smp computes ``p_t = exp(−BCE)``, which is p_t for 0/1 targets only: with soft targets its modulating factor is
    not ``(1 − p_t)^γ`` (VARIANTS.md §4), and the losses differ; for 0/1 targets they are equal."""
    smp_losses = _smp_losses()
    x = RNG.normal(size=(2, 3, 4, 4)) * 2
    soft = RNG.random((2, 3, 4, 4))
    theirs = float(smp_losses.FocalLoss("multilabel", gamma=2.0)(_tensor(x), _tensor(soft)))
    ours = float(focal.sigmoid_focal_loss(x, soft, alpha=None, gamma=2.0))
    assert abs(theirs - ours) > 0.05 * ours


# --- ultralytics.utils.loss: FocalLoss, VarifocalLoss, DFLoss (YOLO) ----------------------------------------------


def _yolo_losses():
    return import_or_skip("ultralytics.utils.loss")


@pytest.mark.parametrize("shape", [(32, 10), (2, 24, 10)])
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 1.5), (0.75, 2.0), (0.0, 1.5), (0.25, 0.0)])
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
def test_ultralytics_focal_loss(shape, alpha, gamma, soft):
    """``FocalLoss(gamma=1.5, alpha=0.25)(pred, label)``: torchvision's formula (soft labels too), ``alpha <= 0`` for
    no weighting, reduced by ``.mean(1).sum()``: the sum divided by ``pred.shape[1]``."""
    yolo = _yolo_losses()
    x = RNG.normal(size=shape) * 3
    t = RNG.random(shape) if soft else (RNG.random(shape) < 0.1).astype(np.float64)
    theirs = value_and_grad(yolo.FocalLoss(gamma=gamma, alpha=alpha), x, _tensor(t))
    ours = value_and_grad(lambda v, y: focal.sigmoid_focal_loss(
        v, y, alpha=alpha if alpha > 0 else None, gamma=gamma, reduction="sum", normalizer=v.shape[1]), x, _tensor(t))
    assert_same(ours, theirs)


@pytest.mark.parametrize("shape", [(32, 10), (2, 24, 10)])
@pytest.mark.parametrize(("alpha", "gamma"), [(0.75, 2.0), (0.5, 1.0)])
def test_ultralytics_varifocal_loss(shape, alpha, gamma):
    """``VarifocalLoss(gamma=2.0, alpha=0.75)(pred_score, gt_score, label)``: ours on ``gt_score * label``, reduced
    as its FocalLoss; the gradient flows through ``p^γ`` in both. ultralytics computes the BCE in float32."""
    yolo = _yolo_losses()
    x = RNG.normal(size=shape) * 3
    label = (RNG.random(shape) < 0.15).astype(np.float64)
    score = RNG.uniform(0.05, 1.0, size=shape) * label
    theirs = value_and_grad(yolo.VarifocalLoss(gamma=gamma, alpha=alpha), x, _tensor(score), _tensor(label))
    ours = value_and_grad(lambda v, q: focal.varifocal_loss(v, q, alpha=alpha, gamma=gamma, reduction="sum",
                                                            normalizer=v.shape[1]), x, _tensor(score * label))
    assert_same(ours, theirs, rtol=(1e-5, 1e-5), floor=1.0)  # its BCE in float32


def test_ultralytics_varifocal_positive_with_zero_score():
    """A ``label = 1`` element whose ``gt_score`` is 0 gives 0 in ultralytics (its weight is the score) and a
    negative's loss in ours (target 0): ``weight=0`` there makes them equal."""
    yolo = _yolo_losses()
    x = RNG.normal(size=(8, 6)) * 2
    label = np.zeros((8, 6))
    label[np.arange(8), RNG.integers(0, 6, 8)] = 1.0
    score = RNG.uniform(0.2, 1.0, size=(8, 6)) * label
    score[:3] = 0.0  # three positives with IoU 0
    theirs = value_and_grad(yolo.VarifocalLoss(), x, _tensor(score), _tensor(label))
    plain = float(focal.varifocal_loss(x, score, reduction="sum", normalizer=6))
    assert abs(plain - float(theirs[0])) > 1e-3
    weight = _tensor(1.0 - label * (score == 0))
    ours = value_and_grad(lambda v, q: focal.varifocal_loss(v, q, weight=weight, reduction="sum", normalizer=6),
                          x, _tensor(score))
    assert_same(ours, theirs, rtol=(1e-5, 1e-5), floor=1.0)  # its BCE in float32


@pytest.mark.parametrize("reg_max", [16, 8])
def test_ultralytics_dfl(reg_max):
    """``DFLoss(reg_max)(pred_dist, target)``: ``pred_dist`` ``(4n, reg_max)``, ``target`` ``(n, 4)`` clamped (in place)
    to ``[0, reg_max − 1.01]``, the mean over the 4 sides, ``(n, 1)``. Ours takes the clamped distances (it raises on
    a distance outside ``[0, reg_max − 1]`` rather than clamping) and the same mean."""
    yolo = _yolo_losses()
    boxes = 12
    pred = RNG.normal(size=(4 * boxes, reg_max)) * 2
    target = RNG.uniform(-0.5, reg_max - 0.5, size=(boxes, 4))
    target[0] = [0.0, reg_max - 1.0, reg_max - 1.005, 3.0]  # the edges and the clamp
    theirs = value_and_grad(yolo.DFLoss(reg_max), pred, _tensor(target.copy()))

    def ours_fn(v, y):
        y = y.clamp(0, reg_max - 1 - 0.01)
        return focal.distribution_focal_loss(v, y.reshape(-1), reduction="none").view(y.shape).mean(-1, keepdim=True)
    ours = value_and_grad(ours_fn, pred, _tensor(target))
    assert theirs[0].shape == ours[0].shape == (boxes, 1)
    assert_same(ours, theirs)
    with pytest.raises(ValueError, match="targets"):
        focal.distribution_focal_loss(pred, target.reshape(-1))  # unclamped: some are outside [0, reg_max - 1]


def test_smp_multiclass_sum_and_probabilities():
    """``reduction="sum"``: each class's sum, then the mean over the classes. ``from_logits=False`` in
    ``"multiclass"`` mode takes ``log(p)`` as the logits of its sigmoid terms: its probability is ``p / (1 + p)``."""
    smp_losses = _smp_losses()
    x = RNG.normal(size=(2, 4, 5, 5)) * 2
    labels = RNG.integers(0, 4, size=(2, 5, 5))
    labels[0, 0] = 255
    onehot = np.moveaxis(np.eye(4)[np.minimum(labels, 3)], -1, 1)
    targets = np.where((labels == 255)[:, None], 255.0, onehot)
    theirs = value_and_grad(smp_losses.FocalLoss("multiclass", ignore_index=255, reduction="sum"), x, _tensor(labels))
    ours = value_and_grad(lambda v, y: focal.sigmoid_focal_loss(v, y, alpha=None, ignore_index=255, reduction="sum",
                                                                normalizer=4), x, _tensor(targets))
    assert_same(ours, theirs)

    probs = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    theirs = float(smp_losses.FocalLoss("multiclass", from_logits=False)(_tensor(probs), _tensor(labels)))
    as_logits = float(focal.sigmoid_focal_loss(np.log(probs), np.where(targets == 255, 0.0, onehot), alpha=None))
    as_probs = float(focal.sigmoid_focal_loss(probs, np.where(targets == 255, 0.0, onehot), alpha=None,
                                              from_logits=False))
    assert theirs == pytest.approx(as_logits, rel=1e-12)
    assert abs(theirs - as_probs) > 0.1 * as_probs
