"""LightGBM regressor with RegMix's settings and sensible small-data defaults.

RegMix fits one LightGBM model per target with 1000 trees at learning rate 0.01. LightGBM's
default ``min_child_samples=20`` cannot split at all with the 16–40 trials of a small search,
so unless it is given, the leaf size scales with the data: ``clip(n // 8, 2, 20)`` (RegMix's
512 runs get LightGBM's default back). One thread by default: run tables are small, and on a
shared machine LightGBM's thread hand-offs cost more than they save.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class LightGBMPredictor(RegressorMixin, BaseEstimator):
    def __init__(
        self,
        n_estimators: int = 1000,
        learning_rate: float = 0.01,
        num_leaves: int = 31,
        min_child_samples: int | None = None,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        reg_lambda: float = 0.0,
        n_jobs: int = 1,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> LightGBMPredictor:
        import lightgbm as lgb

        X, y = validate_data(self, X, y, y_numeric=True)
        n = X.shape[0]
        leaf = self.min_child_samples or int(np.clip(n // 8, 2, 20))
        self.model_ = lgb.LGBMRegressor(
            objective="regression",
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=leaf,
            min_child_weight=0.0,
            subsample=self.subsample,
            subsample_freq=1 if self.subsample < 1.0 else 0,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
            verbose=-1,
        )
        self.model_.fit(X, y)
        self.min_child_samples_ = leaf
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False)
        return np.asarray(self.model_.predict(X), dtype=float)
