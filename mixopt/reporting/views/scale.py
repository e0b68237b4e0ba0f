"""The recommendation at the target scale: what the scale-aware law predicts for each mixture
at the target's size and at the search proxy's, the law chosen and how well each law
extrapolated, the shrink toward natural and the flags, the law's calibration at the validation
proxy, and each mixture's predicted objective along the model sizes from proxy to target (and
its difference from the natural mixture's there, where a change of ranking with scale shows).

Everything comes from recommendation.json's ``target_scale`` section
(:meth:`~mixopt.reporting.jobdata.JobData.target_scale`); nothing is refitted here.
"""

from __future__ import annotations

from typing import Any

from mixopt.reporting.figures import MIXTURE_COLORS, color, figure, layout
from mixopt.reporting.jobdata import JobData, ScaleCalibration, ScaleCurves, TargetScale
from mixopt.reporting.views.common import MIXTURE_NAMES, MIXTURE_ORDER, stage_text


def _ordered(labels: list[str]) -> list[str]:
    known = [label for label in MIXTURE_ORDER if label in labels]
    return known + [label for label in labels if label not in known]


def _name(label: str) -> str:
    return MIXTURE_NAMES.get(label, label)


def _unavailable(job: JobData) -> str:
    target = job.job_spec.target if job.job_spec is not None else None
    if target is not None and (target.params is None or target.tokens is None):
        return (
            "the spec sets no target scale (target.params and target.tokens): the "
            "recommendation is the search proxy's"
        )
    if job.recommendation is None:
        return f"the target-scale law is fitted when the search ends: the job is {stage_text(job)}"
    return "recommendation.json has no target-scale section"


def scale_view(job: JobData) -> dict[str, Any]:
    section = job.target_scale()
    if section is None:
        return {"available": False, "reason": _unavailable(job)}
    if not section.available:
        return {"available": False, "reason": f"no target-scale recommendation: {section.reason}"}
    labels = _ordered(list(section.mixtures))
    domains = list(job.domains)
    for mixture in section.mixtures.values():
        domains += [d for d in mixture.weights if d not in domains]
    rows = [
        {
            "label": label,
            "name": _name(label),
            "weights": section.mixtures[label].weights,
            "objective": section.mixtures[label].objective,
            "objective_std": section.mixtures[label].objective_std,
            "objective_at_proxy": section.mixtures[label].objective_at_proxy,
        }
        for label in labels
    ]
    return {
        "available": True,
        "params": section.params,
        "tokens": section.tokens,
        "law": section.law,
        "fitted_on": section.fitted_on,
        "domains": domains,
        "rows": rows,
        "scores": [
            {"law": law, "chosen": _member(law, score, section.law), **score}
            for law, score in section.scores.items()
        ],
        "shrink": section.shrink,
        "unshrunk": section.unshrunk,
        "flags": list(section.flags),
        "calibration": _calibration(section.calibration),
        "notes": [f"recommendation.json target_scale: {p}" for p in section.problems],
        "figure": _figure(section, section.curves) if section.curves is not None else None,
        "figure_gap": _gap_figure(section.curves) if section.curves is not None else None,
    }


def _calibration(calibration: ScaleCalibration | None) -> dict[str, Any] | None:
    if calibration is None:
        return None
    labels = _ordered([row.label for row in calibration.rows])
    by_label = {row.label: row for row in calibration.rows}
    rows = []
    for label in labels:
        row = by_label[label]
        error = (
            None if row.predicted is None or row.observed is None else row.predicted - row.observed
        )
        rows.append(
            {
                "label": label,
                "name": _name(label),
                "predicted": row.predicted,
                "predicted_std": row.predicted_std,
                "observed": row.observed,
                "error": error,
                "at_search_scale": row.at_search_scale,
            }
        )
    return {
        "params": calibration.params,
        "tokens": calibration.tokens,
        "rows": rows,
        "mape": calibration.mape,
        "spearman_law": calibration.spearman_law,
        "spearman_search_scale": calibration.spearman_search_scale,
    }


def _figure(section: TargetScale, curves: ScaleCurves) -> dict[str, Any] | None:
    labels = _ordered([label for label in curves.objective if curves.objective[label]])
    if not labels:
        return None
    tokens: list[float | None] = [*curves.tokens] or [None] * len(curves.params)
    data: list[dict[str, Any]] = []
    for i, label in enumerate(labels):
        colour = MIXTURE_COLORS.get(label, color(i))
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": _name(label),
                "x": curves.params,
                "y": curves.objective[label],
                "customdata": tokens,
                "error_y": {
                    "type": "data",
                    "array": [v or 0.0 for v in curves.objective_std[label]],
                    "visible": True,
                    "thickness": 1,
                    "color": colour,
                },
                "line": {"color": colour, "width": 2},
                "marker": {"color": colour, "size": 6},
                "hovertemplate": f"{_name(label)}<br>N=%{{x:.3g}}, D=%{{customdata:.3g}}: "
                "%{y:.4f} ± %{error_y.array:.4f}<extra></extra>",
            }
        )
    calibration = section.calibration
    if calibration is not None and calibration.params is not None:
        measured = [row for row in calibration.rows if row.observed is not None]
        if measured:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": "measured at the validation proxy",
                    "x": [calibration.params] * len(measured),
                    "y": [row.observed for row in measured],
                    "text": [_name(row.label) for row in measured],
                    "marker": {"size": 9, "color": "#222222", "symbol": "circle-open"},
                    "hovertemplate": "%{text}: measured %{y:.4f} at N=%{x:.3g}, "
                    f"D={calibration.tokens or 0:.3g}<extra></extra>",
                }
            )
    n0, n1 = curves.params[0], curves.params[-1]
    return figure(
        data,
        layout(
            f"Predicted objective from the search proxy (N={n0:.3g}) to the target "
            f"(N={n1:.3g}), tokens scaled alongside",
            "model size N (non-embedding parameters, log scale)",
            "predicted objective",
            xaxis={"type": "log"},
        ),
    )


def _gap_figure(curves: ScaleCurves) -> dict[str, Any] | None:
    """Each mixture's predicted objective minus the natural mixture's, along N."""
    natural = curves.objective.get("natural")
    labels = _ordered([label for label in curves.objective if label != "natural"])
    if natural is None or not labels:
        return None
    data = []
    for i, label in enumerate(labels):
        colour = MIXTURE_COLORS.get(label, color(i))
        gaps = [
            None if a is None or b is None else a - b
            for a, b in zip(curves.objective[label], natural, strict=True)
        ]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": _name(label),
                "x": curves.params,
                "y": gaps,
                "line": {"color": colour, "width": 2},
                "marker": {"color": colour, "size": 6},
                "hovertemplate": f"{_name(label)}<br>N=%{{x:.3g}}: %{{y:+.4f}} vs natural"
                "<extra></extra>",
            }
        )
    return figure(
        data,
        layout(
            "Predicted objective minus the natural mixture's, by model size",
            "model size N (non-embedding parameters, log scale)",
            "difference from natural",
            xaxis={"type": "log"},
        ),
    )


def _member(law: str, score: dict[str, Any], chosen: str) -> bool:
    """Whether the law predicts: a member with weight (an averaged selector), else the one
    named (an older file, one law chosen)."""
    weight = score.get("weight")
    return bool(weight) if weight is not None else law == chosen
