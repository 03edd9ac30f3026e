"""focal.keras on each Keras 3 backend: the same loss values, fit trains, save/load round-trips."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import import_or_skip, run_script

import focal


@pytest.fixture(scope="module")
def runs():
    pytest.importorskip("keras")
    return {backend: run_script("keras_fit.py", KERAS_BACKEND=backend) for backend in ("tensorflow", "jax", "torch")}


def test_same_values_on_every_keras_backend(runs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    labels = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 1).astype("int64")
    binary = (x[:, :3] > 0.5).astype("float32")
    logits = rng.normal(size=(5, 3)).astype("float32")
    softmax = focal.softmax_focal_loss(logits, labels[:5], gamma=2.0, alpha=[0.25, 0.5, 1.0])
    sigmoid = focal.sigmoid_focal_loss(logits, binary[:5], reduction="none").mean(-1).mean()
    for backend, run in runs.items():
        assert run["backend"] == backend
        assert run["softmax_value"] == pytest.approx(float(softmax), rel=1e-5), backend
        assert run["sigmoid_value"] == pytest.approx(float(sigmoid), rel=1e-5), backend


def test_every_class_equals_the_functional_loss(runs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    labels = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 1).astype("int64")
    binary = (x[:, :3] > 0.5).astype("float32")
    # the float32 inputs keras_fit.py draws, in float64
    logits = rng.normal(size=(5, 3)).astype("float32").astype("float64")
    distances = rng.uniform(0.0, 2.0, size=(5, 1)).astype("float32").astype("float64")
    labels, binary = labels[:5], binary[:5].astype("float64")

    def per_sample_mean(fn, **kw):
        return fn(logits, binary, reduction="none", **kw).mean(-1).mean()

    expected = {
        "HardTruncatedLoss": per_sample_mean(focal.hard_truncated_loss),
        "SoftTruncatedLoss": focal.soft_truncated_loss(logits, labels, activation="softmax", k=2.0),
        "Poly1FocalLoss": per_sample_mean(focal.poly1_focal_loss),
        "FocalLossStar": per_sample_mean(focal.focal_loss_star),
        "AsymmetricLoss": per_sample_mean(focal.asymmetric_loss),
        "FocalLossWithNegatives": focal.focal_loss_with_negatives(logits, labels),
        "Poly1CrossEntropy": focal.poly1_cross_entropy(logits, labels),
        "DistributionFocalLoss": focal.distribution_focal_loss(logits, distances[:, 0]),
        "FocalTverskyLoss": focal.focal_tversky_loss(logits, labels),
    }
    for backend, run in runs.items():
        assert run["values"].keys() == expected.keys()
        for name, value in expected.items():
            assert run["values"][name] == pytest.approx(float(value), rel=2e-5), (backend, name)


def test_mixed_float16_trains(runs):
    for backend, run in runs.items():
        losses = run["mixed_fit_losses"]
        assert run["mixed_output_dtype"] == "float16", backend
        assert all(np.isfinite(losses)) and losses[-1] < losses[0], (backend, losses)


def test_fit_trains_and_the_model_reloads(runs):
    for backend, run in runs.items():
        losses = run["fit_losses"]
        assert all(np.isfinite(losses)) and losses[-1] < losses[0], (backend, losses)
        assert run["restored_loss_class"] == "SoftmaxFocalLoss"
        assert run["evaluate_restored"] == pytest.approx(run["evaluate"], rel=1e-6), backend


def test_a_gamma_schedule_by_callback_without_retracing():
    """``variables=["gamma"]``: a LambdaCallback assigns each epoch's gamma; the losses are the focal
    losses of the (fixed) predictions at those gammas; TensorFlow and JAX trace the train step once (the
    loss's Python code runs no more after the first epoch), torch runs it eagerly each step; the saved
    model reloads with the variable at its last value."""
    pytest.importorskip("keras")
    for backend in ("tensorflow", "jax", "torch"):
        run = run_script("keras_schedule.py", KERAS_BACKEND=backend)
        predictions, labels = np.asarray(run["predictions"]), np.asarray(run["labels"])
        expected = [float(focal.softmax_focal_loss(predictions, labels, gamma=g, alpha=[0.5, 1.0, 2.0],
                                                   from_logits=False)) for g in run["schedule"]]
        np.testing.assert_allclose(run["losses"], expected, rtol=2e-5, err_msg=backend)
        calls = run["loss_calls_after_each_epoch"]
        if backend != "torch":
            assert calls == [calls[0]] * len(calls), (backend, calls)
        assert run["restored_gamma"] == run["schedule"][-1] and run["restored_gamma_is_variable"], backend
        assert run["evaluate_restored"] == pytest.approx(run["evaluate"], rel=1e-6), backend


def test_get_config_round_trip():
    import focal.keras as fk

    loss = fk.SoftmaxFocalLoss(gamma=1.5, alpha=[0.2, 0.8], label_smoothing=0.1)
    config = loss.get_config()
    assert config["gamma"] == 1.5 and config["alpha"] == [0.2, 0.8] and config["from_logits"] is False
    clone = fk.SoftmaxFocalLoss.from_config(config)
    assert clone.get_config() == config
    with pytest.raises(TypeError, match="unexpected parameters.*'gama'"):
        fk.SoftmaxFocalLoss(gama=2.0)


def test_mixed_float16_extreme_logits_give_finite_float32_losses(runs):
    for backend, run in runs.items():
        for name, (value, dtype) in run["mixed_extreme_values"].items():
            assert np.isfinite(value) and dtype == "float32", (backend, name, value, dtype)


def test_mirrored_strategy_on_two_cpus_fits_as_one_device():
    import_or_skip("tensorflow")
    run = run_script("keras_mirrored.py")
    assert run["replicas"] == 2
    for name in ("SoftmaxFocalLoss", "SigmoidFocalLoss"):
        np.testing.assert_allclose(run[name]["mirrored"], run[name]["one_device"], rtol=1e-6, err_msg=name)
        assert run[name]["one_device"][-1] < run[name]["one_device"][0], name  # it trained
        assert run[name]["max_weight_difference"] < 1e-6, name  # float32 rounding of the replica sum


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_fused_output_layer_trains_and_reloads(backend):
    """``focal.keras.LinearSoftmaxFocalLoss``, the output layer and its loss in one (a model compiled without a loss):
    its value equals the functional fused loss and the unfused loss of its logits, fit lowers it, and the model saves
    and loads back with it."""
    import_or_skip("keras")
    import_or_skip(backend)
    run = run_script("keras_linear.py", KERAS_BACKEND=backend)
    assert run["backend"] == backend
    assert run["layer_value"] == pytest.approx(run["numpy_value"], rel=1e-5)
    assert run["unfused_value"] == pytest.approx(run["numpy_value"], rel=1e-6)
    assert run["fit_losses"][-1] < run["fit_losses"][0]
    assert run["restored_head"] == "LinearSoftmaxFocalLoss"
    assert run["evaluate_restored"] == pytest.approx(run["evaluate"], rel=1e-5)


@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow"])
def test_second_derivatives_on_every_keras_backend(backend):
    """Every focal.keras loss's Hessian through the backend's own second-order route (jax.hessian; PyTorch's double
    backward and torch.func.hessian; TensorFlow's nested tapes) equals central differences of its first derivative,
    at saturated, tied and moderate logits, float64 (tests/keras_second_order.py): never a silent zero."""
    import_or_skip("keras")
    import_or_skip(backend)
    run = run_script("keras_second_order.py", KERAS_BACKEND=backend, JAX_ENABLE_X64="1")
    assert run["backend"] == backend and run["failures"] == []
    routes = 2 if backend == "torch" else 1
    assert len(run["errors"]) == 14 * routes, sorted(run["errors"])
    assert max(run["errors"].values()) < 1e-6, run["errors"]
