"""Each framework's own transforms over the core's gradient: jax.hessian/vmap, torch.func, tf.function."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, run_script
from libs import LIBS

import focal

RNG = np.random.default_rng(11)
X = RNG.normal(size=(3, 4)) * 2
Y = (RNG.random((3, 4)) > 0.5).astype(np.float64)
LABELS = np.array([1, 3, 0])
LOSSES = [(focal.sigmoid_focal_loss, Y, {"gamma": 2.0}),
          (focal.softmax_focal_loss, LABELS, {"gamma": 2.0, "alpha": 0.5})]
IDS = ["sigmoid", "softmax"]


def _fd_hessian(fn, t, params):
    """Central differences of the core's gradient (NumPy, float64)."""
    step = 1e-6
    vg = focal.value_and_grad(fn)
    h = np.zeros(X.shape + X.shape)
    for i in np.ndindex(X.shape):
        bump = np.zeros(X.shape)
        bump[i] = step
        h[(slice(None),) * 0 + i] = (vg(X + bump, t, **params)[1] - vg(X - bump, t, **params)[1]) / (2 * step)
    return h


def _libs(name):
    return [lib for lib in LIBS if lib.name == name]


@pytest.mark.x64
@pytest.mark.parametrize("fn,t,params", LOSSES, ids=IDS)
@pytest.mark.parametrize("lib", _libs("jax"), ids=lambda lib: lib.id)
def test_jax_hessian_vmap_jit(lib, fn, t, params):
    jax, jnp = lib.jax, lib.jnp
    x, targets = lib.array(X), lib.array(t)
    hessian = jax.hessian(lambda v: fn(v, targets, **params))(x)
    assert_close(np.asarray(hessian).reshape(X.shape + X.shape), _fd_hessian(fn, t, params), 1e-6, "hessian")
    forward = jax.jacfwd(lambda v: fn(v, targets, **params))(x)
    reverse = jax.grad(lambda v: fn(v, targets, **params))(x)
    assert_close(np.asarray(forward), np.asarray(reverse), 1e-12, "jacfwd == grad")
    per_example = jax.vmap(lambda v, y: fn(v[None], y[None], reduction="sum", **params))(x, targets)
    whole = fn(x, targets, reduction="none", **params)
    whole = whole.sum(axis=-1) if fn is focal.sigmoid_focal_loss else whole
    assert_close(np.asarray(per_example), np.asarray(whole), 1e-12, "vmap")
    grad_jit = jax.jit(jax.grad(lambda v: fn(v, targets, **params)))(x)
    assert_close(np.asarray(grad_jit), np.asarray(reverse), 1e-12, "jit(grad)")
    value = jax.jit(lambda v: fn(v, targets, **params))(x)
    assert value.dtype == jnp.float64


@pytest.mark.x64
@pytest.mark.parametrize("lib", _libs("jax"), ids=lambda lib: lib.id)
def test_jax_compiles_once_for_the_same_shapes(lib):
    jax = lib.jax
    traces = {"step": 0, "binary": 0}

    def step_loss(v, y):
        traces["step"] += 1  # Python runs only while JAX traces: the count of traces (each one a compile)
        return focal.softmax_focal_loss(v, y, gamma=2.0, alpha=[0.2, 0.3, 0.4, 0.5])

    def binary_loss(v, y):
        traces["binary"] += 1
        return focal.sigmoid_focal_loss(v, y, normalizer=jax.numpy.sum(y))

    step, binary = jax.jit(jax.value_and_grad(step_loss)), jax.jit(jax.grad(binary_loss))
    for shift in range(3):
        step(lib.array(X + shift), lib.array((LABELS + shift) % 4))
        binary(lib.array(X * shift), lib.array(Y))
    assert traces == {"step": 1, "binary": 1}


@pytest.mark.x64
@pytest.mark.parametrize("lib", [lib for lib in LIBS if lib.name in ("jax", "tensorflow")], ids=lambda lib: lib.id)
def test_a_traced_hyperparameter_is_read_when_the_function_runs(lib):
    """gamma as an argument of ``jax.jit`` / ``tf.function``: one trace serves every value."""
    x, y = lib.array(X), lib.array(Y)
    traces = []

    def loss(v, t, g):
        traces.append(g)  # Python runs only while tracing
        return focal.sigmoid_focal_loss(v, t, gamma=g)

    traced = lib.jax.jit(loss) if lib.name == "jax" else lib.xp.function(loss, autograph=False)
    for gamma in (2.0, 0.5, 3.0):
        assert_close(np.asarray(traced(x, y, lib.array(np.asarray(gamma)))),
                     np.asarray(focal.sigmoid_focal_loss(X, Y, gamma=gamma)), 1e-12, f"gamma={gamma}")
    assert len(traces) == 1
    # a concrete 0-d array gives what the number gives
    assert_close(np.asarray(focal.sigmoid_focal_loss(x, y, alpha=lib.array(np.asarray(0.5)), gamma=lib.array(
        np.asarray(1.0)))), np.asarray(focal.sigmoid_focal_loss(X, Y, alpha=0.5, gamma=1.0)), 1e-12, "0-d array")


