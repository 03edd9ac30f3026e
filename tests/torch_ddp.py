"""DistributedDataParallel with gloo, 2 CPU processes: gradients equal one process on the full batch.

Two criteria: a softmax focal loss with "mean" over equal halves, and RetinaNet's sigmoid focal loss
divided by the number of positives, which the two halves hold unequally (3 and 1): with
``normalizer="num_positives", sync=True`` the count is the global one; without ``sync`` each process
divides by its own count, which is wrong, and the script reports by how much.

Run as a script by tests/test_torch_criteria.py (process groups and spawn do not belong in pytest's
own process). Prints one JSON line: per criterion the largest gradient difference and the losses.
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


def _batch(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 6, generator=gen, dtype=torch.float64)
    if kind == "softmax":
        return x, torch.randint(0, 4, (8,), generator=gen)
    targets = torch.zeros(8, 4, dtype=torch.float64)  # one-hot anchors: 3 positives in rows 0-3, 1 in 4-7
    targets[[0, 1, 3, 6], [2, 0, 1, 3]] = 1.0
    return x, targets


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)).double()


CRITERIA = {
    "softmax": lambda: ft.SoftmaxFocalLoss(gamma=2.0, alpha=[0.25, 0.5, 1.0, 2.0]),
    "retinanet": lambda: ft.SigmoidFocalLoss(reduction="sum", normalizer="num_positives", sync=True),
    "retinanet-unsynced": lambda: ft.SigmoidFocalLoss(reduction="sum", normalizer="num_positives"),
}


def _kind(name: str) -> str:
    return "softmax" if name == "softmax" else "sigmoid"


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    for name, make in CRITERIA.items():
        model = nn.parallel.DistributedDataParallel(_model())
        x, targets = _batch(_kind(name))
        half = slice(rank * 4, rank * 4 + 4)
        loss = make()(model(x[half]), targets[half])
        loss.backward()
        torch.save({"loss": loss.detach(), "grads": [p.grad for p in model.parameters()]},
                   os.path.join(out_dir, f"{name}-rank{rank}.pt"))
    dist.destroy_process_group()


def main() -> None:
    out_dir = tempfile.mkdtemp()
    mp.spawn(_worker, args=(os.path.join(out_dir, "init"), out_dir), nprocs=WORLD, join=True)
    out = {}
    for name in CRITERIA:
        model = _model()
        x, targets = _batch(_kind(name))
        loss = CRITERIA["softmax" if name == "softmax" else "retinanet"]()(model(x), targets)  # one process
        loss.backward()
        ranks = [torch.load(os.path.join(out_dir, f"{name}-rank{r}.pt")) for r in range(WORLD)]
        worst = max(float((g - p.grad).abs().max()) for r in ranks for g, p in zip(r["grads"], model.parameters()))
        out[name] = {"max_grad_difference": worst, "full_loss": float(loss.detach()),
                     "mean_of_rank_losses": sum(float(r["loss"]) for r in ranks) / WORLD,
                     "grad_norm": float(sum(p.grad.norm() ** 2 for p in model.parameters()) ** 0.5)}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
