"""The search strategy as the driver sees it: build the proposer once the initial design has
finished (guard rails need the baselines' measured metrics), tell it finished trials, ask it
for the next batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mixopt.errors import MixoptError
from mixopt.proposers import Proposer, make_proposer

if TYPE_CHECKING:
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
    s = problem.spec.search
    options: dict[str, object] = {}
    if s.strategy == "regmix":
        options = {
            "predictor": s.predictor,
            "candidates": s.candidates,
            "top_k": min(s.top_k, s.candidates),
        }
    if s.strategy == "mfbo":
        options = {"levels": list(ladder.flops), "costs": list(ladder.flops)}
    if s.strategy == "pareto":
        options = {"constraints": constraints}
    proposer = make_proposer(s.strategy, problem.sampler, seed=s.seed, **options)
    proposer.target_weights = problem.sign * np.array(
        [problem.objective_weights.get(name, 0.0) for name in problem.target_names]
    )
    return proposer


def tell(proposer: Proposer, problem: SearchProblem, ladder: Ladder, trials: list[Trial]) -> None:
    """Tell the proposer finished trials (in the searched space, minimise convention)."""
    from mixopt.proposers.mfbo import MultiFidelityBOProposer

    X = problem.hierarchy.collapse(np.array([problem.weights(t) for t in trials]))
    y = np.array([problem.sign * t.result["objective"] for t in trials])
    targets = np.array(
        [[t.result["metrics"].get(m, np.nan) for m in problem.target_names] for t in trials]
    )
    if isinstance(proposer, MultiFidelityBOProposer):
        proposer.tell_at(X, y, np.array([ladder.level(t) for t in trials]), targets=targets)
    else:
        proposer.tell(X, y, targets=targets)


def propose(proposer: Proposer, n: int, ladder: Ladder, book: TrialBook) -> Batch:
    from mixopt.proposers.mfbo import MultiFidelityBOProposer

    if isinstance(proposer, MultiFidelityBOProposer):
        proposer.costs = np.asarray(ladder.costs(book.trials))
        mixtures, chosen = proposer.ask_with_fidelity(n)
        return Batch(mixtures, [int(level) for level in chosen])
    return Batch(proposer.ask(n), [None] * n)
