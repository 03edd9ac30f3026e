"""Hyperparameters as values: arrays (concrete or traced) give the numbers' results on every library,
their gradients match the reference's, and those without a gradient refuse to give one."""

from __future__ import annotations

import numpy as np
import pytest
from cases import CASES, Run
from helpers import CROSS_RTOL, assert_close, record_fused_runs
from hyper_cases import NOT_DIFFERENTIABLE, hyperparameters, reference_gradient
from libs import AUTODIFF_LIBS, LIBS

import focal

HYPER_CASES = [case for case in CASES if hyperparameters(case)]
# compiling is slow: one case per loss family covers each compiled path with traced hyperparameters
COMPILED_IDS = {"sig-gamma0.5-soft", "sig-gamma-vector", "sm-alpha-vector", "sm-soft", "sm-normalized",
                "sm-reduced", "neg-softmax", "poly-sm-soft", "asl-params", "star-alpha", "qfl", "vfl", "tversky",
                "soft-sm"}


def _as_arrays(lib, case, dtype):
    return {name: lib.array(np.asarray(value, dtype=np.float64), dtype)
            for name, value in hyperparameters(case).items()}


def _call(run, hyper, x=None):
    kwargs = {**run.case.kwargs(run.weight), **hyper}
    return run.case.fn(run.x if x is None else x, run.targets, **kwargs)


@pytest.mark.parametrize("case", HYPER_CASES, ids=lambda c: c.id)
def test_arrays_give_the_numbers_results(lib, dtype, case):
    """Every hyperparameter as a 0-d (or per-class) array of the library: the value, ``value_and_grad`` and
    the framework's gradient equal those of the same call with numbers (which may take faster paths)."""
    run = Run(case, lib, dtype)
    hyper = _as_arrays(lib, case, dtype)
    expected = lib.numpy(run.loss())
    assert_close(lib.numpy(_call(run, hyper)), expected, CROSS_RTOL[dtype], "value")
    value, grad = focal.value_and_grad(case.fn)(run.x, run.targets, **{**case.kwargs(run.weight), **hyper})
    _, expected_grad = run.value_and_grad()
    assert_close(lib.numpy(value), expected, CROSS_RTOL[dtype], "value_and_grad value")
    assert_close(lib.numpy(grad), lib.numpy(expected_grad), CROSS_RTOL[dtype], "value_and_grad grad")
    if lib.autodiff:
        summed = lambda v: lib.sum(_call(run, hyper, v))  # noqa: E731
        assert_close(lib.numpy(lib.grad(summed, run.x)), lib.numpy(expected_grad), CROSS_RTOL[dtype], "autodiff")


COMPILED_RUNS = [(lib, dtype) for lib in AUTODIFF_LIBS for dtype in ("float32", "float64")
                 if not (lib.name == "torch" and dtype == "float64")]


@pytest.mark.parametrize("case", [c for c in HYPER_CASES if c.id in COMPILED_IDS], ids=lambda c: c.id)
@pytest.mark.parametrize("lib,dtype", COMPILED_RUNS, ids=[f"{dtype}-{lib.id}" for lib, dtype in COMPILED_RUNS])
def test_traced_arrays_give_the_numbers_results(lib, dtype, case):
    """The hyperparameters as arguments of ``jax.jit``, ``tf.function(jit_compile=True)``, ``torch.compile``."""
    run = Run(case, lib, dtype)
    hyper = _as_arrays(lib, case, dtype)
    expected = float(np.sum(lib.numpy(run.loss())))
    summed = lambda v, h: lib.sum(_call(run, h, v))  # noqa: E731
    assert_close(lib.numpy(lib.compile(summed)(run.x, hyper)), expected, CROSS_RTOL[dtype], "compiled value")
    grad = lib.compile(lambda v, h: lib.grad(lambda u: summed(u, h), v))(run.x, hyper)
    _, expected_grad = run.value_and_grad()
    assert_close(lib.numpy(grad), lib.numpy(expected_grad), CROSS_RTOL[dtype], "compiled grad")


GRADIENT_CASES = [(case, name) for case in HYPER_CASES for name in hyperparameters(case)
                  if name not in NOT_DIFFERENTIABLE]


