"""Cross-validation of predictors: out-of-fold predictions and the scores users judge them by.

Scores: Spearman and Pearson correlation (×100 in reports), mean absolute error, and, for
predictors with a standard deviation, the coverage of the 68% and 95% intervals (a calibrated
predictor covers about 68% and 95% of held-out values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.base import clone
from sklearn.model_selection import KFold


@dataclass
class CVScores:
    spearman: float
    pearson: float
    mae: float
    coverage68: float | None = None
    coverage95: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {
            "spearman": self.spearman,
            "pearson": self.pearson,
            "mae": self.mae,
            "coverage68": self.coverage68,
            "coverage95": self.coverage95,
        }


def supports_std(estimator: Any) -> bool:
    return bool(getattr(estimator, "has_std", False))


def folds(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    k = max(2, min(k, n))
    return list(KFold(k, shuffle=True, random_state=seed).split(np.arange(n)))


def cross_val_predict(
    estimator: Any, X: np.ndarray, y: np.ndarray, *, k: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Out-of-fold predictions (and standard deviations when the estimator has them)."""
    pred = np.empty(len(y))
    std = np.empty(len(y)) if supports_std(estimator) else None
    for train, test in folds(len(y), k, seed):
        model = clone(estimator).fit(X[train], y[train])
        if std is not None:
            pred[test], std[test] = model.predict(X[test], return_std=True)
        else:
            pred[test] = model.predict(X[test])
    return pred, std


def score(y: np.ndarray, pred: np.ndarray, std: np.ndarray | None = None) -> CVScores:
    constant = np.ptp(pred) == 0 or np.ptp(y) == 0
    scores = CVScores(
        spearman=0.0 if constant else float(spearmanr(pred, y).statistic),
        pearson=0.0 if constant else float(pearsonr(pred, y).statistic),
        mae=float(np.mean(np.abs(pred - y))),
    )
    if std is not None:
        z = np.abs(pred - y) / np.maximum(std, 1e-12)
        scores.coverage68 = float(np.mean(z <= 1.0))
        scores.coverage95 = float(np.mean(z <= 1.96))
    return scores
