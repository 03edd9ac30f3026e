"""The fused linear + focal losses against the unfused loss on ``hidden @ weight.T + bias``, on every library.

The reference is the unfused loss's value and logit gradient in float64 NumPy (itself checked against independent
references in test_values), carried to ``d hidden = dz W``, ``d weight = dzᵀ h``, ``d bias = Σ dz``; the fused
loss is run eagerly, through the framework's autodiff and compiled, with ragged last chunks and all-ignored chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from helpers import CROSS_RTOL, REFERENCE_RTOL, assert_close, import_or_skip
from libs import AUTODIFF_LIBS, LIBS

import focal

N, H, V = 37, 12, 23  # 37 rows: chunks of 8 leave a ragged last one of 5


@dataclass(frozen=True)
class Case:
    id: str
    sigmoid: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)
    targets: str = "labels"  # "labels", "soft" (softmax probabilities) or "multihot" (sigmoid bools)
    bias: bool = True
    chunk: int | None = 8
    ignored_rows: tuple[int, ...] = ()  # labels set to -100 (rows 8-15: a whole chunk)


CASES = [
    Case("sm-mean-ignore", kwargs={"ignore_index": -100}, ignored_rows=(*range(8, 16), 30)),
    Case("sm-sum-alpha-vector", kwargs={"reduction": "sum", "alpha": [0.5 + 0.02 * c for c in range(V)],
                                        "gamma": 1.5}),
    Case("sm-none", kwargs={"reduction": "none", "gamma": 0.5}, bias=False),
    Case("sm-smoothing-ignore", kwargs={"label_smoothing": 0.1, "ignore_index": -100}, ignored_rows=(2, 5)),
    Case("sm-where-rows", kwargs={"where": "rows"}),
    Case("sm-where-shared", kwargs={"where": "shared", "reduction": "sum"}),
    Case("sm-soft", targets="soft", kwargs={"gamma": 2.0}),
    Case("sm-sample-weight-normalizer", kwargs={"sample_weight": "rows", "normalizer": 7.5}),
    # an array beside hidden and weight but no bias (TensorFlow's tape once got one gradient too many there)
    Case("sm-sample-weight-no-bias", kwargs={"sample_weight": "rows", "gamma": 1.0}, bias=False),
    Case("sm-default-chunk", chunk=None, kwargs={"gamma": 3.0, "reduced_threshold": 0.5}),
    Case("sm-one-chunk", chunk=64),
    Case("sm-detach", kwargs={"detach_modulator": True, "alpha": [0.5 + 0.02 * c for c in range(V)]}),
    Case("sig-mean", sigmoid=True, targets="multihot"),
    Case("sig-detach", sigmoid=True, targets="multihot", kwargs={"detach_modulator": True, "gamma": 1.5}),
    Case("sig-none-split", sigmoid=True, targets="multihot", kwargs={"reduction": "none", "form": "split"}),
    Case("sig-ignore-pos-weight", sigmoid=True, targets="multihot",
         kwargs={"ignore_index": -1.0, "pos_weight": [1.0 + 0.1 * c for c in range(V)], "alpha": None}),
    Case("sig-sample-weight-classes", sigmoid=True, targets="multihot",
         kwargs={"sample_weight": "classes", "label_smoothing": 0.05}),
]


def _data(case: Case, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = {"hidden": rng.normal(size=(N, H)), "weight": rng.normal(size=(V, H)) * 0.6,
            "bias": rng.normal(size=V) * 0.5}
    if case.targets == "labels":
        labels = rng.integers(0, V, size=N)
        labels[list(case.ignored_rows)] = -100
        data["targets"] = labels
    elif case.targets == "soft":
        t = rng.random((N, V)) ** 3
        data["targets"] = t / t.sum(axis=1, keepdims=True)
    else:
        t = (rng.random((N, V)) < 0.15).astype(np.float64)
        if case.kwargs.get("ignore_index") is not None:
            t[rng.random((N, V)) < 0.1] = case.kwargs["ignore_index"]
        data["targets"] = t
    where = case.kwargs.get("where")
    if where == "rows":
        mask = rng.random((N, V)) < 0.8
        mask[np.arange(N), data["targets"]] = True
        mask[4] = False  # a row left with no class: 0, out of the mean
        data["where"] = mask
    elif where == "shared":
        mask = np.ones(V, dtype=bool)
        mask[[1, 7]] = False
        data["targets"] = np.where(np.isin(data["targets"], [1, 7]), 0, data["targets"])
        data["where"] = mask
    if case.kwargs.get("sample_weight") == "rows":
        data["sample_weight"] = rng.random(N) + 0.5
    elif case.kwargs.get("sample_weight") == "classes":
        data["sample_weight"] = rng.random(V) + 0.5
    return data


def _kwargs(case: Case, arrays: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(case.kwargs)
    for name in ("where", "sample_weight"):
        if name in kwargs:
            kwargs[name] = arrays[name]
    return kwargs


def _reference(case: Case, data: dict[str, np.ndarray], cotangent: np.ndarray | None):
    """The unfused loss in float64 NumPy: value, and (d hidden, d weight, d bias) of ``Σ cotangent · loss`` (the
    loss itself where it is reduced)."""
    h, w = data["hidden"], data["weight"]
    b = data["bias"] if case.bias else np.zeros(V)
    z = h @ w.T + b
    kwargs = _kwargs(case, data)
    kwargs.pop("class_chunk_size", None)  # the fused loss's own (tests/test_class_blocks.py)
    if "where" in kwargs and kwargs["where"].ndim == 1:  # one class mask of every row: (1, C) to the unfused loss
        kwargs["where"] = kwargs["where"][None, :]
    if "sample_weight" in kwargs:
        sample = kwargs.pop("sample_weight")
        kwargs["weight"] = sample if not case.sigmoid else np.broadcast_to(sample, (N, V))
    loss = focal.sigmoid_focal_loss if case.sigmoid else focal.softmax_focal_loss
    value = loss(z, data["targets"], **kwargs)
    if case.sigmoid and kwargs.get("reduction") == "none":
        value = value.sum(axis=1)
    if cotangent is not None:  # the gradient of Σ g · loss, g > 0: the summed loss weighted by g
        scale = cotangent[:, None] if case.sigmoid else cotangent
        kwargs["weight"] = scale if "weight" not in kwargs else kwargs["weight"] * scale
        kwargs["reduction"] = "sum"
    _, dz = focal.value_and_grad(loss)(z, data["targets"], **kwargs)
    return value, (dz @ w, dz.T @ h, dz.sum(axis=0))


def _fused(case: Case, lib, arrays: dict[str, Any], hidden, weight, bias):
    fn = focal.linear_sigmoid_focal_loss if case.sigmoid else focal.linear_softmax_focal_loss
    return fn(hidden, weight, arrays["targets"], bias if case.bias else None, chunk_size=case.chunk,
              **_kwargs(case, arrays))


def _arrays(lib, case: Case, data: dict[str, np.ndarray], dtype: str) -> dict[str, Any]:
    out = {}
    for name, a in data.items():
        if name in ("hidden", "weight", "bias") or (name in ("sample_weight",) or a.dtype.kind == "f"):
            out[name] = lib.array(a, dtype)
        else:
            out[name] = lib.array(a)
    return out


def _cotangent(case: Case) -> np.ndarray | None:
    if case.kwargs.get("reduction") != "none":
        return None
    return np.random.default_rng(1).random(N) + 0.5


def _autodiff(lib, fn, arrays):
    """The gradients of ``fn(*arrays)`` w.r.t. each, through the library's own autodiff."""
    if lib.name == "torch":
        leaves = [a.detach().clone().requires_grad_(True) for a in arrays]
        out = fn(*leaves)
        out.backward()
        return out, [x.grad for x in leaves]
    if lib.name == "jax":
        return lib.jax.value_and_grad(fn, argnums=tuple(range(len(arrays))))(*arrays)
    tf = lib.xp
    with tf.GradientTape() as tape:
        for a in arrays:
            tape.watch(a)
        out = fn(*arrays)
    return out, tape.gradient(out, list(arrays))


