"""Ridge-regression predictors: linear, log-linear and quadratic in the weights.

``linear`` is the baseline every mixture predictor must beat. ``loglinear`` uses ``w`` and
``log(w + eps)`` together (a first-order mixing law: the loss moves with both the share and its
log). ``quadratic`` is MoDoMoDo's surrogate ``a + bᵀw + wᵀCw``. Features are standardised before
the ridge penalty so ``alpha`` means the same thing for every feature set; the intercept is not
shrunk.

``alpha="loo"`` chooses the penalty from a log grid by exact leave-one-out error, read off one
SVD of the features (the ridge hat matrix), so it costs about one fit. ``quadratic`` uses it by
default: it has m(m+1)/2 + m features, more than the trials of a small study, and the penalty
that suits 64 trials over-smooths 512 (on RegMix's 17 domains the fixed 1e-2 scored Spearman 75
at 128 trials, the chosen penalty about 85).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from mixopt.predictors.features import log_weights, pairwise_products

ALPHA_GRID = np.logspace(-5, 1, 13)


class _Ridge(RegressorMixin, BaseEstimator):
    """Ridge on standardised features; subclasses choose the features."""

    alpha: float | str

    def _features(self, X: np.ndarray) -> np.ndarray:
        return X

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Ridge:
        X, y = validate_data(self, X, y, y_numeric=True)
        F = self._features(X)
        self.mean_ = F.mean(axis=0)
        self.scale_ = np.where(F.std(axis=0) > 1e-12, F.std(axis=0), 1.0)
        Z = (F - self.mean_) / self.scale_  # (n, f)
        self.intercept_ = float(y.mean())
        if self.alpha == "loo":
            self.alpha_ = _loo_alpha(Z, y - self.intercept_)
        elif isinstance(self.alpha, int | float) and self.alpha >= 0:
            self.alpha_ = float(self.alpha)
        else:
            raise ValueError(f"alpha must be a number >= 0 or 'loo', got {self.alpha!r}")
        gram = Z.T @ Z + self.alpha_ * len(y) * np.eye(Z.shape[1])
        self.coef_ = np.linalg.solve(gram, Z.T @ (y - self.intercept_))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False)
        Z = (self._features(X) - self.mean_) / self.scale_
        return Z @ self.coef_ + self.intercept_


def _loo_alpha(Z: np.ndarray, r: np.ndarray) -> float:
    """The grid penalty with the least exact leave-one-out squared error of ridge on centred
    ``Z`` (n, f) and ``r`` (n,): residual_i / (1 - H_ii - 1/n), H = U diag(s²/(s² + λn)) Uᵀ (the
    1/n is the refitted mean)."""
    n = len(r)
    U, sv, _ = np.linalg.svd(Z, full_matrices=False)  # (n, q), (q,)
    Ur = U.T @ r  # (q,)
    best, best_err = float(ALPHA_GRID[0]), np.inf
    for alpha in ALPHA_GRID:
        shrink = sv**2 / (sv**2 + alpha * n)  # (q,)
        fitted = U @ (shrink * Ur)
        leverage = (U**2) @ shrink + 1.0 / n  # (n,)
        err = float(np.mean(((r - fitted) / np.maximum(1.0 - leverage, 1e-6)) ** 2))
        if err < best_err:
            best, best_err = float(alpha), err
    return best


class LinearPredictor(_Ridge):
    def __init__(self, alpha: float = 1e-4) -> None:
        self.alpha = alpha


class LogLinearPredictor(_Ridge):
    def __init__(self, alpha: float = 1e-3, eps: float = 1e-3) -> None:
        self.alpha = alpha
        self.eps = eps

    def _features(self, X: np.ndarray) -> np.ndarray:
        return np.hstack([X, log_weights(X, self.eps)])


class QuadraticPredictor(_Ridge):
    def __init__(self, alpha: float | str = "loo") -> None:
        self.alpha = alpha

    def _features(self, X: np.ndarray) -> np.ndarray:
        return np.hstack([X, pairwise_products(X)])
