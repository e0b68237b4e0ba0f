"""``auto`` and ``ensemble``: let cross-validated rank correlation pick the predictor.

``auto`` (the default everywhere) cross-validates a set of candidate predictors on the data it is
given, then keeps the single best one, or the average of the two best when that averages to a
better out-of-fold Spearman. What it chose and every candidate's score are kept (``choice_``,
``cv_scores_``), so a user can see why. ``ensemble`` always averages all candidates, weighted by
their out-of-fold Spearman.

The GP's out-of-fold predictions reuse the hyperparameters fitted on all the data (each fold
only re-conditions the GP), which makes ``auto`` affordable at hundreds of trials; it slightly
favours the GP, and the benchmark reports honest nested cross-validation of ``auto`` itself.

Standard deviations: a GP member's posterior std, widened by the spread between members when
averaging; a chosen member without a std yields none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted, validate_data

from mixopt.predictors.cv import folds, score

DEFAULT_CANDIDATES = ("gp", "loglinear", "lightgbm", "mixing_law")
MIN_ROWS_FOR_CV = 10


def _make(name: str) -> Any:
    from mixopt.predictors import make_predictor

    return make_predictor(name)


def _oof(name: str, model: Any, X: np.ndarray, y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Out-of-fold predictions of a candidate (the GP keeps its fitted hyperparameters)."""
    pred = np.empty(len(y))
    for train, test in folds(len(y), k, seed):
        if name == "gp":
            from mixopt.predictors.gp import condition_gp, posterior_mean_std

            pred[test] = posterior_mean_std(
                condition_gp(model.model_, X[train], y[train]), X[test]
            )[0]
        else:
            pred[test] = clone(model).fit(X[train], y[train]).predict(X[test])
    return pred


class _Committee(RegressorMixin, BaseEstimator):
    """Shared machinery: fit candidates, score them out of fold, predict with a weighted mean."""

    candidates: Sequence[str]
    cv: int
    random_state: int

    @property
    def has_std(self) -> bool:
        return "gp" in self.candidates

    def _fit_candidates(self, X: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        self.members_: dict[str, Any] = {}
        oof: dict[str, np.ndarray] = {}
        for name in self.candidates:
            model = _make(name)
            if hasattr(model, "random_state"):
                model.set_params(random_state=self.random_state)
            self.members_[name] = model.fit(X, y)
            if len(y) >= MIN_ROWS_FOR_CV:
                oof[name] = _oof(name, model, X, y, self.cv, self.random_state)
        self.cv_scores_ = {name: score(y, pred).spearman for name, pred in oof.items()}
        return oof

    def refit(self, X: np.ndarray, y: np.ndarray) -> _Committee:
        """The same committee (members, weights) refitted to new data, members refit cheaply."""
        from mixopt.predictors import refit

        check_is_fitted(self, "weights_")
        fresh = type(self)(**self.get_params())
        fresh.__dict__.update({k: v for k, v in self.__dict__.items() if k.endswith("_")})
        fresh.members_ = {name: refit(self.members_[name], X, y) for name in self.weights_}
        return fresh

    def predict(self, X: np.ndarray, return_std: bool = False) -> Any:
        check_is_fitted(self, "weights_")
        X = validate_data(self, X, reset=False)
        means, stds = [], []
        for name, weight in self.weights_.items():
            member = self.members_[name]
            if return_std and getattr(member, "has_std", False):
                mean, std = member.predict(X, return_std=True)
                stds.append(std)
            else:
                mean = member.predict(X)
            means.append(weight * mean)
        mean = np.sum(means, axis=0)
        if not return_std:
            return mean
        if not stds:
            return mean, np.full(len(mean), np.nan)
        spread = np.sqrt(
            sum(w * (self.members_[n].predict(X) - mean) ** 2 for n, w in self.weights_.items())
        )
        return mean, np.sqrt(np.mean(stds, axis=0) ** 2 + spread**2)


class AutoPredictor(_Committee):
    def __init__(
        self,
        candidates: Sequence[str] = DEFAULT_CANDIDATES,
        cv: int = 5,
        random_state: int = 0,
        fallback: str = "gp",
    ) -> None:
        self.candidates = candidates
        self.cv = cv
        self.random_state = random_state
        self.fallback = fallback

    @property
    def has_std(self) -> bool:
        return True

    def fit(self, X: np.ndarray, y: np.ndarray) -> AutoPredictor:
        X, y = validate_data(self, X, y, y_numeric=True)
        if len(y) < MIN_ROWS_FOR_CV:  # too few rows to cross-validate: a smooth default
            self.candidates_ = (self.fallback,)
            self.members_ = {self.fallback: _make(self.fallback).fit(X, y)}
            self.cv_scores_ = {}
            self.weights_ = {self.fallback: 1.0}
            self.choice_ = self.fallback
            return self
        oof = self._fit_candidates(X, y)
        ranked = sorted(self.cv_scores_, key=self.cv_scores_.__getitem__, reverse=True)
        self.choice_, self.weights_ = ranked[0], {ranked[0]: 1.0}
        if len(ranked) > 1:
            pair = ranked[:2]
            averaged = score(y, (oof[pair[0]] + oof[pair[1]]) / 2).spearman
            self.cv_scores_["+".join(pair)] = averaged
            if averaged > self.cv_scores_[ranked[0]]:
                self.choice_, self.weights_ = "+".join(pair), {pair[0]: 0.5, pair[1]: 0.5}
        return self


class EnsemblePredictor(_Committee):
    def __init__(
        self, candidates: Sequence[str] = DEFAULT_CANDIDATES, cv: int = 5, random_state: int = 0
    ) -> None:
        self.candidates = candidates
        self.cv = cv
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> EnsemblePredictor:
        X, y = validate_data(self, X, y, y_numeric=True)
        self._fit_candidates(X, y)
        raw = {n: max(self.cv_scores_.get(n, 1.0), 0.0) for n in self.candidates}
        total = sum(raw.values()) or 1.0
        self.weights_ = {n: w / total for n, w in raw.items() if w > 0} or {
            n: 1.0 / len(self.candidates) for n in self.candidates
        }
        return self
