"""focal.boosting: the second derivative against a 150-digit reference and finite differences, and
objectives that train XGBoost and LightGBM on an imbalanced data set."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, import_or_skip
from mp_reference import sigmoid_focal_split_derivatives

import focal
from focal.boosting import lightgbm_objective, sigmoid_focal_grad_hess, xgboost_objective

X = np.array([-100.0, -30.0, -8.0, -2.5, -0.3, 0.0, 0.7, 3.0, 12.0, 40.0, 100.0])
PARAMS = [(None, 0.0), (0.25, 2.0), (0.5, 0.5), (0.75, 5.0)]


@pytest.mark.parametrize("alpha,gamma", PARAMS)
@pytest.mark.parametrize("y", [0.0, 1.0, 0.3])
def test_derivatives_equal_a_150_digit_reference(alpha, gamma, y):
    grad, hess = sigmoid_focal_grad_hess(X, np.full_like(X, y), alpha=alpha, gamma=gamma)
    expected = np.array([sigmoid_focal_split_derivatives(x, y, alpha, gamma) for x in X])
    assert np.isfinite(grad).all() and np.isfinite(hess).all()
    for got, want, what in ((grad, expected[:, 0], "grad"), (hess, expected[:, 1], "hess")):
        # relative to each value, with a floor of 1e-13 of the largest: the focal hessian crosses 0
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13 * np.abs(want).max(), err_msg=what)


@pytest.mark.x64
def test_gradient_is_the_loss_gradient_and_hessian_the_gradients_slope(lib):
    x = np.linspace(-8.0, 8.0, 41)
    y = np.where(np.arange(41) % 3 == 0, 1.0, 0.0)
    grad, hess = sigmoid_focal_grad_hess(lib.array(x), lib.array(y), alpha=0.25, gamma=2.0)
    _, loss_grad = focal.value_and_grad(focal.sigmoid_focal_loss)(x, y, alpha=0.25, gamma=2.0, reduction="sum")
    assert_close(lib.numpy(grad), loss_grad, 1e-12, "grad")
    step = 1e-5
    slope = (sigmoid_focal_grad_hess(x + step, y)[0] - sigmoid_focal_grad_hess(x - step, y)[0]) / (2 * step)
    assert_close(lib.numpy(hess), slope, 1e-8, "hess vs central differences")


class _Dataset:
    """What XGBoost's DMatrix and LightGBM's Dataset show a custom objective."""

    def __init__(self, labels, weights=None):
        self.labels, self.weights = labels, weights

    def get_label(self):
        return self.labels

    def get_weight(self):
        return self.weights


def test_objectives_weigh_floor_and_take_both_calling_conventions():
    margins, labels = np.array([-9.0, 0.5, 2.0, 30.0]), np.array([1.0, 0.0, 1.0, 0.0])
    weights = np.array([1, 2, 3, 4.0])
    grad, hess = sigmoid_focal_grad_hess(margins, labels, alpha=0.25, gamma=2.0)
    assert hess[0] < 0  # a badly misclassified positive: the focal loss is concave there
    for make in (xgboost_objective, lightgbm_objective):
        g, h = make(min_hessian=1e-3)(margins, _Dataset(labels, weights))
        np.testing.assert_allclose(g, grad * weights, rtol=1e-15)
        np.testing.assert_allclose(h, np.maximum(hess, 1e-3) * weights, rtol=1e-15)
        g2, h2 = make(min_hessian=1e-3)(labels, margins)  # scikit-learn wrappers: (y_true, y_pred)
        np.testing.assert_allclose(g2, grad, rtol=1e-15)
        np.testing.assert_allclose(h2, np.maximum(hess, 1e-3), rtol=1e-15)
        with pytest.raises(ValueError, match=r"targets must be labels in \[0, 1\].*got 2"):
            make()(np.array([0.0, 2.0]), np.zeros(2))
        with pytest.raises(ValueError, match="binary.*shape \\(4, 3\\)"):
            make()(np.zeros(4), np.zeros((4, 3)))
        with pytest.raises(ValueError, match="gamma must be in"):
            make(gamma=-1.0)


def _digits():
    import_or_skip("sklearn")
    from focal.commands.demo import imbalanced_digits, minority_metrics

    return imbalanced_digits(), minority_metrics


def test_xgboost_focal_objective_at_gamma_0_is_binary_logistic_and_focal_trains():
    xgb = import_or_skip("xgboost")
    (x_tr, y_tr, x_te, y_te), metrics = _digits()
    train, test = xgb.DMatrix(x_tr, label=y_tr), xgb.DMatrix(x_te)
    params = {"max_depth": 3, "eta": 0.3, "nthread": 2}
    builtin = xgb.train({**params, "objective": "binary:logistic", "base_score": 0.5}, train, 20)
    ours = xgb.train({**params, "base_score": 0.0}, train, 20, obj=xgboost_objective(alpha=None, gamma=0.0,
                                                                                      min_hessian=0.0))
    np.testing.assert_allclose(ours.predict(test, output_margin=True), builtin.predict(test, output_margin=True),
                               atol=1e-5)
    focal_model = xgb.train({**params, "base_score": 0.0}, train, 50, obj=xgboost_objective())
    ap, _ = metrics(y_te, focal_model.predict(test, output_margin=True))
    # 16 held-out positives in 826: a random ranking has AP 0.02; these trees reach 0.5-0.65
    assert y_te.mean() < 0.03 and ap > 0.3, ap
    clf = xgb.XGBClassifier(n_estimators=50, max_depth=3, objective=xgboost_objective(), n_jobs=2)
    clf.fit(x_tr, y_tr)
    np.testing.assert_allclose(metrics(y_te, clf.predict(x_te, output_margin=True))[0], ap, atol=0.1)


def test_lightgbm_focal_objective_at_gamma_0_is_binary_and_focal_trains():
    lgb = import_or_skip("lightgbm")
    (x_tr, y_tr, x_te, y_te), metrics = _digits()
    params = {"num_leaves": 7, "verbose": -1, "num_threads": 2, "min_data_in_leaf": 5}
    builtin = lgb.train({**params, "objective": "binary", "boost_from_average": False}, lgb.Dataset(x_tr, y_tr), 20)
    ours = lgb.train({**params, "objective": lightgbm_objective(alpha=None, gamma=0.0, min_hessian=0.0)},
                     lgb.Dataset(x_tr, y_tr), 20)
    np.testing.assert_allclose(ours.predict(x_te), builtin.predict(x_te, raw_score=True), rtol=1e-9, atol=1e-9)
    focal_model = lgb.train({**params, "objective": lightgbm_objective()}, lgb.Dataset(x_tr, y_tr), 50)
    ap, _ = metrics(y_te, focal_model.predict(x_te))
    assert ap > 0.3, ap