@pytest.mark.x64
@pytest.mark.parametrize("case,name", GRADIENT_CASES, ids=[f"{c.id}-{n}" for c, n in GRADIENT_CASES])
def test_gradient_wrt_a_hyperparameter_matches_the_reference(autodiff_lib, case, name):
    """``jax.grad``, ``torch.autograd`` and ``tf.GradientTape`` w.r.t. the hyperparameter (float64) against
    central differences of the independent reference loss in that hyperparameter."""
    lib = autodiff_lib
    run = Run(case, lib, "float64")
    hyper = _as_arrays(lib, case, "float64")
    others = {k: v for k, v in hyper.items() if k != name}
    grad = lib.grad(lambda h: lib.sum(_call(run, {**others, name: h})), hyper[name])
    assert grad is not None, f"no gradient w.r.t. {name}"
    expected = reference_gradient(case, name, run.x64, run.t, None if run.weight is None else lib.numpy(run.weight))
    assert_close(lib.numpy(grad), expected, 1e-6, f"d/d{name}")


NOT_DIFFERENTIABLE_CASES = [(case, name) for case in HYPER_CASES for name in hyperparameters(case)
                            if name in NOT_DIFFERENTIABLE]


@pytest.mark.x64
@pytest.mark.parametrize("case,name", NOT_DIFFERENTIABLE_CASES,
                         ids=[f"{c.id}-{n}" for c, n in NOT_DIFFERENTIABLE_CASES])
def test_a_hyperparameter_without_a_gradient_refuses_to_give_one(autodiff_lib, case, name):
    lib = autodiff_lib
    run = Run(case, lib, "float64")
    hyper = _as_arrays(lib, case, "float64")
    others = {k: v for k, v in hyper.items() if k != name}
    with pytest.raises(TypeError, match=f"{name} has no gradient"):
        lib.grad(lambda h: lib.sum(_call(run, {**others, name: h})), hyper[name])
    # and its value is still taken: the loss with it as an array equals the loss with the number
    assert_close(lib.numpy(_call(run, hyper)), lib.numpy(run.loss()), 1e-12, "value")


def _lib(name):
    return [lib for lib in LIBS if lib.name == name]


X = np.random.default_rng(5).normal(size=(8, 6)) * 2
Y = (np.random.default_rng(6).random((8, 6)) > 0.6).astype(np.float64)
LABELS = np.random.default_rng(7).integers(0, 6, size=8)
GAMMAS = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0]


@pytest.mark.x64
@pytest.mark.parametrize("lib", _lib("jax"), ids=lambda lib: lib.id)
def test_jax_one_compile_for_a_gamma_schedule_and_a_vmapped_sweep(lib):
    jax, jnp = lib.jax, lib.jnp
    x, y, labels = lib.array(X), lib.array(Y), lib.array(LABELS)

    traces = []

    def loss(v, gamma, alpha):
        traces.append(isinstance(gamma, jax.core.Tracer))
        return focal.sigmoid_focal_loss(v, y, gamma=gamma, alpha=alpha) + focal.softmax_focal_loss(
            v, labels, gamma=gamma)

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
    results = [step(x, g, 0.25) for g in GAMMAS]  # Python floats become traced arguments
    assert traces == [True], f"{len(traces)} traces (so compiles) for {len(GAMMAS)} gamma values"
    traces.clear()
    for g, (value, _) in zip(GAMMAS, results):
        assert_close(float(value), float(loss(x, g, 0.25)), 1e-12, f"gamma={g}")
    sweep = jax.jit(jax.vmap(loss, in_axes=(None, 0, None)))(x, jnp.asarray(GAMMAS), 0.25)
    assert_close(np.asarray(sweep), np.array([float(loss(x, g, 0.25)) for g in GAMMAS]), 1e-12, "vmap over gamma")
    # the gradients w.r.t. gamma and alpha agree with differences of the loss itself
    for g, (_, (_, dgamma, dalpha)) in zip(GAMMAS, results):
        assert_close(float(dgamma), _numeric(lambda h: loss(x, h, 0.25), g), 1e-6, f"d/dgamma at {g}")
        assert_close(float(dalpha), _numeric(lambda a: loss(x, g, a), 0.25), 1e-6, f"d/dalpha at {g}")


