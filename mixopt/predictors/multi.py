"""Several targets, one objective: a predictor per target, the objective their weighted sum.

Users judge mixtures by a weighted sum of per-domain losses. Predicting each domain's loss and
summing keeps every prediction (a team sees what a mixture does to code *and* to prose), and
follows Data Mixing Laws, where each validation domain has its own law. Fitted with ``Y`` of
shape (n, t); ``predict`` returns the objective, ``predict_targets`` the (n, t) matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted


class ObjectivePredictor(RegressorMixin, BaseEstimator):
    def __init__(
        self, predictor: str = "mixing_law", target_weights: Sequence[float] | None = None
    ) -> None:
        self.predictor = predictor
        self.target_weights = target_weights

    def fit(self, X: np.ndarray, Y: np.ndarray) -> ObjectivePredictor:
        from mixopt.predictors import make_predictor

        X, Y = np.asarray(X, dtype=float), np.asarray(Y, dtype=float)
        if Y.ndim != 2 or len(Y) != len(X):
            raise ValueError("Y must be (n_samples, n_targets) with one row per row of X")
        t = Y.shape[1]
        weights = np.full(t, 1.0 / t) if self.target_weights is None else self.target_weights
        self.weights_ = np.asarray(weights, dtype=float)
        if self.weights_.shape != (t,):
            raise ValueError(f"target_weights must have {t} entries")
        self.models_ = [make_predictor(self.predictor).fit(X, Y[:, j]) for j in range(t)]
        self.n_features_in_ = X.shape[1]
        return self

    @property
    def has_std(self) -> bool:
        return all(getattr(m, "has_std", False) for m in getattr(self, "models_", [None]))

    def predict_targets(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "models_")
        return np.column_stack([m.predict(X) for m in self.models_])  # (n, t)

    def predict(self, X: np.ndarray, return_std: bool = False) -> Any:
        mean = self.predict_targets(X) @ self.weights_
        if not return_std:
            return mean
        stds = np.column_stack([m.predict(X, return_std=True)[1] for m in self.models_])
        return mean, np.sqrt((stds**2) @ (self.weights_**2))  # targets taken as independent

    def refit(self, X: np.ndarray, Y: np.ndarray) -> ObjectivePredictor:
        return ObjectivePredictor(self.predictor, self.target_weights).fit(X, Y)
