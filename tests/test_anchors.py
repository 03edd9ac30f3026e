"""Parity with the published implementations ("anchors") that install here without a CUDA build.

Each test maps the anchor's parameters onto ours (the mapping is the documentation: see the
docstrings) and asserts the same numbers on the same inputs; where an anchor's semantics differ or
are wrong (VARIANTS.md section 4), the test shows the difference with numbers. The PyTorch peers that
need torchvision (torchvision itself, segmentation_models_pytorch, ultralytics) are in test_torch_peers.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close
from helpers import import_or_skip as anchor

import focal

RNG = np.random.default_rng(23)
X = RNG.normal(size=(6, 5)) * 3
HARD = (RNG.random((6, 5)) > 0.6).astype(np.float64)
SOFT = RNG.random((6, 5))
LABELS = RNG.integers(0, 5, size=6)
ONEHOT = np.eye(5)[LABELS]


@pytest.mark.x64
def test_optax_sigmoid_focal_loss():
    optax, jnp = anchor("optax"), anchor("jax.numpy")
    for t in (HARD, SOFT):
        for alpha, gamma in [(None, 2.0), (0.25, 2.0), (0.5, 0.5), (0.9, 0.0)]:
            theirs = optax.sigmoid_focal_loss(jnp.asarray(X), jnp.asarray(t), alpha=alpha, gamma=gamma)
            ours = focal.sigmoid_focal_loss(X, t, alpha=alpha, gamma=gamma, reduction="none")
            np.testing.assert_allclose(np.asarray(theirs), ours, rtol=1e-12, atol=1e-300)


@pytest.mark.x64
def test_optax_gradients_at_saturated_logits():
    """optax's sigmoid_focal_loss now computes log(1 − p_t) in log space as we do (the NaN
    gradients of VARIANTS.md §4 were its older releases): the gradients agree to rounding, at
    |x| = 1e4 and γ < 1 too."""
    jax, optax, jnp = anchor("jax"), anchor("optax"), anchor("jax.numpy")
    x = jnp.array([1e4, -1e4, 40.0, 17.0, 0.0, -3.0])
    for gamma in (0.0, 0.5, 2.0):
        for label in (1.0, 0.0, 0.3):
            y = jnp.full(x.shape, label)
            theirs = jax.grad(lambda v: optax.sigmoid_focal_loss(v, y, gamma=gamma).sum())(x)
            ours = jax.grad(lambda v: focal.sigmoid_focal_loss(v, y, gamma=gamma, alpha=None, reduction="sum"))(x)
            assert np.isfinite(np.asarray(ours)).all()
            np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-9, atol=1e-300)


@pytest.mark.x64
def test_optax_training_step_with_per_example_losses():
    """``reduction="none"`` is optax's per-example convention: one SGD step from our loss moves the
    parameters exactly as one from optax's own focal loss."""
    jax, optax, jnp = anchor("jax"), anchor("optax"), anchor("jax.numpy")
    features, targets = jnp.asarray(X), jnp.asarray(HARD)
    params = {"w": jnp.asarray(RNG.normal(size=(5, 5))), "b": jnp.zeros(5)}

    def step(per_example):
        def loss(p):
            return jnp.mean(per_example(features @ p["w"] + p["b"], targets))

        opt = optax.sgd(0.5)
        updates, _ = opt.update(jax.grad(loss)(params), opt.init(params))
        return optax.apply_updates(params, updates)

    ours = jax.jit(lambda: step(lambda x, y: focal.sigmoid_focal_loss(x, y, gamma=2.0, reduction="none")))()
    theirs = jax.jit(lambda: step(lambda x, y: optax.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0)))()
    for name in params:
        assert float(jnp.max(jnp.abs(ours[name] - params[name]))) > 1e-3
        np.testing.assert_allclose(np.asarray(ours[name]), np.asarray(theirs[name]), rtol=1e-12, atol=1e-15)


