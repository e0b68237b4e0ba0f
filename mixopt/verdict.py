"""Validation summaries: does the recommendation beat each baseline beyond seed noise?"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixopt.trials import Trial, TrialStatus


def summarise(label: str, weights: dict[str, float], trials: list[Trial]) -> dict[str, Any]:
    """Mean objective over a mixture's validation seeds, with the seed spread."""
    done = [t for t in trials if t.status is TrialStatus.COMPLETED]
    values = [t.result["objective"] for t in done if np.isfinite(t.result["objective"])]
    metrics = [t.result.get("metrics", {}) for t in done]
    return {
        "weights": weights,
        "objective": float(np.mean(values)) if values else None,
        "objective_std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "seeds": len(values),
        "metrics": {k: float(np.mean([m[k] for m in metrics if k in m])) for k in metrics[0]}
        if metrics
        else {},
        "trials": [t.trial_id for t in trials],
        "label": label,
    }


def verdict(validation: dict[str, Any], direction: str) -> str:
    """One sentence: does the recommendation beat each baseline, by how much, beyond seed noise?

    A gain counts as a win when it exceeds two standard errors of the difference of the seed
    means (with one seed there is no spread, and the sentence says so).
    """
    mine = validation.get("recommended", {})
    if mine.get("objective") is None:
        return "not validated"
    parts = []
    for label, other in validation.items():
        if label == "recommended" or other.get("objective") is None:
            continue
        gain = other["objective"] - mine["objective"]
        gain = gain if direction == "minimize" else -gain
        relative = f"{gain:+.4f} ({100 * gain / abs(other['objective']):+.2f}%)"
        se = standard_error(mine, other)
        if se is None:
            word = "beats" if gain > 0 else "does not beat"
            parts.append(f"{word} {label} by {relative}, one seed (no spread)")
        elif gain > 2 * se:
            parts.append(f"beats {label} by {relative}, {gain / se:.1f} standard errors")
        elif gain < -2 * se:
            parts.append(f"loses to {label} by {relative}, {-gain / se:.1f} standard errors")
        else:
            parts.append(f"ties {label}: {relative} is within 2 standard errors ({se:.4f})")
    return "recommended " + "; ".join(parts) if parts else "no baselines"


def standard_error(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """Standard error of the difference of two seed means (None without a spread)."""
    if a.get("objective_std") is None or b.get("objective_std") is None:
        return None
    var = a["objective_std"] ** 2 / a["seeds"] + b["objective_std"] ** 2 / b["seeds"]
    return max(float(np.sqrt(var)), 1e-12)
