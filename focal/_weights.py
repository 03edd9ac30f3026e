"""Class-balanced weights (Cui et al., 2019), to pass as a per-class ``alpha``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

from . import _checks
from ._docs import document
from .backends import backend_for
from .backends._base import Array


@document
def class_balanced_alpha(counts: Sequence[float] | Array, *, beta: float = 0.9999) -> Array:
    r"""Per-class weights from the effective number of samples (Cui et al., CVPR 2019).

    .. math::

        w_c = \frac{1-\beta}{1-\beta^{n_c}},\qquad \text{normalised so that } \sum_c w_c = C

    Args:
        counts: samples per class, ``n_c ≥ 1``: a sequence (gives a NumPy array) or an array of any
            supported library (gives one of the same library and device). A count below 1 is a ``ValueError``
            where values are read; where they are not (traced, or on an accelerator: :func:`focal.set_value_checks`)
            the weights come out NaN (the normalisation sums them all).
        beta: in [0, 1); 0 gives uniform weights, ``β → 1`` inverse-frequency ones. Default 0.9999.

    Returns:
        A floating array of length C, to pass as ``alpha=`` to the softmax losses.

    References:
        Cui, Jia, Lin, Song, Belongie. Class-Balanced Loss Based on Effective Number of Samples. CVPR 2019.
    """
    beta = _checks.check_number("beta", beta, low=0.0, high=1.0, high_open=True)
    if isinstance(counts, (list, tuple)):
        import numpy as np

        counts = np.asarray(counts, dtype=np.float64)
    counts = cast(Array, counts)
    backend = backend_for(counts)
    xp = backend.xp
    if counts.ndim != 1 or counts.shape[0] == 0:
        raise ValueError(f"counts must be a non-empty 1-d array of samples per class, got shape {tuple(counts.shape)}")
    n = counts if xp.isdtype(counts.dtype, "real floating") else xp.astype(counts, xp.float64)
    # as a loss's checks: read where that costs no device synchronisation, else NaN
    if not backend.reads_values(n):
        n = xp.where(n >= 1.0, n, math.nan)
    elif not bool(xp.all(n >= 1.0)):
        raise ValueError(f"counts must be >= 1 for every class, got min {float(xp.min(n))}")
    effective = -xp.expm1(n * math.log(beta)) if beta > 0.0 else xp.ones_like(n)
    w = (1.0 - beta) / effective if beta > 0.0 else effective
    return w * (n.shape[0] / xp.sum(w))