def test_jax_sharded_inputs_under_jit_and_shard_map_equal_unsharded():
    pytest.importorskip("jax")
    run = run_script("jax_sharded.py", JAX_PLATFORMS="cpu")
    assert run["devices"] == 4 and run["grad_shards"] == 4 and run["grad_sharding_is_rows"]
    assert run["sharded_value"] == pytest.approx(run["value"], rel=1e-13)
    assert run["max_grad_difference"] <= 1e-13 * run["grad_scale"]
    # shard_map, the RetinaNet normalizer (number of positives) psum-ed over the mesh
    assert run["shard_map_value"] == pytest.approx(run["whole_value"], rel=1e-13)
    assert run["whole_grad_scale"] > 0 and run["shard_map_grad_difference"] <= 1e-13 * run["whole_grad_scale"]


@pytest.mark.parametrize("fn,t,params", LOSSES, ids=IDS)
@pytest.mark.parametrize("lib", _libs("torch"), ids=lambda lib: lib.id)
def test_torch_func_grad_and_vmap(lib, fn, t, params):
    torch = lib.xp
    x, targets = lib.array(X), lib.array(t)
    expected = focal.value_and_grad(fn)(X, t, **params)[1]
    assert_close(lib.numpy(torch.func.grad(lambda v: fn(v, targets, **params))(x)), expected, 1e-12, "func.grad")
    x_leaf = x.clone().requires_grad_(True)
    fn(x_leaf, targets, **params).backward()
    assert_close(lib.numpy(x_leaf.grad), expected, 1e-12, "backward")
    per_example = torch.func.vmap(lambda v, y: fn(v[None], y[None], reduction="sum", **params))(x, targets)
    whole = fn(x, targets, reduction="none", **params)
    whole = whole.sum(dim=-1) if fn is focal.sigmoid_focal_loss else whole
    assert_close(lib.numpy(per_example), lib.numpy(whole), 1e-12, "vmap")


@pytest.mark.parametrize("fn,t,params", LOSSES, ids=IDS)
@pytest.mark.parametrize("lib", _libs("tensorflow"), ids=lambda lib: lib.id)
def test_tensorflow_tape_eager_and_in_function(lib, fn, t, params):
    tf = lib.xp
    x, targets = lib.array(X), lib.array(t)
    expected = focal.value_and_grad(fn)(X, t, **params)[1]

    def value_and_tape_grad(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            loss = fn(v, targets, **params)
        return loss, tape.gradient(loss, v)

    for mode, run in [("eager", value_and_tape_grad), ("tf.function", tf.function(value_and_tape_grad))]:
        _, grad = run(x)
        assert_close(lib.numpy(grad), expected, 1e-12, mode)
    variable = tf.Variable(X)
    with tf.GradientTape() as tape:
        loss = fn(variable, targets, **params)
    assert_close(lib.numpy(tape.gradient(loss, variable)), expected, 1e-12, "tf.Variable")


FULLGRAPH = [
    (focal.sigmoid_focal_loss, "binary", {"gamma": 0.5}),
    (focal.sigmoid_focal_loss, "binary", {"form": "split", "gamma": focal.flsd53}),
    (focal.softmax_focal_loss, "labels", {"alpha": 0.5, "ignore_index": 2}),
    (focal.softmax_focal_loss, "labels", {"gamma": 0.5, "label_smoothing": 0.1}),
    (focal.softmax_focal_loss, "labels", {"alpha": [0.25, 0.5, 1.0, 2.0], "ignore_index": 2}),
    (focal.softmax_focal_loss, "labels", {"gamma": [1.0, 2.0, 0.5, 0.0], "label_smoothing": 0.1}),
    (focal.softmax_focal_loss, "labels", {"normalized": True}),
    (focal.focal_loss_with_negatives, "labels", {}),
    (focal.focal_tversky_loss, "labels", {}),
    (focal.asymmetric_loss, "binary", {}),
    (focal.distribution_focal_loss, "distance", {}),
]


@pytest.mark.parametrize("index", range(len(FULLGRAPH)))
@pytest.mark.parametrize("lib", _libs("torch"), ids=lambda lib: lib.id)
def test_torch_compile_fullgraph(lib, index):
    """``torch.compile(fullgraph=True)`` traces the loss and its backward without a graph break."""
    torch = lib.xp
    fn, kind, params = FULLGRAPH[index]
    t = {"binary": Y, "labels": LABELS, "distance": np.array([0.5, 2.25, 3.0])}[kind]
    x, targets = lib.array(X), lib.array(t)
    torch._dynamo.reset()
    compiled = torch.compile(lambda v: fn(v, targets, **params), fullgraph=True)
    leaf = x.clone().requires_grad_(True)
    compiled(leaf).backward()
    expected_value, expected_grad = focal.value_and_grad(fn)(X, t, **params)
    assert_close(lib.numpy(compiled(x)), expected_value, 1e-12, "value")
    assert_close(lib.numpy(leaf.grad), expected_grad, 1e-12, "grad")


@pytest.mark.parametrize("lib", _libs("torch"), ids=lambda lib: lib.id)
def test_torch_compile_is_not_recompiled_by_calls_on_other_arrays(lib):
    """Finding the backend reads nothing that a call on another library's arrays changes: a NumPy call
    between two compiled calls recompiles nothing (dynamo guarded on focal's cache of array types)."""
    torch = lib.xp
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    targets = lib.array(Y)
    step = torch.compile(lambda v: focal.sigmoid_focal_loss(v, targets), fullgraph=True, backend=counter)
    first = step(lib.array(X))
    focal.sigmoid_focal_loss(X.astype(np.float32), Y.astype(np.float32))  # a new array type for focal
    second = step(lib.array(X))
    assert counter.frame_count == 1
    assert_close(lib.numpy(second), lib.numpy(first), 1e-15, "same value")
