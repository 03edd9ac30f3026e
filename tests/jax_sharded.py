"""Sharded inputs under jax.jit and shard_map, on 4 host CPU devices: the same loss and gradient as unsharded.

Run as a script by tests/test_frameworks.py: the device count is fixed when JAX starts, so it needs
its own process. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

import focal  # noqa: E402

jax.config.update("jax_enable_x64", True)
rng = np.random.default_rng(0)
logits = rng.normal(size=(64, 10)) * 3.0
labels = rng.integers(0, 10, size=64)
binary = (rng.random((64, 10)) < 0.1).astype(np.float64)

mesh = Mesh(np.array(jax.devices()), ("batch",))
rows = NamedSharding(mesh, PartitionSpec("batch"))


def losses(x, y, b):
    return (focal.softmax_focal_loss(x, y, gamma=2.0, alpha=[0.5] * 10)
            + focal.sigmoid_focal_loss(x, b, normalizer=jnp.maximum(jnp.sum(b), 1.0)))


step = jax.jit(jax.value_and_grad(losses))
value, grad = step(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(binary))
sharded_value, sharded_grad = step(jax.device_put(logits, rows), jax.device_put(labels, rows),
                                   jax.device_put(binary, rows))


def per_shard(x, b):
    """RetinaNet's normalizer is the global number of positives: psum it over the mesh, then psum the losses."""
    positives = jax.lax.psum(jnp.sum(b), "batch")
    local = focal.sigmoid_focal_loss(x, b, reduction="sum", normalizer=jnp.maximum(positives, 1.0))
    return jax.lax.psum(local, "batch")


def whole(x, b):
    return focal.sigmoid_focal_loss(x, b, reduction="sum", normalizer=jnp.maximum(jnp.sum(b), 1.0))


mapped = jax.jit(jax.value_and_grad(jax.shard_map(per_shard, mesh=mesh, in_specs=(PartitionSpec("batch"),) * 2,
                                                  out_specs=PartitionSpec())))
mapped_value, mapped_grad = mapped(jax.device_put(logits, rows), jax.device_put(binary, rows))
whole_value, whole_grad = jax.jit(jax.value_and_grad(whole))(jnp.asarray(logits), jnp.asarray(binary))

out = {
    "shard_map_value": float(mapped_value), "whole_value": float(whole_value),
    "shard_map_grad_difference": float(jnp.max(jnp.abs(mapped_grad - whole_grad))),
    "whole_grad_scale": float(jnp.max(jnp.abs(whole_grad))),
    "devices": len(jax.devices()),
    "grad_shards": len(sharded_grad.addressable_shards),
    "grad_sharding_is_rows": sharded_grad.sharding.is_equivalent_to(rows, 2),
    "value": float(value), "sharded_value": float(sharded_value),
    "max_grad_difference": float(jnp.max(jnp.abs(sharded_grad - grad))), "grad_scale": float(jnp.max(jnp.abs(grad))),
}
sys.stdout.write(json.dumps(out) + "\n")
