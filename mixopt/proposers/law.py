"""Optimise a fitted mixing law over the constrained simplex (Data Mixing Laws, Olmix "exact").

The law ``L(w) = c + k·exp(tᵀw)`` with ``k > 0`` is convex in ``w``, and so is any positive
combination of such laws, so a local optimum over the polytope (bounds, caps, ``Σ w = 1``) is
the global one: SLSQP from a few starts (the best simulated candidates) finds it. When the
objective is a weighted sum of targets (per-domain losses) and they were told, one law is fitted
per target, as Data Mixing Laws do, and the objective is their weighted sum. ``ask(n)`` returns
the optimum first, then optima of laws refitted to bootstrap resamples, which spread the batch
where the law is unsure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize

from mixopt.predictors import make_predictor, refit
from mixopt.proposers.base import Proposer, Recommendation
from mixopt.sampling import DirichletSampler


def minimize_over_space(
    predict: Any, space: Any, starts: np.ndarray, *, maxiter: int = 200
) -> np.ndarray:
    """Minimise a smooth ``predict(X) -> (n,)`` over a MixtureSpace from several starts."""
    bounds = list(zip(space.lower, space.upper, strict=True))
    simplex = {"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}
    best_w, best_v = starts[0], float(predict(starts[:1])[0])
    for start in starts:
        result = minimize(
            lambda w: float(predict(w[None])[0]),
            start,
            method="SLSQP",
            bounds=bounds,
            constraints=[simplex],
            options={"maxiter": maxiter, "ftol": 1e-10},
        )
        w = space.project(result.x)[0]
        value = float(predict(w[None])[0])
        if value < best_v:
            best_w, best_v = w, value
    return best_w


class LawProposer(Proposer):
    def __init__(
        self,
        sampler: DirichletSampler,
        *,
        predictor: str = "mixing_law",
        n_starts: int = 4,
        candidates: int = 20_000,
        n_bootstrap: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.sampler = sampler
        self.predictor = predictor
        self.n_starts = n_starts
        self.candidates = candidates
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self._asked = 0

    def _optimum(self, model: Any, rng: np.random.Generator) -> np.ndarray:
        pool = self.sampler.candidates(self.candidates, rng)
        starts = pool[np.argsort(model.predict(pool))[: self.n_starts]]
        return minimize_over_space(model.predict, self.sampler.space, starts)

    def _boot(self, model: Any, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Any:
        rows = rng.integers(0, len(y), size=len(y))
        return refit(model, X[rows], y[rows])

    def _fit(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray]:
        """The law model and what it is fitted to (per-target values when known)."""
        targets = self._targets()
        if targets is not None:
            from mixopt.predictors.multi import ObjectivePredictor

            weights = list(self.target_weights) if self.target_weights is not None else None
            return ObjectivePredictor(self.predictor, weights).fit(X, targets), targets
        return make_predictor(self.predictor).fit(X, y), y

    def ask(self, n: int) -> np.ndarray:
        X, y = self._require_observations(2)
        rng = np.random.default_rng([self.seed, 5, self._asked])
        self._asked += 1
        model, fitted_to = self._fit(X, y)
        proposals = [self._optimum(model, rng)]
        while len(proposals) < n:
            proposals.append(self._optimum(self._boot(model, X, fitted_to, rng), rng))
        return np.stack(proposals)

    def recommend(self) -> Recommendation:
        X, y = self._require_observations(2)
        rng = np.random.default_rng([self.seed, 6, self.n_observed])
        model, y = self._fit(X, y)
        weights = self._optimum(model, rng)
        boots = [
            float(self._boot(model, X, y, rng).predict(weights[None])[0])
            for _ in range(self.n_bootstrap)
        ]
        return Recommendation(
            weights=weights,
            predicted=float(model.predict(weights[None])[0]),
            predicted_std=float(np.std(boots)) if boots else None,
            evidence=list(range(len(y))),
            nearest=self._nearest(weights),
            method=f"law: {self.predictor} minimised over the space, {len(y)} trials",
        )

    def state_dict(self) -> dict:
        return {**super().state_dict(), "asked": self._asked}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._asked = int(state["asked"])
