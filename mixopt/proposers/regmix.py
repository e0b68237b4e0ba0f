"""RegMix's proposal: fit a predictor, simulate many mixtures, average the best predicted.

``recommend()`` is RegMix exactly: fit on every finished trial, predict ``candidates`` sampled
mixtures, and return the mean of the ``top_k`` best (the mean of points in a convex space stays
in it). ``ask(n)`` needs ``n`` *different* good mixtures for a round, so proposal ``i > 0``
repeats the recipe with the predictor refitted to a bootstrap resample of the trials, re-ranking
the shortlist of the full model's best candidates: the spread between resamples is where the
predictor is unsure, which is where another trial teaches the most. Refits are cheap (a GP keeps
its hyperparameters, ``auto`` its choice of model).

The recommendation's uncertainty is the predictor's own standard deviation where it has one,
else the spread of the prediction over bootstrap refits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixopt.predictors import make_predictor, refit
from mixopt.proposers.base import Proposer, Recommendation
from mixopt.sampling import DirichletSampler


class RegMixProposer(Proposer):
    def __init__(
        self,
        sampler: DirichletSampler,
        *,
        predictor: str = "auto",
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
        self.model_: Any = None

    def _fit(self, X: np.ndarray, y: np.ndarray) -> Any:
        self.model_ = make_predictor(self.predictor, **self.predictor_params).fit(X, y)
        return self.model_

    def _bootstrap(self, model: Any, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Any:
        rows = rng.integers(0, len(y), size=len(y))
        return refit(model, X[rows], y[rows])

    def _top(self, model: Any, pool: np.ndarray, k: int) -> np.ndarray:
        """Rows of ``pool`` with the ``k`` lowest predictions, best first."""
        return pool[np.argsort(model.predict(pool))[:k]]

    def ask(self, n: int) -> np.ndarray:
        X, y = self._require_observations(2)
        rng = np.random.default_rng([self.seed, 1, self._asked])
        self._asked += 1
        pool = self.sampler.candidates(self.candidates, rng)
        model = self._fit(X, y)
        shortlist = self._top(model, pool, min(len(pool), max(20 * self.top_k, 2000)))
        proposals = [shortlist[: self.top_k].mean(axis=0)]
        while len(proposals) < n:
            boot = self._bootstrap(model, X, y, rng)
            proposals.append(self._top(boot, shortlist, self.top_k).mean(axis=0))
        return self.sampler.space.project(np.stack(proposals))

    def recommend(self) -> Recommendation:
        X, y = self._require_observations(2)
        rng = np.random.default_rng([self.seed, 2, self.n_observed])
        pool = self.sampler.candidates(self.candidates, rng)
        model = self._fit(X, y)
        weights = self.sampler.space.project(self._top(model, pool, self.top_k).mean(axis=0))[0]
        if getattr(model, "has_std", False):
            mean, std = model.predict(weights[None], return_std=True)
            predicted, spread = float(mean[0]), float(std[0])
        else:
            predicted = float(model.predict(weights[None])[0])
            boots = [
                float(self._bootstrap(model, X, y, rng).predict(weights[None])[0])
                for _ in range(self.n_bootstrap)
            ]
            spread = float(np.std(boots))
        return Recommendation(
            weights=weights,
            predicted=predicted,
            predicted_std=spread if np.isfinite(spread) else None,
            evidence=list(range(len(y))),
            nearest=self._nearest(weights),
            method=f"regmix: {_describe(model, self.predictor)} on {len(y)} trials, mean of top "
            f"{self.top_k} of {self.candidates} simulated mixtures",
        )

    def state_dict(self) -> dict:
        return {**super().state_dict(), "asked": self._asked}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._asked = int(state["asked"])


def _describe(model: Any, name: str) -> str:
    choice = getattr(model, "choice_", None)
    return f"{name} ({choice})" if choice else name
