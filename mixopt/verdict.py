"""Validation summaries and the verdict: does the recommendation beat each baseline beyond noise?

Validation trains every mixture with the same seeds, and a seed fixes the initialisation, the
data order and the validation tokens (common random numbers). So the honest comparison is
*paired*: per seed, the difference between the baseline's objective and the recommendation's;
their mean is the gain, and a t-interval over the seeds says whether it is real. Pairing
removes the seed-to-seed spread the mixtures share, which is most of it, so a real gain shows
with few seeds. Summaries written before seeds were recorded per mixture fall back to the
unpaired rule (a gain beyond two standard errors of the difference of the means).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mixopt.trials import Trial, TrialStatus

CONFIDENCE = 0.95


def summarise(label: str, weights: dict[str, float], trials: list[Trial]) -> dict[str, Any]:
    """Mean objective over a mixture's validation seeds, the seed spread and each seed's value."""
    done = [t for t in trials if t.status is TrialStatus.COMPLETED]
    finite = [t for t in done if np.isfinite(t.result["objective"])]
    values = [float(t.result["objective"]) for t in finite]
    metrics = [t.result.get("metrics", {}) for t in done]
    return {
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
            return f"ties {self.baseline}: {amount}, the {evidence} includes 0"
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


def comparisons(validation: dict[str, Any], direction: str) -> dict[str, Comparison]:
    """Each baseline (every validated mixture but the recommendation) against the
    recommendation."""
    mine = validation.get("recommended", {})
    out = {}
    for label, other in validation.items():
        if label == "recommended":
            continue
        found = compare(mine, other, direction, label)
        if found is not None:
            out[label] = found
    return out


def verdict(validation: dict[str, Any], direction: str) -> str:
    """One sentence: does the recommendation beat each baseline, by how much, beyond noise?"""
    if validation.get("recommended", {}).get("objective") is None:
        return "not validated"
    parts = [c.sentence() for c in comparisons(validation, direction).values()]
    return "recommended " + "; ".join(parts) if parts else "no baselines"


def standard_error(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """Standard error of the difference of two seed means (None without a spread)."""
    if a.get("objective_std") is None or b.get("objective_std") is None:
        return None
    var = a["objective_std"] ** 2 / a["seeds"] + b["objective_std"] ** 2 / b["seeds"]
    return max(float(np.sqrt(var)), 1e-12)