def _check(lib, dtype, value, grads, expected_value, expected_grads, what, rtol=None):
    rtol = CROSS_RTOL[dtype] if rtol is None else rtol
    assert_close(lib.numpy(value), expected_value, rtol, f"{what} value")
    for name, g, e in zip(("d hidden", "d weight", "d bias"), grads, expected_grads):
        if g is not None:
            assert_close(lib.numpy(g), e, rtol, f"{what} {name}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_value_and_grad_equal_the_unfused_loss(lib, dtype, case):
    """``focal.value_and_grad`` of the fused loss on every library (NumPy and array-api-strict included)."""
    data = _data(case)
    arrays = _arrays(lib, case, data, dtype)
    expected_value, expected = _reference(case, data, None)
    fused = focal.linear_sigmoid_focal_loss if case.sigmoid else focal.linear_softmax_focal_loss
    value, grads = focal.value_and_grad(fused)(arrays["hidden"], arrays["weight"], arrays["targets"],
                                               arrays["bias"] if case.bias else None, chunk_size=case.chunk,
                                               **_kwargs(case, arrays))
    assert (grads[2] is None) == (not case.bias)
    _check(lib, dtype, value, grads, expected_value, expected, case.id)


def _differentiated(case: Case, lib, dtype: str):
    """The fused loss as a function of (hidden, weight, bias) to differentiate (``Σ g · loss`` with ``"none"``), its
    primals, and the reference value and gradients."""
    data = _data(case)
    arrays = _arrays(lib, case, data, dtype)
    g = _cotangent(case)
    expected_value, expected = _reference(case, data, g)
    g_lib = None if g is None else lib.array(g, dtype)

    def fn(hidden, weight, bias):
        out = _fused(case, lib, arrays, hidden, weight, bias)
        return out if g_lib is None else lib.sum(out * g_lib)

    if g is not None:
        expected_value = np.sum(expected_value * g)
    return fn, [arrays["hidden"], arrays["weight"], arrays["bias"]], expected_value, expected


@pytest.mark.x64
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_framework_gradients_equal_the_unfused_loss(autodiff_lib, precision, case):
    """Through ``torch.autograd``, ``jax.grad`` and ``tf.GradientTape``: a reduced loss's gradients, and with
    ``reduction="none"`` those of ``Σ g · loss`` for a cotangent g per row."""
    lib, dtype = autodiff_lib, precision
    fn, primals, expected_value, expected = _differentiated(case, lib, dtype)
    value, grads = _autodiff(lib, fn, primals)
    if not case.bias:
        assert grads[2] is None or not np.any(lib.numpy(grads[2])), "a bias that is not used has no gradient"
    _check(lib, dtype, value, grads if case.bias else grads[:2], expected_value, expected, case.id)


COMPILED = ["sm-mean-ignore", "sm-none", "sig-mean", "sm-smoothing-ignore"]


@pytest.mark.parametrize("case", [c for c in CASES if c.id in COMPILED], ids=lambda c: c.id)
def test_compiled_equal_the_unfused_loss(autodiff_lib, case):
    """Under ``jax.jit``, ``tf.function(jit_compile=True)`` and ``torch.compile(fullgraph=True)`` (float32)."""
    lib, dtype = autodiff_lib, "float32"
    fn, primals, expected_value, expected = _differentiated(case, lib, dtype)
    if lib.name == "torch":
        lib.xp._dynamo.reset()
        compiled = lib.xp.compile(fn, fullgraph=True)
        value, grads = _autodiff(lib, compiled, primals)
    elif lib.name == "jax":
        value, grads = lib.jax.jit(lib.jax.value_and_grad(fn, argnums=(0, 1, 2)))(*primals)
    else:
        value, grads = lib.xp.function(lambda *xs: _autodiff(lib, fn, list(xs)), jit_compile=True)(*primals)
    _check(lib, dtype, value, grads if case.bias else grads[:2], expected_value, expected, f"{case.id} compiled")


def test_gamma_zero_is_torch_cross_entropy():
    """γ = 0 without α is the cross entropy of the logits: ``F.cross_entropy`` on the materialised logits, with
    ``ignore_index`` and label smoothing, its value and the three gradients."""
    torch = import_or_skip("torch")
    data = _data(CASES[0])
    h, w, b = (torch.tensor(data[k], requires_grad=True) for k in ("hidden", "weight", "bias"))
    labels = torch.tensor(data["targets"])
    for smoothing in (0.0, 0.2):
        ours = focal.linear_softmax_focal_loss(h, w, labels, b, gamma=0.0, ignore_index=-100,
                                               label_smoothing=smoothing, chunk_size=8)
        ours_grads = torch.autograd.grad(ours, (h, w, b))
        theirs = torch.nn.functional.cross_entropy(h @ w.T + b, labels, ignore_index=-100,
                                                   label_smoothing=smoothing)
        theirs_grads = torch.autograd.grad(theirs, (h, w, b))
        assert_close(ours.detach().numpy(), theirs.detach().numpy(), REFERENCE_RTOL["float64"], "cross entropy")
        for a, e in zip(ours_grads, theirs_grads):
            assert_close(a.numpy(), e.numpy(), REFERENCE_RTOL["float64"], "cross entropy gradient")


def test_gradient_matches_finite_differences():
    """float64 NumPy: the analytic ``d hidden``, ``d weight``, ``d bias`` against central differences of the fused
    loss itself (independent of the unfused loss)."""
    rng = np.random.default_rng(3)
    h, w, b = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), rng.normal(size=4)
    labels = np.array([0, 3, 1, -100, 2])

    def loss(h, w, b):
        return focal.linear_softmax_focal_loss(h, w, labels, b, gamma=1.5, ignore_index=-100, chunk_size=2)

    _, grads = focal.value_and_grad(focal.linear_softmax_focal_loss)(h, w, labels, b, gamma=1.5, ignore_index=-100,
                                                                     chunk_size=2)
    step = 1e-6
    for index, x in enumerate((h, w, b)):
        numeric = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            up, down = [a.copy() for a in (h, w, b)], [a.copy() for a in (h, w, b)]
            up[index][i] += step
            down[index][i] -= step
            numeric[i] = (loss(*up) - loss(*down)) / (2 * step)
        np.testing.assert_allclose(grads[index], numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("chunk", [1, 5, 8, 37, 1000])
def test_chunk_size_does_not_change_the_result(chunk):
    case = CASES[0]
    data = _data(case)
    value, grads = focal.value_and_grad(focal.linear_softmax_focal_loss)(
        data["hidden"], data["weight"], data["targets"], data["bias"], ignore_index=-100, chunk_size=chunk)
    expected_value, expected = _reference(case, data, None)
    _check(Lib_numpy(), "float64", value, grads, expected_value, expected, f"chunk {chunk}", rtol=1e-12)


def Lib_numpy():  # noqa: N802 - the NumPy adapter
    return LIBS[0]


def test_every_row_ignored_gives_zero():
    data = _data(CASES[0])
    labels = np.full(N, -100)
    value, (dh, dw, db) = focal.value_and_grad(focal.linear_softmax_focal_loss)(
        data["hidden"], data["weight"], labels, data["bias"], ignore_index=-100, chunk_size=8)
    assert value == 0.0 and not dh.any() and not dw.any() and not db.any()


def test_leading_axes_are_rows():
    """``(B, T, H)`` hidden states and ``(B, T)`` labels: the rows flattened, ``"none"`` in their shape."""
    data = _data(CASES[0])
    h = data["hidden"][:36].reshape(4, 9, H)
    labels = np.where(data["targets"][:36] < 0, 0, data["targets"][:36]).reshape(4, 9)
    out = focal.linear_softmax_focal_loss(h, data["weight"], labels, reduction="none", chunk_size=8)
    expected = focal.softmax_focal_loss(h @ data["weight"].T, labels, reduction="none")
    assert out.shape == (4, 9)
    np.testing.assert_allclose(out, expected, rtol=1e-13)
    _, (dh, _, _) = focal.value_and_grad(focal.linear_softmax_focal_loss)(h, data["weight"], labels, chunk_size=8)
    assert dh.shape == h.shape


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_half_precision_accumulates_in_float32(name):
    """bfloat16 hidden states and weight: the logits in bfloat16, the loss and ``d weight`` accumulated in float32;
    within bfloat16's rounding of the float32 result, gradients in bfloat16."""
    lib = next((lib for lib in AUTODIFF_LIBS if lib.name == name), None)
    if lib is None:
        pytest.skip(f"{name} is not installed")
    case = CASES[0]
    data = _data(case)
    expected_value, expected = _reference(case, data, None)
    arrays = _arrays(lib, case, data, "bfloat16")
    value, grads = _autodiff(lib, lambda h, w, b: _fused(case, lib, arrays, h, w, b),
                             [arrays["hidden"], arrays["weight"], arrays["bias"]])
    assert str(value.dtype).endswith("bfloat16") and all(str(g.dtype).endswith("bfloat16") for g in grads)
    _check(lib, "float32", value, grads, expected_value, expected, "bfloat16", rtol=REFERENCE_RTOL["bfloat16"] * 2)


def test_jit_compiles_one_chunk_whatever_the_rows():
    """Under ``jax.jit`` the chunks are a ``fori_loop``: the program does not grow with the number of rows, and no
    array in it is larger than a chunk of logits, ``d weight`` or ``hidden`` (never the whole logits)."""
    jax = import_or_skip("jax")
    from jax.extend.core import jaxprs_in_params

    jnp = jax.numpy
    rng = np.random.default_rng(0)
    counts: list[int] = []  # operations in the program, nested ones (the loop's body) included
    for rows in (64, 640):
        h = jnp.asarray(rng.normal(size=(rows, 16)), jnp.float32)
        w = jnp.asarray(rng.normal(size=(300, 16)), jnp.float32)
        labels = jnp.asarray(rng.integers(0, 300, size=rows))
        grad = jax.grad(lambda h, w: focal.linear_softmax_focal_loss(h, w, labels, chunk_size=16), argnums=(0, 1))
        jaxpr = jax.make_jaxpr(grad)(h, w)
        sizes = []

        def walk(jp):
            counts[-1] += len(jp.eqns)
            for eqn in jp.eqns:
                sizes.extend(int(np.prod(v.aval.shape)) for v in eqn.outvars if hasattr(v.aval, "shape"))
                for sub in jaxprs_in_params(eqn.params):
                    walk(sub)

        counts.append(0)
        walk(jaxpr.jaxpr)
        largest = max(16 * 300 * 2, rows * 16)
        assert max(sizes) <= largest, f"an array of {max(sizes)} elements: the logits have {rows * 300}"
    assert counts[0] == counts[1], f"the program grew with the rows: {counts}"


def test_torch_never_holds_the_logits():
    """PyTorch eager, forward and backward: no tensor the size of the whole logits is ever made (every op's output
    recorded by a dispatch mode)."""
    torch = import_or_skip("torch")
    from torch.utils._python_dispatch import TorchDispatchMode

    class Sizes(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    # the storage, not the shape: a broadcast view (the blocks' stand-in logits) holds one element
                    self.largest = max(self.largest, t.untyped_storage().nbytes() // t.element_size())
            return out

    rows, hidden, classes = 512, 16, 400
    h = torch.randn(rows, hidden, requires_grad=True)
    w = torch.randn(classes, hidden, requires_grad=True)
    labels = torch.randint(0, classes, (rows,))
    with Sizes() as sizes:
        focal.linear_softmax_focal_loss(h, w, labels, chunk_size=32).backward()
    assert sizes.largest <= 32 * classes, f"a tensor of {sizes.largest} elements; the logits have {rows * classes}"


def test_errors_name_the_argument():
    rng = np.random.default_rng(0)
    h, w, labels = rng.normal(size=(6, 4)), rng.normal(size=(5, 4)), np.arange(6) % 5
    loss = focal.linear_softmax_focal_loss
    with pytest.raises(ValueError, match=r"weight has shape \(5, 3\), expected \(C, 4\)"):
        loss(h, w[:, :3], labels)
    with pytest.raises(ValueError, match=r"targets has shape \(5,\)"):
        loss(h, w, labels[:5])
    with pytest.raises(ValueError, match=r"bias has shape \(4,\)"):
        loss(h, w, labels, np.zeros(4))
    with pytest.raises(TypeError, match="weight has dtype float32 but hidden has float64"):
        loss(h, w.astype(np.float32), labels)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        loss(h, w, labels, chunk_size=0)
    with pytest.raises(ValueError, match=r"targets holds class indices outside \[0, 5\)"):
        loss(h, w, labels + 3)
    with pytest.raises(ValueError, match="sample_weight has shape"):
        loss(h, w, labels, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match=r"targets has shape \(6,\), expected one target per class"):
        focal.linear_sigmoid_focal_loss(h, w, labels)


def test_no_gradient_for_hyperparameters_is_an_error():
    """A hyperparameter or target that asks for a gradient the fused loss does not give: a TypeError, never a
    silent None or 0."""
    torch = import_or_skip("torch")
    h, w = torch.randn(6, 4, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    labels = torch.arange(6) % 5
    with pytest.raises(TypeError, match="alpha has no gradient"):
        focal.linear_softmax_focal_loss(h, w, labels, alpha=torch.ones(5, requires_grad=True))
    with pytest.raises(TypeError, match="sample_weight has no gradient"):
        focal.linear_softmax_focal_loss(h, w, labels, sample_weight=torch.ones(6, requires_grad=True))
    with pytest.raises(TypeError, match="targets has no gradient"):
        focal.linear_sigmoid_focal_loss(h, w, torch.rand(6, 5, requires_grad=True))
    with pytest.raises(TypeError, match="normalizer has no gradient"):  # the forward divides by it
        focal.linear_softmax_focal_loss(h, w, labels, normalizer=torch.tensor(3.0, requires_grad=True))


@pytest.mark.parametrize("name", ["jax", "tensorflow"])
def test_many_classes_under_xla_equal_the_unfused_loss(name):
    """Under XLA (``jax.jit``; TensorFlow's compiled chunks, in ``tf.function`` and eagerly) ``d weight`` is
    accumulated in blocks of its rows once there are 2048 classes and more: 2051 classes leave a row over the
    blocks. The loss, its three gradients and those of ``2.5 · loss`` (a cotangent other than 1: the backward
    multiplies) against the float64 NumPy reference."""
    rng = np.random.default_rng(5)
    rows, hidden, classes = 21, 3, 2051
    h, w, b = rng.normal(size=(rows, hidden)), rng.normal(size=(classes, hidden)), rng.normal(size=classes) * 0.3
    labels = rng.integers(0, classes, size=rows)
    labels[[2, 9]] = -100
    kwargs = {"ignore_index": -100, "gamma": 1.5}
    z = h @ w.T + b
    expected_value = focal.softmax_focal_loss(z, labels, **kwargs)
    _, dz = focal.value_and_grad(focal.softmax_focal_loss)(z, labels, **kwargs)
    expected = (dz @ w, dz.T @ h, dz.sum(axis=0))
    lib = next(lib for lib in AUTODIFF_LIBS if lib.name == name)
    primals = [lib.array(a, "float32") for a in (h, w, b)]
    targets = lib.array(labels)

    def loss(h, w, b):
        return focal.linear_softmax_focal_loss(h, w, targets, b, chunk_size=8, **kwargs)

    for factor in (1.0, 2.5):
        def scaled(h, w, b, factor=factor):
            return loss(h, w, b) * factor

        if name == "jax":
            runs = {"jit": lambda: lib.jax.jit(lib.jax.value_and_grad(scaled, argnums=(0, 1, 2)))(*primals)}
        else:
            runs = {"eager": lambda: _autodiff(lib, scaled, primals),
                    "tf.function": lambda: lib.xp.function(lambda *xs: _autodiff(lib, scaled, list(xs)))(*primals)}
        for mode, run in runs.items():
            value, grads = run()
            _check(lib, "float32", value, grads, expected_value * factor, [g * factor for g in expected],
                   f"{name} {mode} x{factor}")


def test_jax_holds_about_one_chunk_of_logits():
    """XLA's own count of a ``jax.jit`` step's temporaries (outputs not counted; a deterministic proxy of the peak):
    about one chunk's logits in row chunks, one block's in blocks of classes, never two (4096 x 512 x 32000 held
    2.5 chunks before the softmax's maximum was read from ``exp(z − m)`` and ``d hidden`` written into a carried
    array)."""
    jax = import_or_skip("jax")
    rng = np.random.default_rng(0)
    rows, hidden, classes = 1024, 64, 6000
    h = jax.numpy.asarray(rng.normal(size=(rows, hidden)), jax.numpy.float32)
    w = jax.numpy.asarray(rng.normal(size=(classes, hidden)) / 8.0, jax.numpy.float32)
    labels = jax.numpy.asarray(np.where(rng.random(rows) < 0.1, -100, rng.integers(0, classes, size=rows)))
    for tiles, logits in (({"chunk_size": 128}, 128 * classes), ({"chunk_size": rows, "class_chunk_size": 512},
                                                                  rows * 512)):
        def loss(h, w, tiles=tiles):
            return focal.linear_softmax_focal_loss(h, w, labels, gamma=2.0, ignore_index=-100, **tiles)

        compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(h, w).compile()
        held = compiled.memory_analysis().temp_size_in_bytes / (4 * logits)
        assert 0.9 <= held <= 1.5, f"{tiles}: {held:.2f} chunks of logits"


def test_jax_sigmoid_holds_about_one_chunk_of_logits():
    """The sigmoid loss's default tiles under ``jax.jit`` (blocks of classes, a ``fori_loop``): XLA's temporaries
    within 1.5x the logits of PyTorch's chunk for the shape (``N / ceil(C / H)`` rows of every class, rounded up to
    a power of two). XLA's CPU fusions keep about six arrays of a block's size (its logits, ``exp(−|z|)``, its
    ``log1p``, ``σ``, the float32 targets, the gradient), so its blocks hold a quarter of that chunk's logits
    (here 1.19 chunks, 7 MiB; in row chunks, 7a38999's default, 6.2 chunks)."""
    jax = import_or_skip("jax")
    rng = np.random.default_rng(0)
    rows, hidden, classes = 1024, 1024, 6000
    h = jax.numpy.asarray(rng.normal(size=(rows, hidden)), jax.numpy.float32)
    w = jax.numpy.asarray(rng.normal(size=(classes, hidden)) / 32.0, jax.numpy.float32)
    multihot = jax.numpy.asarray(rng.random((rows, classes)) < 0.01)
    chunk = 1 << (math.ceil(rows / math.ceil(classes / hidden)) - 1).bit_length()

    def loss(h, w):
        return focal.linear_sigmoid_focal_loss(h, w, multihot, gamma=2.0)

    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(h, w).compile()
    held = compiled.memory_analysis().temp_size_in_bytes / (4 * chunk * classes)
    assert 0.5 <= held <= 1.5, f"{held:.2f} chunks of logits"
