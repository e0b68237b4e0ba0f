"""Optimise a fitted mixing law over the constrained simplex (Data Mixing Laws, Olmix "exact").

The law ``L(w) = c + k·exp(tᵀw)`` with ``k > 0`` is convex in ``w``, and so is any positive
combination of such laws, so a local optimum over the polytope (bounds, caps, ``Σ w = 1``) is
the global one: SLSQP from a few starts (the best simulated candidates) finds it. When the
objective is a weighted sum of targets (per-domain losses) and they were told, one law is fitted
per target, as Data Mixing Laws do, and the objective is their weighted sum. ``ask(n)`` returns
the optimum first, then optima of laws refitted to bootstrap resamples, which spread the batch
where the law is unsure. Over a finite candidate set the proposal is the rows the law (or the
weighted per-target laws) predicts best.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from mixopt.predictors import make_predictor, refit
from mixopt.proposers.base import Batch, Candidates, Proposer, Recommendation
from mixopt.proposers.options import ProposerOptions


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


@dataclass(frozen=True, kw_only=True)
class LawOptions(ProposerOptions):
    predictor: str = "mixing_law"  # the law family (any registered predictor works)
    n_starts: int = 4  # SLSQP starts: the best simulated candidates
    candidates: int = 20_000  # simulated mixtures the starts are picked from
    n_bootstrap: int = 8  # refits behind the recommendation's spread

    def __post_init__(self) -> None:
        super().__post_init__()
        self._predictor()
        self._int("n_starts")
        self._int("candidates")
        self._int("n_bootstrap", minimum=0)


class LawProposer(Proposer):
    Options = LawOptions
    options: LawOptions
    stream = 5

    def _optimum(self, model: Any, rng: np.random.Generator) -> np.ndarray:
        pool = self.sampler.candidates(self.options.candidates, rng)
        starts = pool[np.argsort(model.predict(pool), kind="stable")[: self.options.n_starts]]
        return minimize_over_space(model.predict, self.sampler.space, starts)

    def _boot(self, model: Any, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Any:
        rows = rng.integers(0, len(y), size=len(y))
        return refit(model, X[rows], y[rows])

    def _fit(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray]:
        """The law model and what it is fitted to (per-target values when known)."""
        targets = self._targets()
        if targets is not None:
            from mixopt.predictors.multi import ObjectivePredictor

            weights = self.options.target_weights
            model = ObjectivePredictor(
                self.options.predictor, None if weights is None else list(weights)
            )
            return model.fit(X, targets), targets
        return make_predictor(self.options.predictor).fit(X, y), y

    def _propose(self, n: int, rng: np.random.Generator) -> Batch:
        X, y = self._require_observations(2)
        model, fitted_to = self._fit(X, y)
        proposals = [self._optimum(model, rng)]
        while len(proposals) < n:
            proposals.append(self._optimum(self._boot(model, X, fitted_to, rng), rng))
        return Batch(np.stack(proposals))

    def _select(self, n: int, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        X, y = self._require_observations(2)
        model, _ = self._fit(X, y)
        return np.argsort(model.predict(candidates.X), kind="stable")[:n]

    def recommend(self) -> Recommendation:
        X, y = self._require_observations(2)
        o = self.options
        rng = self._recommend_rng()
        model, y = self._fit(X, y)
        weights = self._optimum(model, rng)
        boots = [
            float(self._boot(model, X, y, rng).predict(weights[None])[0])
            for _ in range(o.n_bootstrap)
        ]
        return Recommendation(
            weights=weights,
            predicted=float(model.predict(weights[None])[0]),
            predicted_std=float(np.std(boots)) if boots else None,
            evidence=list(range(len(y))),
            nearest=self._nearest(weights),
            method=f"law: {o.predictor} minimised over the space, {len(y)} trials",
        )
