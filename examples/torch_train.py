"""PyTorch: an MLP on imbalanced digits (1 positive in 50), nn.BCEWithLogitsLoss against focal.torch.

    python examples/torch_train.py            # 60 epochs
    python examples/torch_train.py --quick    # 5 epochs, for the tests

Prints the minority class's average precision and recall on the held-out half for each loss.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import focal.torch as ft
from focal.commands.demo import imbalanced_digits, minority_metrics


def train(criterion: nn.Module, epochs: int) -> torch.Tensor:
    x_train, y_train, x_test, _ = (torch.as_tensor(a, dtype=torch.float32) for a in imbalanced_digits())
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batches = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train[:, None]),
                                          batch_size=128, shuffle=True, generator=torch.Generator().manual_seed(0))
    for _ in range(epochs):
        for x, y in batches:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
    with torch.no_grad():
        return model(x_test)[:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs only")
    epochs = 5 if parser.parse_args().quick else 60
    y_test = imbalanced_digits()[3]
    # focal.torch criteria take (input, target) like nn.BCEWithLogitsLoss; the class axis is 1
    for name, criterion in [("cross entropy", nn.BCEWithLogitsLoss()),
                            ("focal gamma=2", ft.SigmoidFocalLoss(gamma=2.0, alpha=None))]:
        ap, recall = minority_metrics(y_test, train(criterion, epochs).numpy())
        print(f"loss: {name:<15} minority AP: {ap:.4f}  recall: {recall:.3f}")


if __name__ == "__main__":
    main()
