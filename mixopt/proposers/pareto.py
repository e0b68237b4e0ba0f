"""Several objectives at once: the Pareto set, and the point a team's guard rails choose.

A team rarely cares about one number: "lower average loss, but code loss must not rise more
than 1% over our current mixture". Every target (per-domain loss) gets its own model (a GP by
default); many mixtures are simulated; each is scored on the primary objective (the weighted sum
of targets) and on every constrained target. The Pareto set is the simulated mixtures no other
one beats on all of them. The chosen point is the best primary objective among those whose
*predicted* constrained targets stay within their limits; when none does, the one that breaks
the limits least. ``ask(n)`` returns the chosen point and ``n - 1`` feasible Pareto points spread
along the primary objective, so a round also explores the trade-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mixopt.proposers.base import Proposer, Recommendation
from mixopt.sampling import DirichletSampler


@dataclass(frozen=True)
class Constraint:
    """``target[index]`` must not exceed ``limit`` (already resolved from a baseline)."""

    index: int
    limit: float
    name: str = ""


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (n, k) not dominated by another row (all objectives minimised)."""
    keep = np.ones(len(values), dtype=bool)
    frontier: list[np.ndarray] = []
    for i in np.lexsort(values.T[::-1]):  # sorted: a dominating row always comes first
        row = values[i]
        if any(np.all(f <= row) and np.any(f < row) for f in frontier):
            keep[i] = False
        else:
            frontier.append(row)
    return keep


class ParetoProposer(Proposer):
    def __init__(
        self,
        sampler: DirichletSampler,
        *,
        constraints: list[Constraint] | None = None,
        predictor: str = "gp",
        candidates: int = 20_000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.sampler = sampler
        self.constraints = list(constraints or [])
        self.predictor = predictor
        self.candidates = candidates
        self.seed = seed
        self._asked = 0
        self.front_: list[dict[str, Any]] = []

    def _model(self) -> Any:
        from mixopt.predictors.multi import ObjectivePredictor

        X, _ = self._require_observations(2)
        targets = self._targets()
        if targets is None or self.target_weights is None:
            raise ValueError("the pareto strategy needs per-target values and target_weights")
        return ObjectivePredictor(self.predictor, list(self.target_weights)).fit(X, targets)

    def _score(self, model: Any, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objectives (n, 1 + c) and total constraint violation (n,) of the pool's rows."""
        per_target = model.predict_targets(pool)  # (n, t)
        primary = per_target @ model.weights_
        columns = [primary] + [per_target[:, c.index] for c in self.constraints]
        violation = sum(
            (np.maximum(per_target[:, c.index] - c.limit, 0.0) for c in self.constraints),
            start=np.zeros(len(pool)),
        )
        return np.column_stack(columns), violation

    def _choose(self, model: Any, rng: np.random.Generator, n: int) -> np.ndarray:
        X, _ = self._require_observations(2)
        pool = np.vstack([self.sampler.candidates(self.candidates, rng), X])
        objectives, violation = self._score(model, pool)
        front = pareto_mask(objectives)
        feasible = violation <= 1e-12
        order = np.lexsort((objectives[:, 0], violation))  # least violation, then primary
        chosen = [int(order[0])]
        spread = np.flatnonzero(front & feasible) if (front & feasible).any() else order[:n]
        spread = spread[np.argsort(objectives[spread, 0])]
        for i in np.linspace(0, len(spread) - 1, num=min(n, len(spread))).astype(int):
            if len(chosen) < n and int(spread[i]) not in chosen:
                chosen.append(int(spread[i]))
        for i in order:  # top up when the front is thin
            if len(chosen) >= n:
                break
            if int(i) not in chosen:
                chosen.append(int(i))
        self.front_ = [
            {
                "weights": pool[i].tolist(),
                "objectives": objectives[i].tolist(),
                "feasible": bool(feasible[i]),
            }
            for i in np.flatnonzero(front)[np.argsort(objectives[front, 0])][:200]
        ]
        return pool[chosen]

    def ask(self, n: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 7, self._asked])
        self._asked += 1
        return self.sampler.space.project(self._choose(self._model(), rng, n))

    def recommend(self) -> Recommendation:
        model = self._model()
        rng = np.random.default_rng([self.seed, 8, self.n_observed])
        weights = self.sampler.space.project(self._choose(model, rng, 1))[0]
        mean, std = model.predict(weights[None], return_std=True)
        objectives, violation = self._score(model, weights[None])
        notes = ", ".join(
            f"{c.name or f'target {c.index}'} {objectives[0, 1 + j]:.4f} <= {c.limit:.4f}"
            for j, c in enumerate(self.constraints)
        )
        assert self.y_ is not None
        return Recommendation(
            weights=weights,
            predicted=float(mean[0]),
            predicted_std=float(std[0]),
            evidence=list(range(len(self.y_))),
            nearest=self._nearest(weights),
            method=(
                f"pareto: {len(self.front_)} Pareto mixtures; best primary objective "
                + ("within the constraints" if violation[0] <= 1e-12 else "(constraints not met)")
                + (f" ({notes})" if notes else "")
            ),
        )

    def state_dict(self) -> dict:
        return {**super().state_dict(), "asked": self._asked}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._asked = int(state["asked"])
