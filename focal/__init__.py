"""focal: every focal-loss variant, written once against the Python array API standard.

The same values and the same analytic gradients on NumPy, JAX, PyTorch and TensorFlow (and any
array-API library), on CPU and GPU. Importing ``focal`` imports no framework: a framework's glue is
loaded the first time one of its arrays is passed in, and the framework faces (``focal.torch``,
``focal.keras``, ``focal.boosting``) the first time they are used.
"""

import importlib as _importlib
from typing import Any as _Any

from ._asymmetric_softmax import softmax_asymmetric_loss
from ._detection import distribution_focal_loss, quality_focal_loss, varifocal_loss
from ._gamma import flsd53
from ._grad import value_and_grad
from ._linear_losses import linear_sigmoid_focal_loss, linear_softmax_focal_loss
from ._multilabel import asymmetric_loss
from ._poly import poly1_cross_entropy, poly1_focal_loss
from ._seed import focal_loss_star, focal_loss_with_negatives, hard_truncated_loss, soft_truncated_loss
from ._sigmoid import sigmoid_focal_loss
from ._softmax import softmax_focal_loss
from ._tversky import focal_tversky_loss
from ._value_checks import get_value_checks, set_value_checks
from ._weights import class_balanced_alpha

__all__ = [
    "asymmetric_loss",
    "class_balanced_alpha",
    "distribution_focal_loss",
    "flsd53",
    "focal_loss_star",
    "focal_loss_with_negatives",
    "focal_tversky_loss",
    "get_value_checks",
    "hard_truncated_loss",
    "linear_sigmoid_focal_loss",
    "linear_softmax_focal_loss",
    "poly1_cross_entropy",
    "poly1_focal_loss",
    "quality_focal_loss",
    "set_value_checks",
    "sigmoid_focal_loss",
    "soft_truncated_loss",
    "softmax_asymmetric_loss",
    "softmax_focal_loss",
    "value_and_grad",
    "varifocal_loss",
]
__version__ = "0.2.0"

# the framework faces, imported on first use: `import focal` then `focal.torch.SigmoidFocalLoss(...)` works
_SUBMODULES = ("torch", "keras", "boosting")


def __getattr__(name: str) -> _Any:
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
