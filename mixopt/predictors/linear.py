"""Ridge regression on the raw weights: the baseline every mixture predictor must beat."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class LinearPredictor(RegressorMixin, BaseEstimator):
    def __init__(self, alpha: float = 1e-3) -> None:
        self.alpha = alpha

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinearPredictor:
        X, y = validate_data(self, X, y, y_numeric=True)
        design = np.hstack([X, np.ones((X.shape[0], 1))])  # (n, m + 1)
        penalty = self.alpha * np.eye(design.shape[1])
        penalty[-1, -1] = 0.0  # the intercept is not shrunk
        self.coef_full_ = np.linalg.solve(design.T @ design + penalty, design.T @ y)
        self.coef_ = self.coef_full_[:-1]
        self.intercept_ = float(self.coef_full_[-1])
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False)
        return X @ self.coef_ + self.intercept_