@pytest.mark.parametrize("lib", _lib("tensorflow"), ids=lambda lib: lib.id)
def test_tensorflow_one_trace_for_a_variable_gamma(lib):
    tf = lib.xp
    x, y = lib.array(X), lib.array(Y)
    gamma = tf.Variable(2.0, dtype=tf.float64, trainable=False)

    @tf.function
    def step(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = focal.sigmoid_focal_loss(v, y, gamma=gamma)
        return loss, tape.gradient(loss, v)

    for g in GAMMAS:
        gamma.assign(g)
        value, grad = step(x)
        expected_value, expected_grad = focal.value_and_grad(focal.sigmoid_focal_loss)(X, Y, gamma=g)
        assert_close(float(value), float(expected_value), 1e-12, f"gamma={g}")
        assert_close(grad.numpy(), expected_grad, 1e-12, f"grad at gamma={g}")
    assert step.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("lib", _lib("tensorflow"), ids=lambda lib: lib.id)
def test_tensorflow_trainable_variables_get_their_gradient(lib):
    tf = lib.xp
    x, labels = lib.array(X), lib.array(LABELS)
    gamma = tf.Variable(1.5, dtype=tf.float64)
    alpha = tf.Variable(np.linspace(0.2, 1.0, 6))
    with tf.GradientTape() as tape:
        loss = focal.softmax_focal_loss(x, labels, gamma=gamma, alpha=alpha)
    dgamma, dalpha = tape.gradient(loss, [gamma, alpha])
    h = 1e-6
    alphas = list(np.linspace(0.2, 1.0, 6))

    def at(g, a):
        return float(focal.softmax_focal_loss(X, LABELS, gamma=g, alpha=a))

    assert_close(float(dgamma), (at(1.5 + h, alphas) - at(1.5 - h, alphas)) / (2 * h), 1e-6, "d/dgamma")
    numeric = [(at(1.5, alphas[:i] + [alphas[i] + h] + alphas[i + 1:]) -
                at(1.5, alphas[:i] + [alphas[i] - h] + alphas[i + 1:])) / (2 * h) for i in range(6)]
    assert_close(dalpha.numpy(), np.array(numeric), 1e-6, "d/dalpha")


def _numeric(loss, value, h=1e-6):
    """Differences of a float64 NumPy loss in one scalar hyperparameter (or each entry of a vector):
    central, or one-sided (three points) at 0, the end of γ's and α's range."""
    value = np.asarray(value, dtype=np.float64)
    out = np.zeros(value.shape)
    as_given = (lambda v: v.tolist()) if value.ndim else float
    for index in np.ndindex(value.shape):
        def at(shift):
            bumped = value.copy()
            bumped[index] += shift
            return float(loss(as_given(bumped)))

        if value[index] - h < 0:
            out[index] = (-3 * at(0.0) + 4 * at(h) - at(2 * h)) / (2 * h)
        else:
            out[index] = (at(h) - at(-h)) / (2 * h)
    return out


ALPHAS = np.linspace(0.2, 1.0, 6)


@pytest.mark.parametrize("lib", _lib("torch"), ids=lambda lib: lib.id)
def test_torch_tensors_that_require_a_gradient_get_it(lib):
    """``.grad`` of a learnable γ and per-class α (they used to stay None), and ``torch.func.grad`` w.r.t. γ."""
    torch = lib.xp
    x, labels, y = lib.array(X), lib.array(LABELS), lib.array(Y)
    gamma = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor(ALPHAS, requires_grad=True)
    focal.softmax_focal_loss(x, labels, gamma=gamma, alpha=alpha).backward()
    assert_close(lib.numpy(gamma.grad), _numeric(lambda g: focal.softmax_focal_loss(X, LABELS, gamma=g,
                                                                                      alpha=list(ALPHAS)), 1.5),
                 1e-6, "d/dgamma")
    assert_close(lib.numpy(alpha.grad), _numeric(lambda a: focal.softmax_focal_loss(X, LABELS, gamma=1.5, alpha=a),
                                                 ALPHAS), 1e-6, "d/dalpha")
    # a learnable γ alone: the logits need no gradient for γ to get one
    gamma.grad = None
    focal.sigmoid_focal_loss(x, y, gamma=gamma).backward()
    assert_close(lib.numpy(gamma.grad), _numeric(lambda g: focal.sigmoid_focal_loss(X, Y, gamma=g), 1.5), 1e-6,
                 "sigmoid d/dgamma")
    grad = torch.func.grad(lambda g: focal.sigmoid_focal_loss(x, y, gamma=g))(torch.tensor(0.5, dtype=torch.float64))
    assert_close(lib.numpy(grad), _numeric(lambda g: focal.sigmoid_focal_loss(X, Y, gamma=g), 0.5), 1e-6,
                 "torch.func.grad")


@pytest.mark.parametrize("lib", _lib("torch"), ids=lambda lib: lib.id)
def test_torch_compile_fullgraph_takes_tensor_hyperparameters_without_recompiling(lib):
    torch = lib.xp
    from torch._dynamo.testing import CompileCounter

    x, y = lib.array(X), lib.array(Y)
    torch._dynamo.reset()
    counter = CompileCounter()
    step = torch.compile(lambda v, g, a: focal.sigmoid_focal_loss(v, y, gamma=g, alpha=a), fullgraph=True,
                         backend=counter)
    for g in GAMMAS:
        gamma = torch.tensor(g, dtype=torch.float64, requires_grad=True)
        leaf = x.clone().requires_grad_(True)
        value = step(leaf, gamma, torch.tensor(0.25, dtype=torch.float64))
        value.backward()
        expected, expected_grad = focal.value_and_grad(focal.sigmoid_focal_loss)(X, Y, gamma=g, alpha=0.25)
        assert_close(lib.numpy(value), expected, 1e-12, f"value at gamma={g}")
        assert_close(lib.numpy(leaf.grad), expected_grad, 1e-12, f"grad at gamma={g}")
        assert_close(lib.numpy(gamma.grad), _numeric(lambda h: focal.sigmoid_focal_loss(X, Y, gamma=h), g), 1e-6,
                     f"d/dgamma at {g}")
    assert counter.frame_count == 1, f"{counter.frame_count} compiles for {len(GAMMAS)} gamma values"


@pytest.mark.parametrize("smoothing", [0.0, 0.05], ids=["labels", "smoothed"])  # the softmax's two kernels
@pytest.mark.parametrize("lib", _lib("torch"), ids=lambda lib: lib.id)
def test_torch_fused_path_serves_a_gamma_schedule_without_recompiling(lib, monkeypatch, smoothing):
    """The default path for large inputs compiles the kernel once: numbers enter it as inputs too."""
    from torch._dynamo.utils import counters

    calls = record_fused_runs(monkeypatch)
    x, labels = lib.array(X.astype(np.float32)), lib.array(LABELS)
    compiled = []
    for g in GAMMAS:
        leaf = x.clone().requires_grad_(True)
        before = counters["stats"]["unique_graphs"]
        value = focal.softmax_focal_loss(leaf, labels, gamma=g, alpha=0.5, label_smoothing=smoothing)
        value.backward()
        compiled.append(counters["stats"]["unique_graphs"] - before)
        expected, expected_grad = focal.value_and_grad(focal.softmax_focal_loss)(
            X.astype(np.float32), LABELS, gamma=g, alpha=0.5, label_smoothing=smoothing)
        assert_close(lib.numpy(value), expected, CROSS_RTOL["float32"], f"value at gamma={g}")
        assert_close(lib.numpy(leaf.grad), expected_grad, CROSS_RTOL["float32"], f"grad at gamma={g}")
    assert calls == ["forward"] * len(GAMMAS), calls  # a softmax kernel: its forward stores the gradient
    assert sum(compiled[1:]) == 0, f"graphs compiled per gamma value: {compiled}"


@pytest.mark.parametrize("lib", _lib("tensorflow"), ids=lambda lib: lib.id)
def test_tensorflow_fused_path_serves_a_gamma_schedule_with_one_trace(lib, monkeypatch):
    """TensorFlow's XLA path for large inputs: numbers and a variable γ are inputs, traced once."""
    tf = lib.xp
    from focal.backends import tensorflow as tf_backend

    monkeypatch.setattr(tf_backend, "FUSED_MIN_ELEMENTS", 0)
    x, y = lib.array(X), lib.array(Y)
    gamma = tf.Variable(1.0, dtype=tf.float64)
    traces = []
    for g in GAMMAS:
        gamma.assign(g)
        with tf.GradientTape() as tape:
            tape.watch(x)
            by_number = focal.sigmoid_focal_loss(x, y, gamma=g)
            by_variable = focal.sigmoid_focal_loss(x, y, gamma=gamma)
        grad, dgamma = tape.gradient(by_variable, [x, gamma])
        expected, expected_grad = focal.value_and_grad(focal.sigmoid_focal_loss)(X, Y, gamma=g)
        assert_close(float(by_number), float(expected), 1e-12, f"number gamma={g}")
        assert_close(float(by_variable), float(expected), 1e-12, f"variable gamma={g}")
        assert_close(grad.numpy(), expected_grad, 1e-12, f"grad at gamma={g}")
        assert_close(float(dgamma), _numeric(lambda h: focal.sigmoid_focal_loss(X, Y, gamma=h), g), 1e-6,
                     f"d/dgamma at {g}")
        traces.append((tf_backend._fused_forward.experimental_get_tracing_count(),
                       tf_backend._fused_vjp.experimental_get_tracing_count()))
    assert traces[-1] == traces[0], f"traces of the fused value and backward per gamma value: {traces}"


@pytest.mark.parametrize("lib", _lib("torch"), ids=lambda lib: lib.id)
def test_torch_criterion_learns_gamma_and_alpha_as_parameters(lib):
    torch = lib.xp
    import copy

    import focal.torch as ft

    criterion = ft.SoftmaxFocalLoss(gamma=torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64)),
                                    alpha=torch.nn.Parameter(torch.tensor(ALPHAS)))
    assert {name for name, _ in criterion.named_parameters()} == {"gamma", "alpha"}
    assert set(criterion.state_dict()) == {"gamma", "alpha"}
    optimizer = torch.optim.SGD(criterion.parameters(), lr=0.1)
    x, labels = lib.array(X), lib.array(LABELS)
    criterion(x, labels).backward()  # class axis 1 of (N, C)
    assert_close(lib.numpy(criterion.gamma.grad),
                 _numeric(lambda g: focal.softmax_focal_loss(X, LABELS, gamma=g, alpha=list(ALPHAS), axis=1), 2.0),
                 1e-6, "criterion d/dgamma")
    optimizer.step()
    assert float(criterion.gamma.detach()) != 2.0  # it learned
    clone = copy.deepcopy(criterion)
    assert_close(lib.numpy(clone(x, labels)), lib.numpy(criterion(x, labels)), 1e-15, "deepcopy")
    # a buffer γ changed in place: a schedule
    scheduled = ft.SigmoidFocalLoss(gamma=torch.tensor(2.0, dtype=torch.float64))
    y = lib.array(Y)
    for g in (2.0, 1.0, 0.5):
        scheduled.gamma.fill_(g)
        assert_close(lib.numpy(scheduled(x, y)), focal.sigmoid_focal_loss(X, Y, gamma=g), 1e-12, f"gamma={g}")


