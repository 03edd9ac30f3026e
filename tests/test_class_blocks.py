"""The fused linear softmax loss over blocks of classes (``focal._class_blocks``) against the unfused loss.

The reference is test_linear's: the unfused loss in float64 NumPy carried to ``d hidden``, ``d weight``, ``d bias``.
23 classes in blocks of 5 leave a ragged last block of 3, 37 rows in chunks of 8 a ragged last chunk of 5; labels
at the block edges, an ``ignore_index`` that is a real class id, a label near certainty (``p_t → 1``, where
``1 − p_t`` must be summed, not subtracted) and one near impossibility.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math

import numpy as np
import pytest
from helpers import CROSS_RTOL, REFERENCE_RTOL, assert_close, import_or_skip
from libs import AUTODIFF_LIBS, LIBS
from test_linear import Case, V, _arrays, _autodiff, _check, _data, _differentiated, _kwargs, _reference

import focal
from focal._linear import MIN_CHUNK, default_chunk_size, default_tiles

BLOCK = 5

CASES = [
    Case("blocks-mean-ignore", kwargs={"ignore_index": -100}, ignored_rows=(*range(8, 16), 30)),
    Case("blocks-sum-alpha-vector", kwargs={"reduction": "sum", "alpha": [0.5 + 0.02 * c for c in range(V)],
                                            "gamma": 1.5}),
    Case("blocks-none", kwargs={"reduction": "none", "gamma": 0.5}, bias=False),
    Case("blocks-detach", kwargs={"detach_modulator": True, "gamma": 2.0}),
    Case("blocks-ignore-a-class", kwargs={"ignore_index": 4, "gamma": 2.0}),
    Case("blocks-sample-weight-normalizer", kwargs={"sample_weight": "rows", "normalizer": 7.5}),
    Case("blocks-threshold", chunk=None, kwargs={"gamma": 3.0, "reduced_threshold": 0.5}),
    Case("blocks-gamma-vector", kwargs={"gamma": [0.5 + 0.1 * c for c in range(V)], "reduction": "sum"}),
]


SIGMOID_CASES = [
    Case("blocks-sig-mean", sigmoid=True, targets="multihot"),
    Case("blocks-sig-detach", sigmoid=True, targets="multihot", kwargs={"detach_modulator": True, "form": "split"}),
    Case("blocks-sig-none-split", sigmoid=True, targets="multihot", kwargs={"reduction": "none", "form": "split"}),
    Case("blocks-sig-ignore-pos-weight", sigmoid=True, targets="multihot",
         kwargs={"ignore_index": -1.0, "pos_weight": [1.0 + 0.1 * c for c in range(V)], "alpha": None}),
    Case("blocks-sig-sample-weight-classes", sigmoid=True, targets="multihot",
         kwargs={"sample_weight": "classes", "label_smoothing": 0.05, "gamma": [1.0 + 0.05 * c for c in range(V)]}),
    Case("blocks-sig-sum-no-bias", sigmoid=True, targets="multihot", kwargs={"reduction": "sum", "gamma": 1.0},
         bias=False),
]


def _blocked_data(case: Case) -> dict[str, np.ndarray]:
    """test_linear's data, with labels on the blocks' first and last classes and two extreme rows."""
    data = _data(case)
    if case.sigmoid:
        return data
    labels = data["targets"]
    keep = labels != -100
    labels[[0, 1, 2, 3]] = np.where(keep[[0, 1, 2, 3]], [0, BLOCK - 1, BLOCK, V - 1], labels[[0, 1, 2, 3]])
    weight = data["weight"].copy()
    hidden = data["hidden"].copy()
    # row 5: its label's logit far above the others (p_t within an ulp of 1); row 6: far below
    hidden[5] = weight[labels[5]] * 40.0 if labels[5] >= 0 else hidden[5]
    hidden[6] = -weight[labels[6]] * 40.0 if labels[6] >= 0 else hidden[6]
    data["hidden"], data["weight"] = hidden, weight
    return data


def _loss(case: Case):
    return focal.linear_sigmoid_focal_loss if case.sigmoid else focal.linear_softmax_focal_loss


@pytest.mark.parametrize("case", CASES + SIGMOID_CASES, ids=lambda c: c.id)
def test_value_and_grad_equal_the_unfused_loss(lib, dtype, case):
    """``focal.value_and_grad`` of the blocked loss on every backend: NumPy, array-api-strict, PyTorch, JAX and
    TensorFlow eagerly (JAX's blocks a compiled loop all the same, TensorFlow's compiled by XLA)."""
    data = _blocked_data(case)
    arrays = _arrays(lib, case, data, dtype)
    args = (arrays["hidden"], arrays["weight"], arrays["targets"], arrays["bias"] if case.bias else None)
    kwargs = {"chunk_size": case.chunk, "class_chunk_size": BLOCK, **_kwargs(case, arrays)}
    expected_value, expected = _reference(case, data, None)
    value, grads = focal.value_and_grad(_loss(case))(*args, **kwargs)
    _check(lib, dtype, value, grads, expected_value, expected, case.id)


@pytest.mark.x64
@pytest.mark.parametrize("case", CASES + SIGMOID_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_framework_gradients_equal_the_unfused_loss(autodiff_lib, precision, case):
    """Through ``torch.autograd``, ``jax.jit(jax.value_and_grad)`` and ``tf.GradientTape`` under ``tf.function``
    (the blocks a ``fori_loop`` / ``tf.while_loop`` inside the row chunks' loop, both with a ragged last one),
    test_linear's data: a reduced loss's gradients, and with ``"none"`` those of ``Σ g · loss`` (the backward runs
    both passes again, the cotangent weighting the rows)."""
    lib = autodiff_lib
    blocked = dataclasses.replace(case, kwargs={**case.kwargs, "class_chunk_size": BLOCK})
    fn, primals, expected_value, expected = _differentiated(blocked, lib, precision)
    if lib.name == "jax":
        value, grads = lib.jax.jit(lib.jax.value_and_grad(fn, argnums=(0, 1, 2)))(*primals)
    elif lib.name == "tensorflow":
        value, grads = lib.xp.function(lambda *arrays: _autodiff(lib, fn, arrays))(*primals)
    else:
        value, grads = _autodiff(lib, fn, primals)
    _check(lib, precision, value, grads if case.bias else grads[:2], expected_value, expected, case.id)


def test_block_size_does_not_change_the_result():
    """float64 NumPy: every block size, one class a block to all at once, gives the unfused loss to 1e-12."""
    case = CASES[0]
    data = _blocked_data(case)
    expected_value, expected = _reference(case, data, None)
    for block in (1, 2, 7, V - 1, V, 1000):
        value, grads = focal.value_and_grad(focal.linear_softmax_focal_loss)(
            data["hidden"], data["weight"], data["targets"], data["bias"], ignore_index=-100, chunk_size=8,
            class_chunk_size=block)
        _check(LIBS[0], "float64", value, grads, expected_value, expected, f"block {block}", rtol=1e-12)


def test_near_certain_label_keeps_its_loss():
    """A label whose probability is within float32's epsilon of 1: the loss ``(1 − p)^γ · −log p`` is tiny but not
    0, and the blocked loss gives the unfused loss's value per row (float32, PyTorch)."""
    torch = import_or_skip("torch")
    h = torch.tensor([[30.0, 0.0], [0.0, 1.0]])
    w = torch.tensor([[1.0, 0.0]] + [[0.0, 0.01 * c] for c in range(1, 12)])
    labels = torch.tensor([0, 3])
    kwargs = {"gamma": 0.0, "reduction": "none"}
    blocked = focal.linear_softmax_focal_loss(h, w, labels, class_chunk_size=5, chunk_size=2, **kwargs)
    unfused = focal.softmax_focal_loss(h @ w.T, labels, **kwargs)
    assert blocked[0] > 0
    assert_close(blocked.numpy(), unfused.numpy(), REFERENCE_RTOL["float32"], "near certain")


def test_gamma_zero_is_torch_cross_entropy():
    """γ = 0 in blocks is ``F.cross_entropy`` of the materialised logits (value and the three gradients), with an
    ``ignore_index`` that is a real class."""
    torch = import_or_skip("torch")
    data = _blocked_data(CASES[0])
    h, w, b = (torch.tensor(data[k], requires_grad=True) for k in ("hidden", "weight", "bias"))
    labels = torch.tensor(data["targets"])
    labels[labels < 0] = 2
    ours = focal.linear_softmax_focal_loss(h, w, labels, b, gamma=0.0, ignore_index=2, chunk_size=8,
                                           class_chunk_size=BLOCK)
    theirs = torch.nn.functional.cross_entropy(h @ w.T + b, labels, ignore_index=2)
    assert_close(ours.detach().numpy(), theirs.detach().numpy(), REFERENCE_RTOL["float64"], "cross entropy")
    for a, e in zip(torch.autograd.grad(ours, (h, w, b)), torch.autograd.grad(theirs, (h, w, b))):
        assert_close(a.numpy(), e.numpy(), REFERENCE_RTOL["float64"], "cross entropy gradient")


@pytest.mark.parametrize("case", [CASES[0], SIGMOID_CASES[0]], ids=lambda c: c.id)
@pytest.mark.parametrize("chunk", [8, 37])
@pytest.mark.parametrize("name", ["torch", "jax"])
def test_bfloat16_accumulates_in_float32(case, chunk, name):
    """bfloat16 hidden states and weight in blocks, PyTorch and JAX (its blocks a ``fori_loop``): within bfloat16's
    rounding of the float64 result. In chunks of 8 rows ``d weight`` accumulates in float32; in one chunk of all 37
    rows each block's rows are written once, in bfloat16, the mean's scale applied before the cast."""
    lib = next((lib for lib in AUTODIFF_LIBS if lib.name == name), None)
    if lib is None:
        pytest.skip(f"{name} is not installed")
    data = _blocked_data(case)
    data["hidden"][[5, 6]] /= 40.0  # the extreme rows' logits would round to bfloat16's spacing of 0.25 there
    expected_value, expected = _reference(case, data, None)
    arrays = _arrays(lib, case, data, "bfloat16")
    kwargs = {"chunk_size": chunk, "class_chunk_size": BLOCK, **_kwargs(case, arrays)}
    value, grads = _autodiff(lib, lambda h, w, b: _loss(case)(h, w, arrays["targets"], b, **kwargs),
                             [arrays["hidden"], arrays["weight"], arrays["bias"]])
    assert all(str(g.dtype).endswith("bfloat16") for g in grads)
    _check(lib, "float32", value, grads, expected_value, expected, "bfloat16", rtol=REFERENCE_RTOL["bfloat16"] * 2)


def test_default_tiles_follow_the_shape():
    """Row chunks while the shape gives them ``MIN_CHUNK`` rows; blocks of classes (a multiple of 128 holding as
    many logits as the row chunk would) once it gives fewer, and only where the blocks serve the call."""
    assert default_tiles(4096, 512, 32000, blocks=True) == (128, 0)
    assert default_tiles(2048, 512, 128000, blocks=True) == (2048, 896)  # 16 rows x 128000 = 2048 x 1000
    assert default_tiles(2048, 512, 128000, blocks=False) == (default_chunk_size(2048, 512, 128000), 0)
    assert default_tiles(20000, 128, 256000, blocks=True) == (8192, 384)  # 16 x 256000 / 8192 = 500 classes
    if importlib.util.find_spec("jax") is not None:  # XLA holds more beside a block: half the classes
        from focal.backends import _jax_namespace
        assert default_tiles(2048, 512, 128000, _jax_namespace, blocks=True) == (2048, 384)
    rows, hidden, classes = 300, 4, 2000
    chunk, block = default_tiles(rows, hidden, classes, blocks=True)
    assert (chunk, block) == (rows, 128) and default_chunk_size(rows, hidden, classes) == min(rows, MIN_CHUNK)


def test_default_blocks_equal_the_unfused_loss():
    """The default tiles of a wide vocabulary (300 rows, 4 features, 2000 classes: blocks of 128) give the unfused
    loss, float64 NumPy, and with label smoothing (no blocks: row chunks) as well."""
    rng = np.random.default_rng(7)
    rows, hidden, classes = 300, 4, 2000
    h, w = rng.normal(size=(rows, hidden)), rng.normal(size=(classes, hidden))
    labels = rng.integers(0, classes, size=rows)
    for kwargs in ({"gamma": 2.0}, {"gamma": 2.0, "label_smoothing": 0.1}):
        value, (dh, dw, _) = focal.value_and_grad(focal.linear_softmax_focal_loss)(h, w, labels, **kwargs)
        z = h @ w.T
        expected, dz = focal.value_and_grad(focal.softmax_focal_loss)(z, labels, **kwargs)
        rtol = CROSS_RTOL["float64"]
        assert_close(np.asarray(value), np.asarray(expected), rtol, "value")
        assert_close(dh, dz @ w, rtol, "d hidden")
        assert_close(dw, dz.T @ h, rtol, "d weight")


def test_errors_name_class_chunk_size():
    rng = np.random.default_rng(0)
    h, w, labels = rng.normal(size=(6, 4)), rng.normal(size=(5, 4)), np.arange(6) % 5
    with pytest.raises(ValueError, match="class_chunk_size must be a positive int"):
        focal.linear_softmax_focal_loss(h, w, labels, class_chunk_size=0)
    with pytest.raises(ValueError, match="class_chunk_size takes no label_smoothing"):
        focal.linear_softmax_focal_loss(h, w, labels, class_chunk_size=2, label_smoothing=0.1)
    with pytest.raises(ValueError, match="class_chunk_size takes integer class indices without where"):
        focal.linear_softmax_focal_loss(h, w, labels, class_chunk_size=2, where=np.ones(5, dtype=bool))


def test_eager_jax_plans_its_rows_a_block_at_a_time(monkeypatch):
    """Eager JAX makes every ``broadcast_to`` (the softmax blocks' stand-in of a chunk's logits, planned for its
    rows' labels and checks): no stand-in larger than a block of logits (one of the chunk's rows x every class was
    the whole chunk's logits); the loss and its gradients those of the unfused loss."""
    jax = import_or_skip("jax")
    jnp = jax.numpy
    made = []
    broadcast = jnp.broadcast_to

    def spy(x, shape):
        made.append(math.prod(shape))
        return broadcast(x, shape)

    rng = np.random.default_rng(5)
    rows, hidden, classes = 512, 16, 20000
    from focal.backends import _jax_namespace

    chunk, block = default_tiles(rows, hidden, classes, _jax_namespace, blocks=True)
    assert chunk == rows and 0 < block < classes
    h = jnp.asarray(rng.normal(size=(rows, hidden)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(classes, hidden)) / 4.0, jnp.float32)
    labels = jnp.asarray(np.where(rng.random(rows) < 0.1, 7, rng.integers(0, classes, size=rows)))
    monkeypatch.setattr(jnp, "broadcast_to", spy)
    value, (dh, dw, _) = focal.value_and_grad(focal.linear_softmax_focal_loss)(h, w, labels, ignore_index=7)
    monkeypatch.undo()
    assert made and max(made) <= rows * block, f"a stand-in of {max(made)} elements; a block has {rows * block}"
    expected, dz = focal.value_and_grad(focal.softmax_focal_loss)(h @ w.T, labels, ignore_index=7)
    assert_close(np.asarray(value), np.asarray(expected), CROSS_RTOL["float32"], "value")
    assert_close(np.asarray(dh), np.asarray(dz @ w), CROSS_RTOL["float32"], "d hidden")
    assert_close(np.asarray(dw), np.asarray(dz.T @ h), CROSS_RTOL["float32"], "d weight")


def test_jax_sigmoid_blocks_check_what_their_loop_cannot_read():
    """JAX's sigmoid blocks run in a ``fori_loop`` whose plans see a traced block: eagerly a target outside [0, 1]
    in a block the loop runs still raises naming targets (each block planned once on a stand-in first); a bad value
    in a per-class list raises under ``jit`` too (checked once on every class); under ``jit`` a bad target makes its
    row's loss NaN, and only its row's."""
    jax = import_or_skip("jax")
    jnp = jax.numpy
    rng = np.random.default_rng(3)
    h = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(V, 4)), jnp.float32)
    y = np.zeros((6, V), np.float32)
    y[2, 7] = 1.5  # in the second block of 5: inside the loop (JAX runs the ragged last block first, outside it)
    with pytest.raises(ValueError, match=r"targets must be .*1\.5"):
        focal.linear_sigmoid_focal_loss(h, w, jnp.asarray(y), class_chunk_size=BLOCK)
    gamma = [1.0] * V
    gamma[7] = -1.0
    with pytest.raises(ValueError, match="gamma"):
        jax.jit(lambda h, w: focal.linear_sigmoid_focal_loss(h, w, jnp.zeros((6, V)), gamma=gamma,
                                                             class_chunk_size=BLOCK))(h, w)
    out = np.asarray(jax.jit(lambda h, w, y: focal.linear_sigmoid_focal_loss(
        h, w, y, class_chunk_size=BLOCK, reduction="none"))(h, w, jnp.asarray(y)))
    assert np.isnan(out[2]) and np.isfinite(np.delete(out, 2)).all(), out


