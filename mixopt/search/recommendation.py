"""``recommendation.json``: the mixture, its predicted objective, the trials it rests on, the
whole stage schedule when the job has mixture stages (``stages``: each stage's name, share and
weights, the recommendation in the searched one; ``weights`` stays the searched stage's), the
validation against baselines, the guard rails checked on what validation measured, the verdict,
and what the strategy says about its choice (:meth:`~mixopt.proposers.Proposer.report`, under
the strategy's name: ``pareto`` writes its front, guard rails and chosen point)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mixopt.data.caps import epochs_consumed
from mixopt.spec.stages import overall, stage_list
from mixopt.verdict import check_guard_rails, comparisons, verdict

if TYPE_CHECKING:
    from mixopt.job import JobDir
    from mixopt.proposers import Recommendation
    from mixopt.search.ladder import Ladder
    from mixopt.search.problem import SearchProblem
    from mixopt.trials import Trial


def evidence(
    problem: SearchProblem, recommendation: Recommendation, told: list[Trial]
) -> dict[str, Any]:
    """The trials a recommendation rests on, and the ones closest to it (L1)."""
    nearest = []
    for i in recommendation.nearest:
        trial = told[i]
        distance = abs(problem.weights(trial) - recommendation.weights).sum()
        nearest.append(
            {
                "trial_id": trial.trial_id,
                "objective": trial.result["objective"],
                "l1_distance": float(distance),
            }
        )
    return {
        "trials": [told[i].trial_id for i in recommendation.evidence],
        "nearest": nearest,
        "outside_data": bool(not nearest or min(n["l1_distance"] for n in nearest) > 0.5),
    }


def document(
    problem: SearchProblem,
    job: JobDir,
    ladder: Ladder,
    recommendation: Recommendation,
    told: list[Trial],
    validation: dict[str, Any],
    strategy_report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec, manifest, caps = problem.spec, problem.manifest, problem.caps
    rules = spec.objective.constraints
    checks = check_guard_rails(rules, validation) if rules and validation else []
    weights = problem.space.as_dict(recommendation.weights)
    validation_proxy = ladder.validation
    return {
        "job": spec.name,
        "job_dir": str(job.path.resolve()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "objective": {
            "metrics": problem.objective_weights,
            "direction": spec.objective.direction,
        },
        "weights": weights,
        **({"stages": stage_list(spec.stages, weights)} if spec.stages else {}),
        "predicted_objective": problem.sign * recommendation.predicted,
        "predicted_std": recommendation.predicted_std,
        "method": recommendation.method,
        "evidence": evidence(problem, recommendation, told),
        "natural": problem.space.as_dict(problem.natural()),
        "data_hash": manifest.data_hash,
        "data_hashes": manifest.domain_hashes(),
        "repetition_caps": None if caps is None else caps.caps,
        "target_epochs": None
        if caps is None
        else epochs_consumed(
            overall(spec.stages, weights), caps.target_tokens, manifest.train_tokens()
        ),
        "validation_proxy": {
            "arch": validation_proxy.arch,
            "preset": validation_proxy.preset,
            "train_tokens": validation_proxy.train_tokens,
        },
        "validation": validation,
        "comparisons": {
            label: c.to_dict()
            for label, c in comparisons(validation, spec.objective.direction).items()
        },
        # the spec's guard rails on what validation measured (None: validation is off)
        **({"guard_rails": [c.to_dict() for c in checks] if validation else None} if rules else {}),
        "verdict": verdict(validation, spec.objective.direction, checks),
        **({spec.search.strategy: strategy_report} if strategy_report else {}),
    }