@pytest.mark.parametrize("lib", _lib("torch"), ids=lambda lib: lib.id)
def test_torch_criteria_take_where_ignore_index_and_pos_weight(lib):
    """The new options reach the criteria: lists become buffers, and the values are the functional ones."""
    import focal.torch as ft

    z, labels = lib.array(X), lib.array(LABELS)
    mask = [[True, True, False, True, True, True]]
    criterion = ft.SoftmaxFocalLoss(where=mask, gamma=1.5)
    assert criterion.where.dtype == lib.xp.bool and "where" in criterion.state_dict()
    assert_close(lib.numpy(criterion(z, labels % 2 * 3)),
                 focal.softmax_focal_loss(X, LABELS % 2 * 3, where=np.array(mask), gamma=1.5, axis=1), 1e-12, "where")
    targets = np.where(np.random.default_rng(8).random(Y.shape) < 0.2, -1.0, Y)
    pos_weight = [0.5, 1.0, 2.0, 1.0, 3.0, 1.0]
    binary = ft.SigmoidFocalLoss(pos_weight=pos_weight, ignore_index=-1.0)
    assert set(binary.state_dict()) == {"pos_weight"}
    assert_close(lib.numpy(binary(z, lib.array(targets))),
                 focal.sigmoid_focal_loss(X, targets, pos_weight=np.array(pos_weight), ignore_index=-1.0), 1e-12,
                 "pos_weight and ignore_index")


