"""DistributedDataParallel with gloo, 2 CPU processes: gradients equal one process on the full batch.

Run as a script by tests/test_torch_criteria.py (process groups and spawn do not belong in pytest's
own process). Prints one JSON line: the largest gradient difference and the two losses.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import focal.torch as ft

WORLD = 2


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (8,), generator=gen)
    return x, labels


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)).double()


def _criterion() -> nn.Module:
    return ft.SoftmaxFocalLoss(gamma=2.0, alpha=[0.25, 0.5, 1.0, 2.0])


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    model = nn.parallel.DistributedDataParallel(_model())
    x, labels = _batch()
    half = slice(rank * 4, rank * 4 + 4)
    loss = _criterion()(model(x[half]), labels[half])  # "mean" over equal halves: DDP's average is the full mean
    loss.backward()
    torch.save({"loss": loss.detach(), "grads": [p.grad for p in model.parameters()]},
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def main() -> None:
    out_dir = tempfile.mkdtemp()
    mp.spawn(_worker, args=(os.path.join(out_dir, "init"), out_dir), nprocs=WORLD, join=True)
    model = _model()
    x, labels = _batch()
    loss = _criterion()(model(x), labels)
    loss.backward()
    ranks = [torch.load(os.path.join(out_dir, f"rank{r}.pt")) for r in range(WORLD)]
    worst = max(float((g - p.grad).abs().max()) for r in ranks for g, p in zip(r["grads"], model.parameters()))
    sys.stdout.write(json.dumps({"max_grad_difference": worst, "full_loss": float(loss.detach()),
                                 "mean_of_rank_losses": sum(float(r["loss"]) for r in ranks) / WORLD,
                                 "grad_norm": float(sum(p.grad.norm() ** 2 for p in model.parameters()) ** 0.5)})
                     + "\n")


if __name__ == "__main__":
    main()