@pytest.mark.x64
def test_optax_poly_loss_cross_entropy():
    optax, jnp = anchor("optax"), anchor("jax.numpy")
    soft = SOFT / SOFT.sum(-1, keepdims=True)
    for t in (ONEHOT, soft):
        for epsilon in (2.0, 1.0, -1.0):
            theirs = optax.losses.poly_loss_cross_entropy(jnp.asarray(X), jnp.asarray(t), epsilon=epsilon)
            ours = focal.poly1_cross_entropy(X, t, epsilon=epsilon, reduction="none")
            np.testing.assert_allclose(np.asarray(theirs), ours, rtol=1e-12)


def test_keras_binary_focal_crossentropy():
    """Keras averages over the last axis: ours with reduction="none", then the mean over it."""
    keras = anchor("keras")
    x32, t32 = X.astype(np.float32), HARD.astype(np.float32)
    for balance, alpha in [(True, 0.25), (False, 0.25)]:
        loss = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=balance, alpha=alpha, gamma=2.0,
                                                    from_logits=True, reduction=None)
        theirs = np.asarray(keras.ops.convert_to_numpy(loss(t32, x32)))
        ours = focal.sigmoid_focal_loss(x32, t32, alpha=alpha if balance else None, reduction="none").mean(-1)
        np.testing.assert_allclose(theirs, ours, rtol=2e-5)


def test_keras_categorical_focal_crossentropy():
    """Keras' scalar alpha scales every class, as ours does."""
    keras = anchor("keras")
    x32, t32 = X.astype(np.float32), ONEHOT.astype(np.float32)
    loss = keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0, from_logits=True, reduction=None)
    theirs = np.asarray(keras.ops.convert_to_numpy(loss(t32, x32)))
    ours = focal.softmax_focal_loss(x32, t32, alpha=0.25, gamma=2.0, reduction="none")
    np.testing.assert_allclose(theirs, ours, rtol=2e-5)
    probs = np.exp(x32) / np.exp(x32).sum(-1, keepdims=True)
    loss = keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0, reduction=None)
    ours = focal.softmax_focal_loss(probs, t32, alpha=0.25, gamma=2.0, reduction="none", from_logits=False)
    np.testing.assert_allclose(np.asarray(keras.ops.convert_to_numpy(loss(t32, probs))), ours, rtol=2e-5)


def _torch():
    return anchor("torch")


def test_kornia_focal_loss():
    """kornia: scalar α means [1 − α, α, …]; "none" keeps the class axis; "mean" also divides by C."""
    kornia, torch = anchor("kornia"), _torch()
    z = RNG.normal(size=(4, 5, 3)) * 2
    t = RNG.integers(0, 5, size=(4, 3))
    zt, tt = torch.as_tensor(z), torch.as_tensor(t)
    ours = focal.softmax_focal_loss(z, t, alpha=[0.75, 0.25, 0.25, 0.25, 0.25], gamma=2.0, axis=1, reduction="none")
    theirs = kornia.losses.focal_loss(zt, tt, alpha=0.25, gamma=2.0, reduction="none")
    np.testing.assert_allclose(theirs.sum(1).numpy(), ours, rtol=1e-12)
    theirs_mean = float(kornia.losses.focal_loss(zt, tt, alpha=0.25, gamma=2.0, reduction="mean"))
    assert theirs_mean == pytest.approx(ours.mean() / 5, rel=1e-12)
    uniform = focal.softmax_focal_loss(z, t, alpha=0.25, gamma=2.0, axis=1, reduction="none")
    assert np.max(np.abs(uniform - ours)) > 1e-2  # the same scalar means something else in each


def test_kornia_binary_focal_loss_is_our_split_form():
    kornia, torch = anchor("kornia"), _torch()
    for t in (HARD, SOFT):
        theirs = kornia.losses.binary_focal_loss_with_logits(torch.as_tensor(X), torch.as_tensor(t), alpha=0.25,
                                                             gamma=2.0, reduction="none")
        ours = focal.sigmoid_focal_loss(X, t, alpha=0.25, gamma=2.0, form="split", reduction="none")
        np.testing.assert_allclose(theirs.numpy(), ours, rtol=1e-10)
    pt = focal.sigmoid_focal_loss(X, SOFT, form="pt", reduction="none")
    assert np.max(np.abs(pt - ours)) > 1e-2  # soft targets: kornia's form is not the "pt" form