def test_keras_losses_take_ignore_index_and_where():
    keras = pytest.importorskip("keras")
    import focal.keras as fk

    targets = np.where(np.random.default_rng(9).random(Y.shape) < 0.2, -1.0, Y).astype("float32")
    probs = (1 / (1 + np.exp(-X))).astype("float32")
    value = float(keras.ops.convert_to_numpy(fk.SigmoidFocalLoss(ignore_index=-1.0)(targets, probs)))
    per_element = focal.sigmoid_focal_loss(probs.astype(np.float64), targets.astype(np.float64), ignore_index=-1.0,
                                           from_logits=False, reduction="none")
    kept = (targets != -1.0).sum(axis=-1)
    assert value == pytest.approx(float(np.mean(per_element.sum(-1) / np.maximum(kept, 1))), rel=1e-5)
    mask = [[True, True, True, False, True, True]]  # one class mask for every row (a 1-d mask is one per row)
    labels = np.where(LABELS == 3, 0, LABELS)
    value = float(keras.ops.convert_to_numpy(fk.SoftmaxFocalLoss(where=mask, from_logits=True)(labels, X)))
    assert value == pytest.approx(float(focal.softmax_focal_loss(X, labels, where=np.array(mask))), rel=1e-5)


def _masked_softmax_focal(z: np.ndarray, labels: np.ndarray, mask: np.ndarray, gamma: float, alpha: np.ndarray,
                          ignore: int | None) -> float:
    """optax's ``where`` written row by row in float64: the softmax over the classes the mask keeps, each row's
    ``−α_t (1 − p_t)^γ log p_t``, a row with no class kept or ``ignore_index`` 0 and out of the mean's count."""
    total, counted = 0.0, 0
    for row, label, keep in zip(z, labels, np.broadcast_to(mask, z.shape)):
        if not keep.any() or label == ignore:
            continue
        kept = row[keep]
        log_p = row[label] - (kept.max() + np.log(np.exp(kept - kept.max()).sum()))
        total += -alpha[label] * (-np.expm1(log_p)) ** gamma * log_p
        counted += 1
    return total / max(counted, 1)


