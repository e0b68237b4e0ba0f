"""The recommended mixture against the baselines, and the trials' mixtures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mixopt.reporting.figures import MIXTURE_COLORS, color, figure, layout
from mixopt.reporting.jobdata import JobData
from mixopt.reporting.views.common import (
    MIXTURE_NAMES,
    MIXTURE_ORDER,
    best_search_trial,
    weight_columns,
)

if TYPE_CHECKING:
    import pandas as pd


def candidate_mixtures(job: JobData) -> dict[str, dict[str, float]]:
    """The mixtures compared: the recommendation and the baselines the job validates (their
    validated weights once validation ran; before, the natural and uniform mixtures, the
    user's ``validate.current`` and the best trial so far)."""
    domains = job.domains
    out: dict[str, dict[str, float]] = {}
    rec = job.recommendation or {}
    validation = rec.get("validation") or {}
    for label, summary in validation.items():
        if isinstance(summary, dict) and isinstance(summary.get("weights"), dict):
            out[str(label)] = {str(k): float(v) for k, v in summary["weights"].items()}
    if isinstance(rec.get("weights"), dict):
        out["recommended"] = {str(k): float(v) for k, v in rec["weights"].items()}
    natural = job.natural()
    if "natural" not in out and natural is not None:
        out["natural"] = natural
    if "uniform" not in out and domains:
        out["uniform"] = {d: 1.0 / len(domains) for d in domains}
    current = job.job_spec.validate_.current if job.job_spec is not None else None
    if "current" not in out and isinstance(current, dict):
        out["current"] = {str(k): float(v) for k, v in current.items()}
    if "best_trial" not in out:
        best = best_search_trial(job)
        if best is not None and job.runs is not None:
            row = job.runs[job.runs["trial_id"] == best[0]].iloc[0]
            out["best_trial"] = {
                d: float(row[f"weight/{d}"]) for d in domains if f"weight/{d}" in row.index
            }
    ordered = {k: out[k] for k in MIXTURE_ORDER if k in out}
    ordered.update({k: v for k, v in out.items() if k not in ordered})
    return ordered


def mixtures_view(job: JobData, search: pd.DataFrame | None) -> dict[str, Any]:
    domains = job.domains
    mixtures = candidate_mixtures(job)
    if not domains or not mixtures:
        return {"available": False, "reason": "the job's domains are not known yet"}
    bars = [
        {
            "type": "bar",
            "name": MIXTURE_NAMES.get(label, label),
            "x": domains,
            "y": [weights.get(d) for d in domains],
            "marker": {"color": MIXTURE_COLORS.get(label, color(i))},
            "hovertemplate": "%{x}: %{y:.3f}<extra>%{fullData.name}</extra>",
        }
        for i, (label, weights) in enumerate(mixtures.items())
    ]
    view: dict[str, Any] = {
        "available": True,
        "domains": domains,
        "mixtures": mixtures,
        "labels": {k: MIXTURE_NAMES.get(k, k) for k in mixtures},
        "figure_bars": figure(
            bars, layout("Recommended mixture vs baselines", "domain", "weight", barmode="group")
        ),
        "figure_trials": None,
        "trial_order": [],
    }
    if search is not None:
        columns = weight_columns(job, search)
        ordered = search.sort_values("objective", ascending=job.direction == "minimize")
        ids = [str(t) for t in ordered["trial_id"]]
        traces = [
            {
                "type": "bar",
                "name": column.removeprefix("weight/"),
                "x": ids,
                "y": ordered[column].astype(float).tolist(),
                "marker": {"color": color(i)},
                "hovertemplate": "%{x}: %{y:.3f}<extra>%{fullData.name}</extra>",
            }
            for i, column in enumerate(columns)
        ]
        view["trial_order"] = ids
        view["figure_trials"] = figure(
            traces,
            layout(
                "Search trials' mixtures, best objective first",
                "trial",
                "weight",
                barmode="stack",
                xaxis={"type": "category", "tickangle": -60},
                yaxis={"range": [0, 1]},
            ),
        )
    return view
