"""focal: every focal-loss variant, written once against the Python array API standard.

The same values and the same analytic gradients on NumPy, JAX, PyTorch and TensorFlow (and any
array-API library), on CPU and GPU. Importing ``focal`` imports no framework: a framework's glue is
loaded the first time one of its arrays is passed in.
"""

from ._grad import value_and_grad
from ._sigmoid import sigmoid_focal_loss
from ._softmax import softmax_focal_loss

__all__ = ["sigmoid_focal_loss", "softmax_focal_loss", "value_and_grad"]
__version__ = "0.1.0"