def test_kornia_binary_ignore_index_and_pos_weight():
    """kornia's ``ignore_index`` and ``pos_weight`` (one per class along dim 1): the same elementwise losses and
    gradients; its "mean" still counts the ignored elements, ours leaves them out (``normalizer=numel`` is kornia's)."""
    kornia, torch = anchor("kornia"), _torch()
    z = RNG.normal(size=(3, 4, 5)) * 3
    t = (RNG.random((3, 4, 5)) > 0.6).astype(np.float64)
    t[RNG.random(t.shape) < 0.25] = -100.0
    pos_weight = np.array([0.5, 1.0, 2.0, 4.0])
    zt = torch.as_tensor(z).requires_grad_(True)
    theirs = kornia.losses.binary_focal_loss_with_logits(zt, torch.as_tensor(t), alpha=0.25, gamma=2.0,
                                                         reduction="none", pos_weight=torch.as_tensor(pos_weight),
                                                         ignore_index=-100)
    theirs.sum().backward()
    params = {"alpha": 0.25, "gamma": 2.0, "form": "split", "ignore_index": -100, "pos_weight": pos_weight[:, None]}
    ours = focal.sigmoid_focal_loss(z, t, reduction="none", **params)
    _, grad = focal.value_and_grad(focal.sigmoid_focal_loss)(z, t, reduction="sum", **params)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-10, atol=1e-300)
    assert np.all(ours[t == -100] == 0.0)
    kept = int(np.sum(t != -100))
    mean = float(focal.sigmoid_focal_loss(z, t, **params))
    assert mean == pytest.approx(float(theirs.detach().sum()) / kept, rel=1e-12)
    kornia_mean = float(kornia.losses.binary_focal_loss_with_logits(
        torch.as_tensor(z), torch.as_tensor(t), alpha=0.25, gamma=2.0, reduction="mean",
        pos_weight=torch.as_tensor(pos_weight), ignore_index=-100))
    assert kornia_mean == pytest.approx(float(focal.sigmoid_focal_loss(
        z, t, reduction="sum", normalizer=z.size, **params)), rel=1e-12)


def test_torch_bce_with_logits_pos_weight():
    """γ = 0, no α: our "pt" form with ``pos_weight`` is ``torch.nn.BCEWithLogitsLoss(pos_weight=...)``, whose
    ``pos_weight`` broadcasts against the last axis, as ours does; so are their gradients."""
    torch = _torch()
    pos_weight = np.array([0.25, 1.0, 3.0, 2.0, 0.0])
    for t in (HARD, SOFT):
        xt = torch.as_tensor(X).requires_grad_(True)
        theirs = torch.nn.BCEWithLogitsLoss(pos_weight=torch.as_tensor(pos_weight), reduction="none")(
            xt, torch.as_tensor(t))
        theirs.sum().backward()
        ours, grad = focal.value_and_grad(focal.sigmoid_focal_loss)(X, t, gamma=0.0, alpha=None,
                                                                   pos_weight=pos_weight, reduction="none")
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10, atol=1e-300)


