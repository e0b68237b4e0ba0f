"""Several objectives at once: the Pareto set, and the point a team's guard rails choose.

A team rarely cares about one number: "lower average loss, but code loss must not rise more
than 1% over our current mixture". Every target (per-domain loss) gets its own model (a GP by
default); many mixtures are simulated; each is scored on the primary objective (the weighted sum
of targets) and on every constrained target. The Pareto set is the simulated mixtures no other
one beats on all of them. The chosen point is the best primary objective among those whose
*predicted* constrained targets stay within their limits; when none does, the one that breaks
the limits least. ``ask(n)`` returns the chosen point and ``n - 1`` feasible Pareto points spread
along the primary objective, so a round also explores the trade-off. Over a finite candidate
set the same choice is made among its rows (the front of the set, feasible rows first).

``report()`` says what the recommendation chose and why, for recommendation.json: the Pareto set
of the recommendation's simulated mixtures (each one's predicted objective and targets, and
which guard rails it meets), the chosen point, and the reason ("lowest predicted objective among
mixtures meeting every guard rail", or which guard rail no mixture meets).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixopt.proposers.base import Batch, Candidates, Proposer, Recommendation, ReportContext
from mixopt.proposers.options import ProposerOptions


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


@dataclass(frozen=True, kw_only=True)
class ParetoOptions(ProposerOptions):
    constraints: tuple[Constraint, ...] = ()  # guard rails on per-target values
    predictor: str = "gp"  # the model of each target
    candidates: int = 20_000  # simulated mixtures scored per proposal

    def __post_init__(self) -> None:
        super().__post_init__()
        self._predictor()
        self._int("candidates")
        constraints = tuple(self.constraints)
        for i, c in enumerate(constraints):
            if not isinstance(c, Constraint):
                self.fail(f"constraints.{i}", f"must be a Constraint, got {c!r}")
            if isinstance(c.index, bool) or not isinstance(c.index, int) or c.index < 0:
                self.fail(f"constraints.{i}.index", f"a target column index, got {c.index!r}")
            if not math.isfinite(c.limit):
                self.fail(f"constraints.{i}.limit", f"must be finite, got {c.limit}")
            t = None if self.target_weights is None else len(self.target_weights)
            if t is not None and c.index >= t:
                self.fail(f"constraints.{i}.index", f"{c.index} out of range for {t} targets")
        self._set("constraints", constraints)


@dataclass(frozen=True)
class _Choice:
    """How a proposal chose its first mixture among ``pool`` simulated ones."""

    index: int  # row of the pool
    on_front: bool
    feasible: int  # rows meeting every guard rail
    meets: list[bool]  # per guard rail: does any row meet it
    pool: int


def _front_rows(front: np.ndarray, primary: np.ndarray, chosen: int, limit: int = 200) -> list[int]:
    """The front's rows by primary objective (at most ``limit``), the chosen row always in."""
    rows = [int(i) for i in np.flatnonzero(front)[np.argsort(primary[front], kind="stable")]]
    rows = rows[:limit]
    if chosen not in rows:
        rows = sorted([*rows[: limit - 1], chosen], key=lambda i: (primary[i], i))
    return rows


