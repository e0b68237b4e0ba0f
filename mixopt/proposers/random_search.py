"""Random search: fresh Dirichlet draws every round (over a candidate set, a seeded random
order of its rows); recommends the best observed mixture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixopt.proposers.base import Batch, Candidates, Proposer, Recommendation
from mixopt.proposers.options import ProposerOptions


@dataclass(frozen=True, kw_only=True)
class RandomOptions(ProposerOptions):
    """Random search has no options beyond the seed."""


class RandomProposer(Proposer):
    Options = RandomOptions
    min_observations = 0

    def _propose(self, n: int, rng: np.random.Generator) -> Batch:
        return Batch(self.sampler.sample(n, rng, exclude=self.X_))

    def _select(self, n: int, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(len(candidates))[:n]

    def recommend(self) -> Recommendation:
        X, y = self._require_observations(1)
        best = int(np.argmin(y))
        return Recommendation(
            weights=X[best].copy(),
            predicted=float(y[best]),
            evidence=[best],
            nearest=self._nearest(X[best]),
            method="best observed",
        )
