"""The search strategy as the driver sees it: build the proposer once the initial design has
finished (guard rails need the baselines' measured metrics), tell it finished trials, ask it
for the next batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.errors import MixoptError

if TYPE_CHECKING:
    from mixopt.proposers import Proposer
    from mixopt.proposers.pareto import Constraint
    from mixopt.search.book import TrialBook
    from mixopt.search.ladder import Ladder
    from mixopt.search.problem import SearchProblem
    from mixopt.trials import Trial


@dataclass(frozen=True)
class Batch:
    X: np.ndarray  # (n, units) mixtures in the searched space
    levels: list[int | None]  # fidelity level of each (None: the target)


def guard_rails(problem: SearchProblem, book: TrialBook) -> list[Constraint]:
    """The spec's guard rails as limits, from the baselines' measured metrics."""
    from mixopt.proposers.pareto import Constraint

    measured = book.by_label("baseline:")
    constraints = []
    for c in problem.spec.objective.constraints:
        if c.max_value is not None:
            limit = c.max_value
        elif c.relative_to in measured:
            base = measured[c.relative_to].result["metrics"][c.metric]
            limit = base * (1 + (c.max_increase or 0.0))
        else:
            raise MixoptError(f"the {c.relative_to} baseline trial failed: no limit for {c.metric}")
        constraints.append(Constraint(problem.target_names.index(c.metric), limit, c.metric))
    return constraints


def build(problem: SearchProblem, ladder: Ladder, constraints: list[Constraint]) -> Proposer:
    """The proposer of ``search.strategy``, with every option it takes."""
    weights = [problem.sign * problem.objective_weights.get(n, 0.0) for n in problem.target_names]
    return problem.spec.search.build_proposer(
        problem.sampler, target_weights=weights, levels=ladder.flops, constraints=constraints
    )


def tell(proposer: Proposer, problem: SearchProblem, ladder: Ladder, trials: list[Trial]) -> None:
    """Tell the proposer finished trials (in the searched space, minimise convention), with
    each one's fidelity level and measured cost (wall seconds)."""
    if proposer.n_levels == 1:  # a single-scale strategy learns from the search proxy only
        trials = [t for t in trials if ladder.level(t) == ladder.target]
        if not trials:
            return
    X = problem.hierarchy.collapse(np.array([problem.weights(t) for t in trials]))
    y = np.array([problem.sign * t.result["objective"] for t in trials])
    targets = np.array(
        [[t.result["metrics"].get(m, np.nan) for m in problem.target_names] for t in trials]
    )
    levels = np.array([ladder.level(t) for t in trials]) if proposer.n_levels > 1 else None
    costs = np.array([_cost(t) for t in trials])
    proposer.tell(X, y, targets, levels=levels, costs=costs)


def _cost(trial: Trial) -> float:
    wall = trial.result.get("wall_s")
    return float(wall) if isinstance(wall, int | float) and wall > 0 else float("nan")


def propose(proposer: Proposer, n: int) -> Batch:
    batch = proposer.propose(n)
    n = len(batch.X)
    levels: list[int | None] = [None] * n if batch.levels is None else list(map(int, batch.levels))
    return Batch(batch.X, levels)


def report(proposer: Proposer, problem: SearchProblem) -> dict[str, Any]:
    """What the strategy says about its recommendation (``{}``: nothing), in leaf weights and
    the job's target names and objective direction."""
    from mixopt.proposers import ReportContext

    def mixture(weights: np.ndarray) -> dict[str, float]:
        return problem.space.as_dict(problem.hierarchy.expand(weights))

    return proposer.report(ReportContext(problem.target_names, problem.sign, mixture))
