"""focal: every focal-loss variant, written once against the Python array API standard.

The same values and the same analytic gradients on NumPy, JAX, PyTorch and TensorFlow (and any
array-API library), on CPU and GPU. Importing ``focal`` imports no framework: a framework's glue is
loaded the first time one of its arrays is passed in.
"""

from ._detection import distribution_focal_loss, quality_focal_loss, varifocal_loss
from ._gamma import flsd53
from ._grad import value_and_grad
from ._multilabel import asymmetric_loss
from ._poly import poly1_cross_entropy, poly1_focal_loss
from ._seed import focal_loss_star, focal_loss_with_negatives, hard_truncated_loss, soft_truncated_loss
from ._sigmoid import sigmoid_focal_loss
from ._softmax import softmax_focal_loss
from ._tversky import focal_tversky_loss
from ._weights import class_balanced_alpha

__all__ = [
    "asymmetric_loss",
    "class_balanced_alpha",
    "distribution_focal_loss",
    "flsd53",
    "focal_loss_star",
    "focal_loss_with_negatives",
    "focal_tversky_loss",
    "hard_truncated_loss",
    "poly1_cross_entropy",
    "poly1_focal_loss",
    "quality_focal_loss",
    "sigmoid_focal_loss",
    "soft_truncated_loss",
    "softmax_focal_loss",
    "value_and_grad",
    "varifocal_loss",
]
__version__ = "0.2.0"
