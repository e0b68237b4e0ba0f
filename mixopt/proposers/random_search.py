"""Random search: fresh Dirichlet draws every round; recommends the best observed mixture."""

from __future__ import annotations

import numpy as np

from mixopt.proposers.base import Proposer, Recommendation
from mixopt.sampling import DirichletSampler


class RandomProposer(Proposer):
    def __init__(self, sampler: DirichletSampler, *, seed: int = 0) -> None:
        super().__init__()
        self.sampler = sampler
        self.seed = seed
        self._asked = 0

    def ask(self, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self._asked])
        self._asked += 1
        return self.sampler.sample(n, rng, exclude=self.X_)

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

    def state_dict(self) -> dict:
        return {**super().state_dict(), "asked": self._asked}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._asked = int(state["asked"])
