"""Gradient-boosted trees: XGBoost (and LightGBM, if installed) on imbalanced digits (1 positive in
50), the built-in logistic objective against focal.boosting's focal objective (analytic gradient
and second derivative).

    python examples/xgboost_train.py            # 200 rounds
    python examples/xgboost_train.py --quick    # 20 rounds, for the tests

Prints the minority class's average precision and recall on the held-out half for each objective.
"""

from __future__ import annotations

import argparse

import xgboost as xgb

from focal.boosting import lightgbm_objective, xgboost_objective
from focal.commands.demo import imbalanced_digits, minority_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds only")
    rounds = 20 if parser.parse_args().quick else 200
    x_train, y_train, x_test, y_test = imbalanced_digits()
    train, test = xgb.DMatrix(x_train, label=y_train), xgb.DMatrix(x_test)
    params = {"max_depth": 3, "eta": 0.1, "nthread": 2}
    runs = [("xgboost logistic", {**params, "objective": "binary:logistic"}, None),
            # with a custom objective the model predicts margins, from base_score 0
            ("xgboost focal", {**params, "base_score": 0.0}, xgboost_objective(gamma=2.0, alpha=None))]
    for name, booster_params, objective in runs:
        booster = xgb.train(booster_params, train, rounds, obj=objective)
        ap, recall = minority_metrics(y_test, booster.predict(test, output_margin=True))
        print(f"loss: {name:<17} minority AP: {ap:.4f}  recall: {recall:.3f}")
    try:
        import lightgbm as lgb
    except ImportError:
        return
    params = {"num_leaves": 7, "learning_rate": 0.1, "verbose": -1, "num_threads": 2}
    objectives = [("lightgbm binary", "binary"), ("lightgbm focal", lightgbm_objective(gamma=2.0, alpha=None))]
    for name, objective in objectives:
        booster = lgb.train({**params, "objective": objective}, lgb.Dataset(x_train, y_train), rounds)
        scores = booster.predict(x_test, raw_score=True)  # margins for both objectives
        ap, recall = minority_metrics(y_test, scores)
        print(f"loss: {name:<17} minority AP: {ap:.4f}  recall: {recall:.3f}")


if __name__ == "__main__":
    main()