def test_torch_holds_one_block():
    """PyTorch eager, forward and backward with the default tiles of a wide vocabulary: no storage larger than a
    block of logits (or ``d weight`` itself) is ever made (every op's output recorded by a dispatch mode)."""
    torch = import_or_skip("torch")
    from torch.utils._python_dispatch import TorchDispatchMode

    class Sizes(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.sizes: list[int] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):  # what it holds: a broadcast view (the plan's stand-in) holds 1
                    self.sizes.append(t.untyped_storage().nbytes() // t.element_size())
            return out

    rows, hidden, classes = 256, 8, 4000
    chunk, block = default_tiles(rows, hidden, classes, blocks=True)
    assert block and chunk == rows
    h = torch.randn(rows, hidden, requires_grad=True)
    w = torch.randn(classes, hidden, requires_grad=True)
    labels = torch.randint(0, classes, (rows,))
    with Sizes() as sizes:
        focal.linear_softmax_focal_loss(h, w, labels).backward()
    others = [s for s in sizes.sizes if s != classes * hidden]  # d weight: the output
    assert max(others) <= rows * block, f"a tensor of {max(others)} elements; a block has {rows * block}"


@pytest.mark.parametrize("kwargs", [{"gamma": 2.0}, {"reduction": "sum", "pos_weight": 2.0},
                                    {"reduction": "none", "alpha": None}], ids=["mean", "sum", "none"])
def test_torch_sigmoid_blocks_in_slices_equal_the_unfused_loss(kwargs):
    """Blocks of 1024 x 512 classes: PyTorch runs the sigmoid kernel over slices of each block with the gradient
    written over the block's logits (``forward_owned``); float64, against the unfused loss's gradient carried to
    ``d hidden``, ``d weight`` and ``d bias``."""
    torch = import_or_skip("torch")
    from focal.backends import _torch_chunks

    rng = np.random.default_rng(11)
    rows, hidden, classes, block = 1024, 6, 1100, 512
    assert rows * block >= 2 * _torch_chunks.CHUNK_ELEMENTS  # the slices apply
    h, w, b = rng.normal(size=(rows, hidden)), rng.normal(size=(classes, hidden)) * 0.5, rng.normal(size=classes)
    targets = rng.random((rows, classes)) < 0.01
    g = rng.random(rows) + 0.5 if kwargs.get("reduction") == "none" else None
    th, tw, tb = (torch.tensor(a, requires_grad=True) for a in (h, w, b))
    out = focal.linear_sigmoid_focal_loss(th, tw, torch.tensor(targets), tb, class_chunk_size=block, **kwargs)
    (out if g is None else (out * torch.tensor(g)).sum()).backward()
    z = h @ w.T + b
    unfused = dict(kwargs)
    if g is not None:
        unfused.update(reduction="sum", weight=np.broadcast_to(g[:, None], (rows, classes)))
    expected = focal.sigmoid_focal_loss(z, targets, **kwargs)
    _, dz = focal.value_and_grad(focal.sigmoid_focal_loss)(z, targets, **unfused)
    value = out.detach().numpy()
    assert_close(value, expected.sum(axis=1) if g is not None else np.asarray(expected), 1e-12, "value")
    for name, got, want in (("d hidden", th.grad, dz @ w), ("d weight", tw.grad, dz.T @ h),
                            ("d bias", tb.grad, dz.sum(axis=0))):
        assert_close(got.numpy(), want, 1e-12, name)
