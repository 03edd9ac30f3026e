"""Which targets each focal.keras loss class takes (the Keras scripts' shared table)."""

from __future__ import annotations

SIGMOID = {"SigmoidFocalLoss", "FocalLossStar", "AsymmetricLoss", "QualityFocalLoss", "VarifocalLoss",
           "HardTruncatedLoss", "SoftTruncatedLoss", "Poly1FocalLoss"}


def kind(name: str) -> str:
    """``sigmoid`` (a 0/1 or soft target per logit), ``distances`` (DFL) or ``labels``."""
    return "sigmoid" if name in SIGMOID else "distances" if name.startswith("Distribution") else "labels"
