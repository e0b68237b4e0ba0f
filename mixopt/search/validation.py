"""The validation stage: the recommendation next to baselines, several seeds each, on the
validation proxy; then each mixture's seed mean and spread (:mod:`mixopt.verdict`), and the
final choice.

``validate.path`` adds mixtures on the segment from the recommendation toward the natural mixture
(``toward_natural_50`` is halfway): how far to shrink toward the prior is then decided by
validation at scale, not by the law alone. :func:`decide` (``validate.choose: validated``, the
default) keeps the search's recommendation unless a validated mixture beats it at the validation
scale, paired seed by seed with the interval excluding zero, and holds every guard rail: then the
best such mixture becomes the recommendation, and the search's is kept beside it as
``search_choice``. The validation proxy is closer to the team's model than any search trial, so
a mixture that lost there must not be handed over; the switch needs evidence, so noise alone
does not move it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.trials import Stage, Trial
from mixopt.verdict import SEARCH_CHOICE, check_guard_rails, compare, summarise, switch

if TYPE_CHECKING:
    from mixopt.proposers.base import Recommendation
    from mixopt.search.book import TrialBook
    from mixopt.search.problem import SearchProblem
    from mixopt.spec import ValidateSpec
    from mixopt.spec.objective import ConstraintSpec

TOWARD_NATURAL = "toward_natural_"  # label prefix of the mixtures of validate.path
SAME_MIXTURE_L1 = 0.02  # a recommendation this close to natural gets no path toward it


def candidates(
    problem: SearchProblem,
    recommended: np.ndarray,
    best: Trial | None,
    online: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Label → mixture: the recommendation, the baselines (``online``: the mixtures of the
    online ones, :mod:`mixopt.search.online`), the team's current mixture, and the baselines
    guard rails are relative to (their limits are checked at the validation scale)."""
    v: ValidateSpec = problem.spec.validate_
    mixtures: dict[str, np.ndarray] = {"recommended": recommended}
    for baseline in v.baselines:
        if baseline == "best_trial":
            if best is not None:
                mixtures["best_trial"] = problem.weights(best)
        elif online is not None and baseline in online:
            mixtures[baseline] = online[baseline]
        else:
            mixtures[baseline] = problem.baseline(baseline)
    if v.path:
        mixtures.update(path(recommended, problem.baseline("natural"), v.path))
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
    schedules: Mapping[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Each validated mixture's summary; a label of ``schedules`` (an online baseline trained
    as a schedule of stages) carries its ``schedule``, its ``weights`` being the average."""
    out = {
        label: summarise(label, problem.space.as_dict(mixtures[label]), trials)
        for label, trials in by_label.items()
    }
    for label, schedule in (schedules or {}).items():
        if label in out:
            out[label]["schedule"] = schedule
    return out


def path(recommended: np.ndarray, natural: np.ndarray, points: int) -> dict[str, np.ndarray]:
    """``points`` mixtures evenly spaced strictly between the recommendation and ``natural``
    (both inside the space, which is convex, so every point is too), labelled by the share of
    the way toward natural in percent; none when the two are (nearly) the same mixture."""
    out: dict[str, np.ndarray] = {}
    if np.abs(np.asarray(recommended) - np.asarray(natural)).sum() < SAME_MIXTURE_L1:
        return out
    for k in range(1, points + 1):
        share = k / (points + 1)
        out[f"{TOWARD_NATURAL}{round(100 * share)}"] = (1 - share) * recommended + share * natural
    return out


def decide(
    validation: dict[str, Any],
    direction: str,
    rules: list[ConstraintSpec] | None = None,
    allowed: Callable[[str], bool] | None = None,
) -> str | None:
    """The label of the validated mixture that should replace the recommendation, or None.

    A candidate must be a mixture (not an online baseline's ``schedule``), be ``allowed``
    (default: any), beat the recommendation with a paired interval that excludes zero and hold
    every guard rail; among those, the best seed mean wins."""
    mine = validation.get("recommended") or {}
    if mine.get("objective") is None:
        return None
    winners = []
    for label, summary in validation.items():
        if label == "recommended" or "schedule" in summary:
            continue
        if allowed is not None and not allowed(label):
            continue
        found = compare(summary, mine, direction, "recommended")
        if found is None or not found.paired or found.outcome != "beats":
            continue
        if rules:
            checks = check_guard_rails(rules, {**validation, "recommended": summary})
            if any(c.held is not True for c in checks):
                continue
        winners.append((found.gain, label))
    return max(winners)[1] if winners else None


def choose(
    problem: SearchProblem,
    recommendation: Recommendation,
    validation: dict[str, Any],
    at_target: dict[str, Any] | None,
    model: Any = None,
) -> tuple[Recommendation, dict[str, Any], dict[str, Any] | None]:
    """The final recommendation, validation summaries and target-scale section after
    :func:`decide` (unchanged when nothing beat the search's choice or ``validate.choose`` is
    ``search``). The chosen mixture's prediction is the target-scale law's when there is one
    (``model``: a :class:`~mixopt.search.scale.TargetModel`), else what validation measured."""
    from mixopt.proposers.base import Recommendation

    spec = problem.spec
    if spec.validate_.choose != "validated" or not validation:
        return recommendation, validation, at_target

    def keeps_groups(label: str) -> bool:  # a grouped search fixes shares within groups
        w = np.array([validation[label]["weights"][d] for d in problem.domains])
        h = problem.hierarchy
        return h.trivial or bool(np.allclose(h.expand(h.collapse(w)), w, atol=1e-6))

    rules = spec.objective.constraints
    label = decide(validation, spec.objective.direction, rules, keeps_groups)
    if label is None:
        return recommendation, validation, at_target
    validation = switch(validation, label)
    chosen = validation["recommended"]
    weights = np.array([chosen["weights"][d] for d in problem.domains])
    how = f"validation: {label} beat the search's recommendation at the validation scale"
    predicted, std = problem.sign * float(chosen["objective"]), chosen.get("objective_std")
    if model is not None and at_target is not None and at_target.get("available"):
        from mixopt.search import scale

        mean, spread = model.predict(
            weights[None], float(at_target["params"]), float(at_target["tokens"])
        )
        predicted, std = float(mean[0]), float(spread[0])
        mixtures = dict(at_target.get("mixtures") or {})
        if "recommended" in mixtures:
            mixtures[SEARCH_CHOICE] = mixtures["recommended"]
        mixtures["recommended"] = scale.describe(
            problem, model, {"recommended": weights}, spec.proxy
        )["recommended"]
        at_target = {**at_target, "mixtures": mixtures, "chosen_at_validation": label}
    final = Recommendation(
        weights=weights,
        predicted=predicted,
        predicted_std=None if std is None else float(std),
        evidence=recommendation.evidence,
        nearest=recommendation.nearest,
        method=f"{how} ({recommendation.method})",
    )
    return final, validation, at_target
