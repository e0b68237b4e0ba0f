"""Ridge-regression predictors: linear, log-linear and quadratic in the weights.

``linear`` is the baseline every mixture predictor must beat. ``loglinear`` uses ``w`` and
``log(w + eps)`` together (a first-order mixing law: the loss moves with both the share and its
log). ``quadratic`` is MoDoMoDo's surrogate ``a + bᵀw + wᵀCw``. Features are standardised before
the ridge penalty so ``alpha`` means the same thing for every feature set; the intercept is not
shrunk.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from mixopt.predictors.features import log_weights, pairwise_products


class _Ridge(RegressorMixin, BaseEstimator):
    """Ridge on standardised features; subclasses choose the features."""

    alpha: float

    def _features(self, X: np.ndarray) -> np.ndarray:
        return X

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Ridge:
        X, y = validate_data(self, X, y, y_numeric=True)
        F = self._features(X)
        self.mean_ = F.mean(axis=0)
        self.scale_ = np.where(F.std(axis=0) > 1e-12, F.std(axis=0), 1.0)
        Z = (F - self.mean_) / self.scale_  # (n, f)
        self.intercept_ = float(y.mean())
        gram = Z.T @ Z + self.alpha * len(y) * np.eye(Z.shape[1])
        self.coef_ = np.linalg.solve(gram, Z.T @ (y - self.intercept_))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False)
        Z = (self._features(X) - self.mean_) / self.scale_
        return Z @ self.coef_ + self.intercept_


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
    def __init__(self, alpha: float = 1e-2) -> None:
        self.alpha = alpha

    def _features(self, X: np.ndarray) -> np.ndarray:
        return np.hstack([X, pairwise_products(X)])
