"""Feature maps of mixture weights shared by several predictors.

Mixing laws are exponential in the weights and losses fall roughly with the log of a domain's
share, so ``log(w + eps)``, rescaled to [0, 1], is the natural coordinate: it spreads out the
small weights where most of the effect lives, and keeps zero weights finite.
"""

from __future__ import annotations

import numpy as np

LOG_EPS = 1e-3


def log_weights(X: np.ndarray, eps: float = LOG_EPS) -> np.ndarray:
    """``(log(w + eps) - log eps) / (log(1 + eps) - log eps)``: 0 at w = 0, 1 at w = 1."""
    return (np.log(X + eps) - np.log(eps)) / (np.log1p(eps) - np.log(eps))


def pairwise_products(X: np.ndarray) -> np.ndarray:
    """The upper triangle (with diagonal) of ``w wᵀ`` per row: (n, m(m+1)/2)."""
    rows, cols = np.triu_indices(X.shape[1])
    return X[:, rows] * X[:, cols]
