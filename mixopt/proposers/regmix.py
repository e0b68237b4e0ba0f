"""RegMix's proposal: fit a predictor, simulate many mixtures, average the best predicted.

``recommend()`` is RegMix exactly: fit on every finished trial, predict ``candidates`` sampled
mixtures, and return the mean of the ``top_k`` best (the mean of points in a convex space stays
in it). A proposal of ``n`` needs ``n`` *different* good mixtures, so proposal ``i > 0`` repeats
the recipe with the predictor refitted to a bootstrap resample of the trials, re-ranking the
shortlist of the full model's best candidates: the spread between resamples is where the
predictor is unsure, which is where another trial teaches the most. Refits are cheap (a GP keeps
its hyperparameters, ``auto`` its choice of model). Over a finite candidate set the proposal is
the rows with the best predictions.

The recommendation's uncertainty is the predictor's own standard deviation where it has one,
else the spread of the prediction over bootstrap refits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixopt.predictors import make_predictor, refit
from mixopt.proposers.base import Batch, Candidates, Proposer, Recommendation
from mixopt.proposers.options import ProposerOptions


@dataclass(frozen=True, kw_only=True)
class RegMixOptions(ProposerOptions):
    predictor: str = "auto"  # a registered predictor (mixopt.predictors)
    predictor_params: dict[str, Any] = field(default_factory=dict)
    candidates: int = 100_000  # simulated mixtures per proposal
    top_k: int = 128  # best-predicted simulated mixtures averaged
    n_bootstrap: int = 8  # refits behind the recommendation's spread (predictors without std)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._predictor()
        if not isinstance(self.predictor_params, dict):
            self.fail("predictor_params", f"must be a mapping, got {self.predictor_params!r}")
        self._set("predictor_params", dict(self.predictor_params))
        self._int("candidates")
        self._int("top_k")
        self._int("n_bootstrap", minimum=0)
        if self.top_k > self.candidates:
            self.fail("top_k", f"{self.top_k} exceeds candidates ({self.candidates})")


class RegMixProposer(Proposer):
    Options = RegMixOptions
    options: RegMixOptions
    stream = 1

    model_: Any = None  # the predictor fitted by the last proposal

    def _fit(self, X: np.ndarray, y: np.ndarray) -> Any:
        o = self.options
        self.model_ = make_predictor(o.predictor, **o.predictor_params).fit(X, y)
        return self.model_

    def _bootstrap(self, model: Any, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Any:
        rows = rng.integers(0, len(y), size=len(y))
        return refit(model, X[rows], y[rows])

    def _top(self, model: Any, pool: np.ndarray, k: int) -> np.ndarray:
        """Rows of ``pool`` with the ``k`` lowest predictions, best first."""
        return pool[np.argsort(model.predict(pool), kind="stable")[:k]]

    def _propose(self, n: int, rng: np.random.Generator) -> Batch:
        X, y = self._require_observations(2)
        o = self.options
        pool = self.sampler.candidates(o.candidates, rng)
        model = self._fit(X, y)
        shortlist = self._top(model, pool, min(len(pool), max(20 * o.top_k, 2000)))
        proposals = [shortlist[: o.top_k].mean(axis=0)]
        while len(proposals) < n:
            boot = self._bootstrap(model, X, y, rng)
            proposals.append(self._top(boot, shortlist, o.top_k).mean(axis=0))
        return Batch(self.sampler.space.project(np.stack(proposals)))

    def _select(self, n: int, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        X, y = self._require_observations(2)
        predicted = self._fit(X, y).predict(candidates.X)
        return np.argsort(predicted, kind="stable")[:n]

    def recommend(self) -> Recommendation:
        X, y = self._require_observations(2)
        o = self.options
        rng = self._recommend_rng()
        pool = self.sampler.candidates(o.candidates, rng)
        model = self._fit(X, y)
        weights = self.sampler.space.project(self._top(model, pool, o.top_k).mean(axis=0))[0]
        if getattr(model, "has_std", False):
            mean, std = model.predict(weights[None], return_std=True)
            predicted, spread = float(mean[0]), float(std[0])
        else:
            predicted = float(model.predict(weights[None])[0])
            boots = [
                float(self._bootstrap(model, X, y, rng).predict(weights[None])[0])
                for _ in range(o.n_bootstrap)
            ]
            spread = float(np.std(boots)) if boots else float("nan")
        return Recommendation(
            weights=weights,
            predicted=predicted,
            predicted_std=spread if np.isfinite(spread) else None,
            evidence=list(range(len(y))),
            nearest=self._nearest(weights),
            method=f"regmix: {_describe(model, o.predictor)} on {len(y)} trials, mean of top "
            f"{o.top_k} of {o.candidates} simulated mixtures",
        )


def _describe(model: Any, name: str) -> str:
    choice = getattr(model, "choice_", None)
    return f"{name} ({choice})" if choice else name
