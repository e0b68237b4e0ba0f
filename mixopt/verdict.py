"""Validation summaries and the verdict: does the recommendation beat each baseline beyond noise?

Validation trains every mixture with the same seeds, and a seed fixes the initialisation, the
data order and the validation tokens (common random numbers). So the honest comparison is
*paired*: per seed, the difference between the baseline's objective and the recommendation's;
their mean is the gain, and a t-interval over the seeds says whether it is real. Pairing
removes the seed-to-seed spread the mixtures share, which is most of it, so a real gain shows
with few seeds. Summaries written before seeds were recorded per mixture fall back to the
unpaired rule (a gain beyond two standard errors of the difference of the means).

Guard rails (``objective.constraints``) are checked again on what validation measured
(:func:`check_guard_rails`): the recommendation's seed mean of the metric against the limit, the
limit of a relative guard rail taken from its baseline validated with the same seeds, and the
per-seed excess over the limit (paired with the baseline's seeds) with its interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.trials import Trial, TrialStatus

if TYPE_CHECKING:
    from mixopt.spec.objective import ConstraintSpec

CONFIDENCE = 0.95
SEARCH_CHOICE = "search_choice"  # the search's recommendation, when validation chose another
DOREMI = "doremi"  # the label of the DoReMi baseline (mixopt.search.online)
AIOLI = "aioli"  # the label of the Aioli baseline, validated as its schedule


def summarise(label: str, weights: dict[str, float], trials: list[Trial]) -> dict[str, Any]:
    """Mean objective over a mixture's validation seeds, the seed spread and each seed's value."""
    done = [t for t in trials if t.status is TrialStatus.COMPLETED]
    finite = [t for t in done if np.isfinite(t.result["objective"])]
    values = [float(t.result["objective"]) for t in finite]
    metrics = [t.result.get("metrics", {}) for t in done]
    return {
        "metrics_by_seed": {
            str(t.seed): {k: float(v) for k, v in t.result.get("metrics", {}).items()}
            for t in finite
        },
        "weights": weights,
        "objective": float(np.mean(values)) if values else None,
        "objective_std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "seeds": len(values),
        "by_seed": {str(t.seed): float(t.result["objective"]) for t in finite},
        "metrics": {k: float(np.mean([m[k] for m in metrics if k in m])) for k in metrics[0]}
        if metrics
        else {},
        "trials": [t.trial_id for t in trials],
        "label": label,
    }


@dataclass(frozen=True)
class Comparison:
    """The recommendation against one baseline; ``gain`` > 0 means the recommendation is
    better (lower when minimising)."""

    baseline: str
    gain: float
    relative: float  # gain / |baseline objective|
    paired: bool
    seeds: int  # pairs (paired) or the smaller number of seeds
    se: float | None  # standard error of the gain
    ci: tuple[float, float] | None  # CONFIDENCE interval of the gain (paired)
    t: float | None  # gain / se
    p_value: float | None  # two-sided (paired t-test)
    effect_size: float | None  # paired: mean / sd of the differences (Cohen's d_z)

    @property
    def outcome(self) -> str:
        """beats | loses | ties | unknown (no spread to judge by)."""
        if self.paired and self.ci is not None:
            return "beats" if self.ci[0] > 0 else "loses" if self.ci[1] < 0 else "ties"
        if self.se is None:
            return "unknown"
        return (
            "beats" if self.gain > 2 * self.se else "loses" if self.gain < -2 * self.se else "ties"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci"] = None if self.ci is None else list(self.ci)
        data["outcome"] = self.outcome
        return data

    def sentence(self) -> str:
        amount = f"{self.gain:+.4f} ({100 * self.relative:+.2f}%)"
        if self.paired and self.ci is not None:
            lo, hi = self.ci
            evidence = (
                f"paired over {self.seeds} seeds, {CONFIDENCE:.0%} CI [{lo:+.4f}, {hi:+.4f}], "
                f"t = {self.t:.1f}"
            )
            if self.outcome == "beats":
                return f"beats {self.baseline} by {amount}, {evidence}"
            if self.outcome == "loses":
                return f"loses to {self.baseline} by {amount}, {evidence}"
            return f"ties {self.baseline}: {amount}, {evidence} (the interval includes 0)"
        if self.se is None:
            word = "beats" if self.gain > 0 else "does not beat"
            return f"{word} {self.baseline} by {amount}, one seed (no spread)"
        if self.outcome == "beats":
            return f"beats {self.baseline} by {amount}, {self.gain / self.se:.1f} standard errors"
        if self.outcome == "loses":
            return (
                f"loses to {self.baseline} by {amount}, {-self.gain / self.se:.1f} standard errors"
            )
        return f"ties {self.baseline}: {amount} is within 2 standard errors ({self.se:.4f})"


def compare(
    mine: dict[str, Any], other: dict[str, Any], direction: str, baseline: str = ""
) -> Comparison | None:
    """The recommendation's summary ``mine`` against a baseline's; None if either has no value."""
    if mine.get("objective") is None or other.get("objective") is None:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    base = float(other["objective"])
    relative_to = abs(base) if base else 1.0
    shared = sorted(set(mine.get("by_seed") or {}) & set(other.get("by_seed") or {}))
    if len(shared) >= 2:
        diffs = np.array(
            [sign * (other["by_seed"][s] - mine["by_seed"][s]) for s in shared], dtype=float
        )
        gain, n = float(diffs.mean()), len(diffs)
        sd = float(diffs.std(ddof=1))
        se = max(sd / math.sqrt(n), 1e-12)
        from scipy.stats import t as student

        half = float(student.ppf(0.5 + CONFIDENCE / 2, df=n - 1)) * se
        t_value = gain / se
        return Comparison(
            baseline=baseline,
            gain=gain,
            relative=gain / relative_to,
            paired=True,
            seeds=n,
            se=se,
            ci=(gain - half, gain + half),
            t=t_value,
            p_value=float(2 * student.sf(abs(t_value), df=n - 1)),
            effect_size=gain / sd if sd > 0 else None,
        )
    gain = sign * (base - float(mine["objective"]))
    spread = standard_error(mine, other)
    return Comparison(
        baseline=baseline,
        gain=gain,
        relative=gain / relative_to,
        paired=False,
        seeds=min(int(mine.get("seeds") or 1), int(other.get("seeds") or 1)),
        se=spread,
        ci=None,
        t=None if spread is None else gain / spread,
        p_value=None,
        effect_size=None,
    )


def switch(validation: dict[str, Any], label: str) -> dict[str, Any]:
    """The summaries with ``label``'s as the recommendation's (``chosen_from`` names it; it
    stays under its own label too, for guard rails relative to it) and the search's
    recommendation kept as ``search_choice``."""
    out = {"recommended": {**validation[label], "label": "recommended", "chosen_from": label}}
    out[SEARCH_CHOICE] = {**validation["recommended"], "label": SEARCH_CHOICE}
    out.update({k: v for k, v in validation.items() if k != "recommended"})
    return out


def comparisons(validation: dict[str, Any], direction: str) -> dict[str, Comparison]:
    """Each baseline (every validated mixture but the recommendation, and the one it was chosen
    from at validation) against the recommendation."""
    mine = validation.get("recommended", {})
    out = {}
    for label, other in validation.items():
        if label in ("recommended", mine.get("chosen_from")):
            continue
        found = compare(mine, other, direction, label)
        if found is not None:
            out[label] = found
    return out


def verdict(
    validation: dict[str, Any],
    direction: str,
    guard_rails: Sequence[GuardRailCheck] = (),
) -> str:
    """One sentence: does the recommendation beat each baseline, by how much, beyond noise?
    And did each guard rail hold?"""
    if validation.get("recommended", {}).get("objective") is None:
        return "not validated"
    parts = [c.sentence() for c in comparisons(validation, direction).values()]
    chosen = validation["recommended"].get("chosen_from")
    head = f"recommended ({chosen}, chosen at validation) " if chosen else "recommended "
    text = head + "; ".join(parts) if parts else "no baselines"
    return "; ".join([text, *(f"guard rail {c.sentence()}" for c in guard_rails)])


@dataclass(frozen=True)
class GuardRailCheck:
    """A guard rail on what validation measured: the recommendation's seed mean of ``metric``
    against ``limit`` (a relative guard rail's limit from its baseline's seed mean), and the
    excess over the limit seed by seed (paired with the baseline's seeds)."""

    metric: str
    rule: str  # "at most 1% above natural" | "at most 3.2000"
    relative_to: str | None  # the baseline of a relative guard rail
    value: float | None  # the recommendation's seed mean (None: not measured)
    baseline_value: float | None  # the baseline's seed mean (relative guard rails)
    limit: float | None
    excess: float | None  # value - limit: <= 0 holds
    paired: bool  # the excess was taken seed by seed against the baseline
    seeds: int  # seeds the excess is over
    ci: tuple[float, float] | None  # CONFIDENCE interval of the mean excess (>= 2 seeds)

    @property
    def held(self) -> bool | None:
        return None if self.excess is None else self.excess <= 0

    @property
    def outcome(self) -> str:
        """held | broken | not measured."""
        return {None: "not measured", True: "held", False: "broken"}[self.held]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci"] = None if self.ci is None else list(self.ci)
        data["held"], data["outcome"], data["sentence"] = self.held, self.outcome, self.sentence()
        return data

    def sentence(self) -> str:
        if self.value is None or self.limit is None or self.excess is None:
            missing = self.relative_to if self.value is not None else "the recommendation"
            return f"{self.metric} ({self.rule}) not measured: no validated value for {missing}"
        text = (
            f"{self.metric} {self.outcome}: {self.value:.4f} against the limit {self.limit:.4f} "
            f"({self.rule}), excess {self.excess:+.4f}"
        )
        if self.ci is not None:
            lo, hi = self.ci
            how = "paired with the baseline's seeds" if self.paired else "over seeds"
            text += f", {how}: {self.seeds} seeds, {CONFIDENCE:.0%} CI [{lo:+.4f}, {hi:+.4f}]"
            if lo <= 0 <= hi:
                text += " (within noise)"
        return text


def check_guard_rails(
    rules: Sequence[ConstraintSpec], validation: dict[str, Any]
) -> list[GuardRailCheck]:
    """Each guard rail (the spec's ``objective.constraints``) on the validation summaries."""
    return [_check(rule, validation) for rule in rules]


def _check(rule: ConstraintSpec, validation: dict[str, Any]) -> GuardRailCheck:
    metric = rule.metric
    mine = validation.get("recommended") or {}
    value = (mine.get("metrics") or {}).get(metric)
    mine_seeds = _metric_by_seed(mine, metric)
    if rule.max_value is not None:
        rule_text, relative_to, factor = f"at most {rule.max_value:.4f}", None, None
        base_value: float | None = None
        limit: float | None = float(rule.max_value)
        excess_by_seed = {s: v - rule.max_value for s, v in mine_seeds.items()}
    else:
        increase = rule.max_increase or 0.0
        relative_to, factor = rule.relative_to, 1.0 + increase
        rule_text = f"at most {100 * increase:g}% above {relative_to}"
        other = validation.get(relative_to) or {}
        base_value = (other.get("metrics") or {}).get(metric)
        limit = None if base_value is None else float(base_value) * factor
        theirs = _metric_by_seed(other, metric)
        excess_by_seed = {s: v - factor * theirs[s] for s, v in mine_seeds.items() if s in theirs}
    excess = None if value is None or limit is None else float(value) - limit
    ci = None
    diffs = np.array(list(excess_by_seed.values()), dtype=float)
    if excess is not None and len(diffs) >= 2:
        from scipy.stats import t as student

        se = max(float(diffs.std(ddof=1)) / math.sqrt(len(diffs)), 1e-12)
        half = float(student.ppf(0.5 + CONFIDENCE / 2, df=len(diffs) - 1)) * se
        ci = (float(diffs.mean()) - half, float(diffs.mean()) + half)
    return GuardRailCheck(
        metric=metric,
        rule=rule_text,
        relative_to=relative_to,
        value=None if value is None else float(value),
        baseline_value=None if base_value is None else float(base_value),
        limit=limit,
        excess=excess,
        paired=relative_to is not None and ci is not None,
        seeds=len(diffs),
        ci=ci,
    )


def _metric_by_seed(summary: dict[str, Any], metric: str) -> dict[str, float]:
    by_seed = summary.get("metrics_by_seed") or {}
    return {
        str(seed): float(values[metric])
        for seed, values in by_seed.items()
        if isinstance(values, dict) and isinstance(values.get(metric), int | float)
    }


def standard_error(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """Standard error of the difference of two seed means (None without a spread)."""
    if a.get("objective_std") is None or b.get("objective_std") is None:
        return None
    var = a["objective_std"] ** 2 / a["seeds"] + b["objective_std"] ** 2 / b["seeds"]
    return max(float(np.sqrt(var)), 1e-12)
