"""JAX + Flax (nnx) + optax: an MLP on imbalanced digits (1 positive in 50), optax's sigmoid cross
entropy against focal.sigmoid_focal_loss, each a per-example loss (reduction="none") averaged in a
jitted training step.

    python examples/flax_train.py            # 300 steps
    python examples/flax_train.py --quick    # 20 steps, for the tests

Prints the minority class's average precision and recall on the held-out half for each loss.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import focal
from focal.commands.demo import imbalanced_digits, minority_metrics


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(64, 32, rngs=rngs)
        self.out = nnx.Linear(32, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(nnx.relu(self.hidden(x)))[:, 0]


def train(per_example: Callable[[jax.Array, jax.Array], jax.Array], steps: int) -> np.ndarray:
    x_train, y_train, x_test, _ = (jnp.asarray(a, dtype=jnp.float32) for a in imbalanced_digits())
    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model: MLP, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
        def loss_fn(model: MLP) -> Any:
            return jnp.mean(per_example(model(x), y))

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    for _ in range(steps):
        step(model, optimizer, x_train, y_train)
    return np.asarray(model(x_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only")
    steps = 20 if parser.parse_args().quick else 300
    y_test = imbalanced_digits()[3]
    for name, per_example in [
        ("cross entropy", optax.sigmoid_binary_cross_entropy),
        ("focal gamma=2", lambda x, y: focal.sigmoid_focal_loss(x, y, gamma=2.0, alpha=None, reduction="none")),
    ]:
        ap, recall = minority_metrics(y_test, train(per_example, steps))
        print(f"loss: {name:<15} minority AP: {ap:.4f}  recall: {recall:.3f}")


if __name__ == "__main__":
    main()
