"""The validation stage: the recommendation next to baselines, several seeds each, on the
validation proxy; then each mixture's seed mean and spread (:mod:`mixopt.verdict`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.trials import Stage, Trial
from mixopt.verdict import summarise

if TYPE_CHECKING:
    from mixopt.search.book import TrialBook
    from mixopt.search.problem import SearchProblem
    from mixopt.spec import ValidateSpec


def candidates(
    problem: SearchProblem, recommended: np.ndarray, best: Trial | None
) -> dict[str, np.ndarray]:
    """Label → mixture: the recommendation, the baselines, the team's current mixture, and the
    baselines guard rails are relative to (their limits are checked at the validation scale)."""
    v: ValidateSpec = problem.spec.validate_
    mixtures: dict[str, np.ndarray] = {"recommended": recommended}
    for baseline in v.baselines:
        if baseline == "best_trial":
            if best is not None:
                mixtures["best_trial"] = problem.weights(best)
        else:
            mixtures[baseline] = problem.baseline(baseline)
    if v.current is not None:
        mixtures["current"] = problem.baseline("current")
    for name in problem.spec.objective.relative_baselines():
        if name not in mixtures:
            mixtures[name] = problem.baseline(name)
    return mixtures


def plan(
    problem: SearchProblem, book: TrialBook, mixtures: dict[str, np.ndarray]
) -> dict[str, list[Trial]]:
    """The validation trials (label → one trial per seed), in a fixed order."""
    seed = problem.spec.search.seed
    by_label: dict[str, list[Trial]] = {}
    for label, weights in mixtures.items():
        for k in range(problem.spec.validate_.seeds):
            trial = book.new(
                problem.space.as_dict(weights), -1, seed + k, stage=Stage.VALIDATE, label=label
            )
            by_label.setdefault(label, []).append(trial)
    return by_label


def summaries(
    problem: SearchProblem,
    mixtures: dict[str, np.ndarray],
    by_label: dict[str, list[Trial]],
) -> dict[str, Any]:
    return {
        label: summarise(label, problem.space.as_dict(mixtures[label]), trials)
        for label, trials in by_label.items()
    }