class ParetoProposer(Proposer):
    Options = ParetoOptions
    options: ParetoOptions
    stream = 7

    front_: Sequence[dict[str, Any]] = ()  # the last proposal's Pareto set (at most 200 rows)
    _last_choice: _Choice | None = None  # how the last proposal chose its first mixture
    _recommendation: tuple[int, tuple[Any, np.ndarray, _Choice], list[dict[str, Any]]] | None = (
        None  # (what was told, what _recommended returned, the front then)
    )

    @property
    def constraints(self) -> tuple[Constraint, ...]:
        return self.options.constraints

    @constraints.setter
    def constraints(self, value: Any) -> None:
        # transitional, for the search driver that sets the guard rails after construction; to
        # be removed once it builds the proposer with them
        from dataclasses import replace

        self.options = replace(self.options, constraints=tuple(value))

    def _model(self) -> Any:
        from mixopt.predictors.multi import ObjectivePredictor

        X, _ = self._require_observations(2)
        targets = self._targets()
        weights = self.options.target_weights
        if targets is None or weights is None:
            raise ValueError("the pareto strategy needs per-target values and target_weights")
        return ObjectivePredictor(self.options.predictor, list(weights)).fit(X, targets)

    def _score(self, model: Any, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objectives (n, 1 + c) and total constraint violation (n,) of the pool's rows."""
        return self._score_targets(model, model.predict_targets(pool))

    def _score_targets(self, model: Any, per_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_score` from the predicted targets (n, t)."""
        primary = per_target @ model.weights_
        columns = [primary] + [per_target[:, c.index] for c in self.constraints]
        violation = sum(
            (np.maximum(per_target[:, c.index] - c.limit, 0.0) for c in self.constraints),
            start=np.zeros(len(per_target)),
        )
        return np.column_stack(columns), violation

    def _choose(self, model: Any, pool: np.ndarray, n: int) -> list[int]:
        """Rows of ``pool``: the best feasible (or least violating), then the feasible front
        spread along the primary objective; records the front in ``front_``."""
        per_target = model.predict_targets(pool)
        objectives, violation = self._score_targets(model, per_target)
        front = pareto_mask(objectives)
        feasible = violation <= 1e-12
        order = np.lexsort((objectives[:, 0], violation))  # least violation, then primary
        chosen = [int(order[0])]
        spread = np.flatnonzero(front & feasible) if (front & feasible).any() else order[:n]
        spread = spread[np.argsort(objectives[spread, 0], kind="stable")]
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
                "targets": per_target[i].tolist(),
                "chosen": int(i) == chosen[0],
            }
            for i in _front_rows(front, objectives[:, 0], chosen[0])
        ]
        self._last_choice = _Choice(
            index=chosen[0],
            on_front=bool(front[chosen[0]]),
            feasible=int(feasible.sum()),
            meets=[bool(np.any(per_target[:, c.index] <= c.limit)) for c in self.constraints],
            pool=len(pool),
        )
        return chosen[:n]

    def _pool(self, rng: np.random.Generator) -> np.ndarray:
        X, _ = self._require_observations(2)
        return np.vstack([self.sampler.candidates(self.options.candidates, rng), X])

    def _propose(self, n: int, rng: np.random.Generator) -> Batch:
        model = self._model()
        pool = self._pool(rng)
        return Batch(self.sampler.space.project(pool[self._choose(model, pool, n)]))

    def _select(self, n: int, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        return np.array(self._choose(self._model(), candidates.X, n))

    def _recommended(self) -> tuple[Any, np.ndarray, _Choice]:
        """The recommendation's model, mixture and choice (computed once per observation count;
        deterministic, so a resumed job's report finds the saved recommendation's choice)."""
        X, y = self._require_observations(2)
        key = hash((X.tobytes(), y.tobytes()))
        cached = self._recommendation
        if cached is not None and cached[0] == key:
            return cached[1]
        model = self._model()
        pool = self._pool(self._recommend_rng())
        weights = self.sampler.space.project(pool[self._choose(model, pool, 1)])[0]
        assert self._last_choice is not None
        result = (model, weights, self._last_choice)
        self._recommendation = (key, result, list(self.front_))
        return result

    def recommend(self) -> Recommendation:
        model, weights, _ = self._recommended()
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

    def report(self, context: ReportContext | None = None) -> dict[str, Any]:
        """The recommendation's Pareto set, its guard rails, the chosen point and why."""
        if self.n_observed < 2 or self._targets() is None:
            return {}
        ctx = self._context(context)
        assert ctx.mixture is not None
        model, weights, choice = self._recommended()
        assert self._recommendation is not None
        front = self._recommendation[2]
        names = list(ctx.target_names)
        rails = [c.name or names[c.index] for c in self.constraints]

        def predicted(targets: Sequence[float]) -> dict[str, float]:
            values = np.asarray(targets, dtype=float)
            return {
                "objective": ctx.sign * float(values @ model.weights_),
                **{name: float(v) for name, v in zip(names, values, strict=True)},
            }

        def meets(targets: Sequence[float]) -> list[bool]:
            return [bool(targets[c.index] <= c.limit) for c in self.constraints]

        targets = model.predict_targets(weights[None])[0]
        _, violation = self._score_targets(model, targets[None])
        feasible = bool(violation[0] <= 1e-12)
        return {
            "strategy": "pareto",
            "predictor": self.options.predictor,
            "simulated": choice.pool,
            "feasible_simulated": choice.feasible,
            "guard_rails": [
                {
                    "metric": rail,
                    "limit": c.limit,
                    "predicted": float(targets[c.index]),
                    "met": bool(targets[c.index] <= c.limit),
                    "any_simulated_meets": met,
                }
                for rail, c, met in zip(rails, self.constraints, choice.meets, strict=True)
            ],
            "front": [
                {
                    "weights": ctx.mixture(np.asarray(row["weights"])),
                    "predicted": predicted(row["targets"]),
                    "feasible": row["feasible"],
                    "meets": meets(row["targets"]),
                    "chosen": row["chosen"],
                }
                for row in front
            ],
            "chosen": {
                "weights": ctx.mixture(weights),
                "predicted": predicted(targets),
                "feasible": feasible,
                "meets": meets(targets),
                "violation": float(violation[0]),
                "on_front": choice.on_front,
                "reason": self._reason(choice, rails, float(violation[0])),
            },
        }

    def _reason(self, choice: _Choice, rails: list[str], violation: float) -> str:
        if not self.constraints:
            return "lowest predicted objective (no guard rails)"
        if choice.feasible:
            return (
                f"lowest predicted objective among the {choice.feasible} of {choice.pool} "
                "simulated mixtures meeting every guard rail"
            )
        limits = [c.limit for c in self.constraints]
        rules = [f"{rail} <= {limit:.4f}" for rail, limit in zip(rails, limits, strict=True)]
        missed = [rule for rule, met in zip(rules, choice.meets, strict=True) if not met]
        what = ", ".join(missed) if missed else "every guard rail at once"
        return (
            f"no simulated mixture meets {what}: the least violating one (predicted excess "
            f"{violation:.4f} over the limits), then the lowest predicted objective"
        )
