"""The mixture over training: each stage of a staged recommendation, in training order.

A job with mixture stages (``stages:`` in the spec) trains on a different mixture in each stage;
``recommendation.json`` carries the whole schedule (``stages``), read here the way the exports
read it (:func:`mixopt.export.blend.read_stages`). The view has each stage's name, share, range
of the run (and of ``target.tokens``), its weights, the mixture the whole run consumes (the
share-weighted weights) and a stacked bar per stage. A single-stage job has no such view
(:func:`stages_view` returns None).
"""

from __future__ import annotations

from typing import Any

from mixopt.errors import MixoptError
from mixopt.reporting.figures import color, figure, layout
from mixopt.reporting.jobdata import JobData
from mixopt.reporting.views.common import stage_text


def stages_view(job: JobData) -> dict[str, Any] | None:
    """The view of a staged job; None for a single-stage job (the page shows no section)."""
    from mixopt.export.blend import read_stages

    rec = job.recommendation
    raw = rec.get("stages") if rec is not None else None
    planned = job.job_spec.stages if job.job_spec is not None else []
    if raw is None and not planned:
        return None
    if rec is None:
        reason = f"no recommendation yet: the job is {stage_text(job)}"
        return {"available": False, "reason": reason}
    if raw is None:
        return {
            "available": False,
            "reason": "the spec has mixture stages but recommendation.json has no stage schedule "
            "(it was written by an older mixopt)",
        }
    domains = job.domains
    try:
        stages = read_stages(rec, domains, "recommendation.json")
    except MixoptError as error:
        return {"available": False, "reason": str(error)}
    tokens = job.job_spec.target.tokens if job.job_spec is not None else None
    rows = [
        {
            "index": s.index,
            "name": s.name,
            "label": s.label,
            "x": f"{s.index}: {s.name or 'stage'}{' (searched)' if s.searched else ''} "
            f"· {s.share:.0%}",
            "share": s.share,
            "start": round(s.start, 9),
            "end": round(s.end, 9),
            "searched": s.searched,
            "tokens": None if tokens is None else [s.start * tokens, s.end * tokens],
            "weights": s.weights,
        }
        for s in stages
    ]
    overall = {d: sum(s.share * s.weights[d] for s in stages) for d in domains}
    xs = [row["x"] for row in rows]
    bars = [
        {
            "type": "bar",
            "name": domain,
            "x": xs,
            "y": [s.weights[domain] for s in stages],
            "marker": {"color": color(i)},
            "hovertemplate": "%{x}<br>" + domain + ": %{y:.3f}<extra></extra>",
        }
        for i, domain in enumerate(domains)
    ]
    return {
        "available": True,
        "domains": domains,
        "stages": rows,
        "overall": overall,
        "target_tokens": tokens,
        "figure": figure(
            bars,
            layout(
                "Recommended mixture over training (stages in training order, share of tokens)",
                "stage",
                "weight",
                barmode="stack",
                xaxis={"type": "category"},
                yaxis={"range": [0, 1]},
            ),
        ),
    }
