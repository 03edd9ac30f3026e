"""``detach_modulator=True`` against the default under ``jax.jit(jax.value_and_grad(...))`` (32768 x 80 logits, 1%
positives, float32): the median of 40 pairwise time ratios, alternating the two, per loss."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import focal

LOSSES = ("sigmoid_focal_loss", "asymmetric_loss", "varifocal_loss")


def main() -> None:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(32768, 80)).astype(np.float32) * 2)
    y = jnp.asarray((rng.random((32768, 80)) < 0.01).astype(np.float32))
    steps = {}
    for loss in LOSSES:
        fn = getattr(focal, loss)
        for detach in (False, True):
            steps[loss, detach] = jax.jit(jax.value_and_grad(
                lambda v, fn=fn, detach=detach: fn(v, y, reduction="sum", detach_modulator=detach)))
            jax.block_until_ready(steps[loss, detach](x))
    print("| loss | detach / default (median of 40 pairs) |\n|---|---|")
    for loss in LOSSES:
        ratios = []
        for _ in range(40):
            times = []
            for detach in (False, True):
                start = time.perf_counter()
                jax.block_until_ready(steps[loss, detach](x))
                times.append(time.perf_counter() - start)
            ratios.append(times[1] / times[0])
        print(f"| {loss} | {np.median(ratios):.3f} |")


if __name__ == "__main__":
    main()