@pytest.mark.x64
def test_optax_where():
    """optax's ``where``: masked classes leave the softmax and the loss (values and gradients), per class or
    per row (a row with nothing left is 0), for softmax_cross_entropy and poly_loss_cross_entropy (per class)."""
    jax, optax, jnp = anchor("jax"), anchor("optax"), anchor("jax.numpy")
    z = RNG.normal(size=(6, 5)) * 2
    mask = RNG.random((6, 5)) > 0.35
    mask[2] = False
    targets = np.where(mask, RNG.random((6, 5)), 0.0)
    targets = targets / np.maximum(targets.sum(axis=1, keepdims=True), 1e-300)  # sums to 1 over the kept classes
    rows = np.array([True, False, True, True, False, True])
    for where in (mask, rows):
        cases = [(optax.losses.softmax_cross_entropy, {}, focal.softmax_focal_loss, {"gamma": 0.0})]
        if where is mask:  # optax's poly_loss_cross_entropy takes a per-class mask only
            cases.append((optax.losses.poly_loss_cross_entropy, {"epsilon": 2.0}, focal.poly1_cross_entropy,
                          {"epsilon": 2.0}))
        for theirs_fn, theirs_kw, ours_fn, ours_kw in cases:
            def theirs(v):
                return theirs_fn(v, jnp.asarray(targets), where=jnp.asarray(where), **theirs_kw)

            def ours(v):
                return ours_fn(v, jnp.asarray(targets), where=jnp.asarray(where), reduction="none", **ours_kw)

            v = jnp.asarray(z)
            np.testing.assert_allclose(np.asarray(ours(v)), np.asarray(theirs(v)), rtol=1e-12, atol=1e-300)
            np.testing.assert_allclose(np.asarray(jax.grad(lambda u: ours(u).sum())(v)),
                                       np.asarray(jax.grad(lambda u: theirs(u).sum())(v)), rtol=1e-10, atol=1e-14)
    # integer labels: optax's integer-label cross entropy with where
    labels = np.argmax(np.where(mask, RNG.random((6, 5)), -1.0), axis=1)
    theirs = optax.losses.softmax_cross_entropy_with_integer_labels(jnp.asarray(z), jnp.asarray(labels),
                                                                    where=jnp.asarray(mask))
    ours = focal.softmax_focal_loss(z, labels, gamma=0.0, where=mask, reduction="none")
    np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-12, atol=1e-300)
    with pytest.raises(ValueError, match="class index that where leaves out"):
        focal.softmax_focal_loss(z, np.argmin(mask, axis=1), where=mask)  # each row's first class left out


def test_monai_focal_loss():
    """MONAI keeps the class axis ("none"), divides "mean" by C and makes "sum" a spatial mean."""
    anchor("monai")
    torch = _torch()
    from monai.losses import FocalLoss

    z = RNG.normal(size=(2, 4, 3, 3)) * 2
    t = RNG.integers(0, 4, size=(2, 3, 3))
    zt, tt = torch.as_tensor(z), torch.as_tensor(t)[:, None]
    ours = focal.softmax_focal_loss(z, t, alpha=[0.75, 0.25, 0.25, 0.25], gamma=2.0, axis=1, reduction="none")

    def monai_loss(reduction, **kw):
        return FocalLoss(gamma=2.0, alpha=0.25, to_onehot_y=True, reduction=reduction, **kw)

    theirs = monai_loss("none", use_softmax=True)(zt, tt).sum(1).double().numpy()
    assert_close(theirs, ours, 1e-6, "monai softmax")  # MONAI computes in float32
    assert float(monai_loss("mean", use_softmax=True)(zt, tt)) == pytest.approx(ours.mean() / 4, rel=1e-6)
    assert float(monai_loss("sum", use_softmax=True)(zt, tt)) == pytest.approx(ours.mean((1, 2)).sum(), rel=1e-6)
    binary = (RNG.random((2, 4, 3, 3)) > 0.5).astype(np.float64)
    theirs = FocalLoss(gamma=2.0, alpha=0.25, reduction="none")(zt, torch.as_tensor(binary))
    ours = focal.sigmoid_focal_loss(z, binary, alpha=0.25, gamma=2.0, reduction="none")
    assert_close(theirs.double().numpy(), ours, 1e-6, "monai sigmoid")


def test_fvcore_focal_losses():
    """fvcore's FL* has no β (β = 0) and defaults to γ = 1; its ``alpha=-1`` is our ``None``."""
    torch = _torch()
    fvcore_nn = anchor("fvcore.nn")
    xt, yt = torch.as_tensor(X), torch.as_tensor(HARD)
    for alpha, gamma in [(-1, 1.0), (0.25, 2.0), (-1, 0.5)]:
        theirs = fvcore_nn.sigmoid_focal_loss_star(xt, yt, alpha=alpha, gamma=gamma).double().numpy()
        ours = focal.focal_loss_star(X, HARD, gamma=gamma, beta=0.0, alpha=None if alpha < 0 else alpha,
                                     reduction="none")
        assert_close(theirs, ours, 1e-6, "FL*")  # fvcore casts to float32
        theirs = fvcore_nn.sigmoid_focal_loss(xt, yt, alpha=alpha, gamma=gamma).double().numpy()
        ours = focal.sigmoid_focal_loss(X, HARD, gamma=gamma, alpha=None if alpha < 0 else alpha, reduction="none")
        assert_close(theirs, ours, 1e-6, "FL")
