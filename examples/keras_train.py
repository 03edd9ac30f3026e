"""Keras 3, on any backend: an MLP on imbalanced digits (1 positive in 50), binary cross entropy
against focal.keras.SigmoidFocalLoss, passed to model.compile.

    KERAS_BACKEND=jax python examples/keras_train.py           # tensorflow (default), jax or torch
    python examples/keras_train.py --quick                     # 3 epochs, for the tests

Prints the minority class's average precision and recall on the held-out half for each loss.
"""

from __future__ import annotations

import argparse

import keras

import focal.keras as fk
from focal.commands.demo import imbalanced_digits, minority_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only")
    epochs = 3 if parser.parse_args().quick else 60
    x_train, y_train, x_test, y_test = imbalanced_digits()
    print(f"keras {keras.__version__} on {keras.backend.backend()}")
    for name, loss in [("cross entropy", keras.losses.BinaryCrossentropy(from_logits=True)),
                       ("focal gamma=2", fk.SigmoidFocalLoss(from_logits=True, gamma=2.0, alpha=None))]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(1)])  # logits: from_logits=True above
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
        model.fit(x_train, y_train[:, None], batch_size=128, epochs=epochs, verbose=0)
        ap, recall = minority_metrics(y_test, model.predict(x_test, verbose=0)[:, 0])
        print(f"loss: {name:<15} minority AP: {ap:.4f}  recall: {recall:.3f}")


if __name__ == "__main__":
    main()