@pytest.mark.parametrize("lib", LIBS, ids=lambda lib: lib.id)
def test_where_with_integer_labels_is_the_masked_softmax(lib):
    """Integer labels with ``where`` stay labels (the one-class-per-row kernel): the value against the masked
    softmax written row by row, the gradient against its central differences, for a mask per element (a row with a
    class out, a row with every class out, beside ``ignore_index``) and one class mask for every row."""
    rng = np.random.default_rng(17)
    z = rng.normal(size=(7, 5)) * 3
    alpha = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    elements = np.ones((7, 5), bool)
    elements[1, 2] = False
    elements[3] = False
    elements[4, [0, 1]] = False
    labels = np.array([0, 1, 4, 2, 3, 1, 0])
    for mask, ignore in [(elements, None), (elements, 1), (np.array([[True, True, False, True, True]]), None)]:
        rows = labels if mask.shape[0] > 1 else np.where(labels == 2, 3, labels)
        params = {"gamma": 1.5, "alpha": alpha, "ignore_index": ignore}
        expected = _masked_softmax_focal(z, rows, mask, 1.5, alpha, ignore)
        step, grad = 1e-6, np.zeros(z.shape)
        for index in np.ndindex(z.shape):
            bump = np.zeros(z.shape)
            bump[index] = step
            grad[index] = (_masked_softmax_focal(z + bump, rows, mask, 1.5, alpha, ignore)
                           - _masked_softmax_focal(z - bump, rows, mask, 1.5, alpha, ignore)) / (2 * step)
        x, t, where = lib.array(z), lib.array(rows), lib.array(mask)
        what = f"mask of shape {mask.shape}, ignore_index={ignore}"
        wide = "64" in str(x.dtype)  # JAX without x64 runs float32
        assert_close(lib.numpy(focal.softmax_focal_loss(x, t, where=where, **params)), expected,
                     1e-12 if wide else 1e-5, what)
        if lib.autodiff:
            got = lib.numpy(lib.grad(lambda v: focal.softmax_focal_loss(v, t, where=where, **params), x))
            assert_close(got, grad, 1e-7 if wide else 1e-4, f"{what}: gradient")
    with pytest.raises(ValueError, match="class index that where leaves out"):
        focal.softmax_focal_loss(lib.array(z), lib.array(np.where(labels == 1, 2, labels)), where=lib.array(elements))


def test_where_with_integer_labels_marks_a_left_out_label_nan_when_traced():
    """Under ``jax.jit`` a label ``where`` leaves out cannot raise: its row alone is NaN, with or without an
    ``ignore_index`` of -1 (the value the kernel would otherwise read as out of range)."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    z = jnp.asarray(np.random.default_rng(18).normal(size=(4, 3)), dtype=jnp.float32)
    mask = jnp.asarray([[True, True, True], [True, False, True], [False, False, False], [True, True, True]])
    labels = jnp.asarray([0, 1, 2, -1])
    for ignore in (None, -1):
        rows = np.asarray(jax.jit(lambda v, t: focal.softmax_focal_loss(
            v, t, where=mask, ignore_index=ignore, reduction="none"))(z, labels))
        assert np.isnan(rows[1]) and np.isfinite(rows[[0, 2]]).all() and rows[2] == 0.0, rows
        assert np.isnan(rows[3]) == (ignore is None), rows
