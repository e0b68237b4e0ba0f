"""RegMix's proposal: fit a predictor, simulate many mixtures, average the best predicted.

``recommend()`` is RegMix exactly: fit on every finished trial, predict ``candidates`` sampled
mixtures, and return the mean of the ``top_k`` best (the mean of points in a convex space stays
in it). ``ask(n)`` needs ``n`` *different* good mixtures for a round, so proposal ``i > 0`` repeats
the recipe on a bootstrap resample of the trials: the spread between resamples is where the
predictor is unsure, which is where another trial teaches the most. The same bootstrap refits
give the recommendation's predicted-objective spread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixopt.predictors import make_predictor
from mixopt.proposers.base import Proposer, Recommendation
from mixopt.sampling import DirichletSampler


class RegMixProposer(Proposer):
    def __init__(
        self,
        sampler: DirichletSampler,
        *,
        predictor: str = "lightgbm",
        predictor_params: dict[str, Any] | None = None,
        candidates: int = 100_000,
        top_k: int = 128,
        n_bootstrap: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.sampler = sampler
        self.predictor = predictor
        self.predictor_params = predictor_params or {}
        self.candidates = candidates
        self.top_k = top_k
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self._asked = 0

    def _fit(self, X: np.ndarray, y: np.ndarray) -> Any:
        return make_predictor(self.predictor, **self.predictor_params).fit(X, y)

    def _simulate(self, model: Any, pool: np.ndarray) -> np.ndarray:
        """Mean of the ``top_k`` candidates with the lowest predicted objective."""
        predicted = model.predict(pool)
        best = np.argsort(predicted)[: self.top_k]
        return pool[best].mean(axis=0)

    def _bootstrap(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Any:
        rows = rng.integers(0, len(y), size=len(y))
        return self._fit(X[rows], y[rows])

    def ask(self, n: int) -> np.ndarray:
        X, y = self._require_observations(2)
        rng = np.random.default_rng([self.seed, 1, self._asked])
        self._asked += 1
        pool = self.sampler.candidates(self.candidates, rng)
        proposals = [self._simulate(self._fit(X, y), pool)]
        while len(proposals) < n:
            proposals.append(self._simulate(self._bootstrap(X, y, rng), pool))
        return self.sampler.space.project(np.stack(proposals))

    def recommend(self) -> Recommendation:
        X, y = self._require_observations(2)
        rng = np.random.default_rng([self.seed, 2, self.n_observed])
        pool = self.sampler.candidates(self.candidates, rng)
        model = self._fit(X, y)
        weights = self.sampler.space.project(self._simulate(model, pool))[0]
        predicted = float(model.predict(weights[None])[0])
        spread = [
            float(self._bootstrap(X, y, rng).predict(weights[None])[0])
            for _ in range(self.n_bootstrap)
        ]
        return Recommendation(
            weights=weights,
            predicted=predicted,
            predicted_std=float(np.std(spread)) if spread else None,
            evidence=list(range(len(y))),
            nearest=self._nearest(weights),
            method=f"regmix: {self.predictor} on {len(y)} trials, mean of top {self.top_k} "
            f"of {self.candidates} simulated mixtures",
        )

    def state_dict(self) -> dict:
        return {**super().state_dict(), "asked": self._asked}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._asked = int(state["asked"])
