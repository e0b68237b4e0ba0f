"""Validation at scale: the recommended mixture against the baselines over seeds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mixopt.reporting.figures import MIXTURE_COLORS, color, figure, layout
from mixopt.reporting.jobdata import JobData
from mixopt.reporting.views.common import (
    MIXTURE_NAMES,
    MIXTURE_ORDER,
    as_float,
    finished,
    stage_text,
)
from mixopt.verdict import switch

if TYPE_CHECKING:
    pass


def _validation_from_runs(job: JobData) -> dict[str, dict[str, Any]]:
    frame = finished(job.runs, "validate")
    if frame is None:
        return {}
    summaries: dict[str, dict[str, Any]] = {}
    for label in dict.fromkeys(frame["label"].astype(str)):
        group = frame[frame["label"].astype(str) == label]
        values = group["objective"].astype(float).to_numpy()
        summaries[label] = {
            "objective": float(values.mean()),
            "objective_std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "seeds": len(values),
            "values": values.tolist(),
            "seed_list": [int(s) for s in group["seed"]] if "seed" in group.columns else [],
            "by_seed": {str(int(s)): float(v) for s, v in zip(group["seed"], values, strict=True)}
            if "seed" in group.columns
            else {},
            "trials": [str(t) for t in group["trial_id"]],
            "fidelity": str(group["fidelity"].iloc[0]) if "fidelity" in group.columns else "",
        }
    return summaries


def _chosen_at_validation(
    job: JobData, found: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The runs table labels trials by what they were planned as; when validation chose another
    mixture (``chosen_from`` in recommendation.json), it is the recommendation and the search's
    choice is shown as such."""
    validation = (job.recommendation or {}).get("validation") or {}
    chosen = (validation.get("recommended") or {}).get("chosen_from")
    if not chosen or chosen not in found or "recommended" not in found:
        return found
    return switch(found, chosen)


def _validation_from_recommendation(job: JobData) -> dict[str, dict[str, Any]]:
    """The recommendation's validation summaries (when the runs table cannot be read)."""
    validation = (job.recommendation or {}).get("validation") or {}
    return {
        str(label): {
            "objective": as_float(s.get("objective")),
            "objective_std": as_float(s.get("objective_std")),
            "seeds": int(s.get("seeds") or 0),
            "values": [],
            "seed_list": [],
            "by_seed": dict(s.get("by_seed") or {}),
            "trials": list(s.get("trials") or []),
            "fidelity": "",
        }
        for label, s in validation.items()
        if isinstance(s, dict) and as_float(s.get("objective")) is not None
    }


def validation_view(job: JobData) -> dict[str, Any]:
    enabled = job.job_spec.validate_.enabled if job.job_spec is not None else True
    found = _chosen_at_validation(job, _validation_from_runs(job))
    source = "runs table"
    if not found:
        found, source = _validation_from_recommendation(job), "recommendation.json"
    if not found:
        if not enabled:
            reason = "validation is turned off in the spec (validate.enabled: false)"
        else:
            reason = f"no validation trial has finished yet: the job is {stage_text(job)}"
        return {"available": False, "reason": reason}
    from mixopt.verdict import compare
    from mixopt.verdict import verdict as make_verdict

    labels = sorted(
        found, key=lambda s: MIXTURE_ORDER.index(s) if s in MIXTURE_ORDER else len(MIXTURE_ORDER)
    )
    summaries = {
        label: {"label": label, "name": MIXTURE_NAMES.get(label, label), **found[label]}
        for label in labels
    }
    mine = summaries.get("recommended")
    for label, summary in summaries.items():
        versus = (
            None
            if mine is None or label in ("recommended", mine.get("chosen_from"))
            else compare(mine, summary, job.direction, label)
        )
        summary["gain"] = None if versus is None else versus.gain
        summary["standard_errors"] = None if versus is None else versus.t
        summary["ci"] = None if versus is None or versus.ci is None else list(versus.ci)
        summary["paired"] = None if versus is None else versus.paired
        summary["outcome"] = None if versus is None else versus.outcome
    rec_verdict = (job.recommendation or {}).get("verdict")
    provisional = rec_verdict is None
    verdict_text = rec_verdict or make_verdict(summaries, job.direction)
    planned = job.job_spec.validate_.seeds if job.job_spec is not None else 0
    names = [summaries[label]["name"] for label in labels]
    bars = {
        "type": "bar",
        "name": "mean over seeds",
        "x": names,
        "y": [summaries[label]["objective"] for label in labels],
        "error_y": {
            "type": "data",
            "array": [summaries[label]["objective_std"] or 0.0 for label in labels],
            "visible": True,
            "color": "#333333",
        },
        "marker": {
            "color": [MIXTURE_COLORS.get(label, color(i)) for i, label in enumerate(labels)]
        },
        "opacity": 0.8,
        "hovertemplate": "%{x}: %{y:.4f} ± %{error_y.array:.4f}<extra></extra>",
    }
    seeds = {
        "type": "scatter",
        "mode": "markers",
        "name": "one seed",
        "x": [summaries[label]["name"] for label in labels for _ in summaries[label]["values"]],
        "y": [v for label in labels for v in summaries[label]["values"]],
        "marker": {"size": 8, "color": "#222222", "symbol": "circle-open"},
        "hovertemplate": "%{x}: %{y:.4f}<extra>one seed</extra>",
    }
    values = [v for s in summaries.values() for v in s["values"]] or [
        s["objective"] for s in summaries.values()
    ]
    spread = max(values) - min(values) if len(values) > 1 else abs(values[0]) * 0.01
    stds = [s["objective_std"] or 0.0 for s in summaries.values()]
    lo = min(values) - max(stds) - 0.5 * (spread or 1e-3)
    hi = max(values) + max(stds) + 0.5 * (spread or 1e-3)
    proxy = (job.recommendation or {}).get("validation_proxy")
    scale = (
        f"{proxy.get('arch', '')}:{proxy.get('preset', '')}:{proxy.get('train_tokens', '')}"
        if isinstance(proxy, dict)
        else summaries[labels[0]]["fidelity"]
    )
    return {
        "available": True,
        "rows": [summaries[label] for label in labels],
        "source": source,
        "verdict": verdict_text,
        "provisional": provisional,
        "direction": job.direction,
        "scale": scale,
        "seeds_planned": planned or None,
        "figure": figure(
            [bars, seeds],
            layout(
                f"Validation at {scale}: mean ± std over seeds",
                "mixture",
                "objective",
                yaxis={"range": [lo, hi]},
            ),
        ),
    }
