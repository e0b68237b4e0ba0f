"""The Pareto view: what the ``pareto`` strategy traded off, and whether its guard rails held.

From recommendation.json (nothing is refitted here): the ``pareto`` section the strategy wrote
(:meth:`mixopt.proposers.pareto.ParetoProposer.report`: its front of simulated mixtures, each
one's predicted objective and targets and the guard rails it meets, the chosen point and the
reason) and the ``guard_rails`` checks made on what validation measured
(:func:`mixopt.verdict.check_guard_rails`). The figure puts the front on the predicted objective
against the first guard rail's metric, the limit drawn and the chosen point marked; the table
lists each guard rail with its limit, the chosen point's predicted value, the validated value
and whether it held. Fields are read leniently: an odd one shows as missing.
"""

from __future__ import annotations

from typing import Any

from mixopt.reporting.figures import MIXTURE_COLORS, figure, layout
from mixopt.reporting.jobdata import JobData
from mixopt.reporting.views.common import as_float, stage_text

SECTION = "pareto"  # recommendation.json's section (the search driver writes the strategy's report)
FEASIBLE, INFEASIBLE, LIMIT = "#4C78A8", "#BAB0AC", "#E45756"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _numbers(value: Any) -> dict[str, float | None]:
    return {str(k): as_float(v) for k, v in _mapping(value).items()}


def _unavailable(job: JobData) -> str:
    strategy = job.job_spec.search.strategy if job.job_spec is not None else None
    if strategy is not None and strategy != "pareto":
        return (
            f"the search strategy is {strategy}: a Pareto front and guard rails come with "
            "search.strategy: pareto and objective.constraints"
        )
    if job.recommendation is None:
        return f"the Pareto set is recorded with the recommendation: the job is {stage_text(job)}"
    return "recommendation.json has no pareto section"


def _point(row: dict[str, Any]) -> dict[str, Any]:
    meets = row.get("meets")
    return {
        "weights": {k: v for k, v in _numbers(row.get("weights")).items() if v is not None},
        "predicted": _numbers(row.get("predicted")),
        "feasible": row.get("feasible") is True,
        "meets": [m is True for m in meets] if isinstance(meets, list) else [],
        "chosen": row.get("chosen") is True,
    }


def _guard_rails(rails: list[dict[str, Any]], checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each guard rail: the strategy's limit and prediction beside validation's check (matched
    by position, the spec's order, where the metrics agree; else by metric)."""
    rows = []
    for i, rail in enumerate(rails):
        metric = str(rail.get("metric", ""))
        check = checks[i] if i < len(checks) and checks[i].get("metric") == metric else None
        if check is None:
            check = next((c for c in checks if c.get("metric") == metric), {})
        held = check.get("held")
        ci = check.get("ci")
        rows.append(
            {
                "metric": metric,
                "rule": str(check.get("rule") or ""),
                "limit": as_float(rail.get("limit")),
                "predicted": as_float(rail.get("predicted")),
                "predicted_met": rail.get("met") is True,
                "validated_limit": as_float(check.get("limit")),
                "validated": as_float(check.get("value")),
                "excess": as_float(check.get("excess")),
                "ci": [as_float(v) for v in ci] if isinstance(ci, list) and len(ci) == 2 else None,
                "held": held if isinstance(held, bool) else None,
                "outcome": str(check.get("outcome") or "not validated"),
                "sentence": str(check.get("sentence") or ""),
            }
        )
    return rows


def pareto_view(job: JobData) -> dict[str, Any]:
    recommendation = job.recommendation or {}
    section = recommendation.get(SECTION)
    if not isinstance(section, dict) or not section:
        return {"available": False, "reason": _unavailable(job)}
    front = [_point(row) for row in _list(section.get("front"))]
    chosen = _point(_mapping(section.get("chosen")))
    rails = _list(section.get("guard_rails"))
    rows = _guard_rails(rails, _list(recommendation.get("guard_rails")))
    metric = rows[0]["metric"] if rows else None
    domains = list(job.domains)
    for point in [chosen, *front]:
        domains += [d for d in point["weights"] if d not in domains]
    return {
        "available": True,
        "predictor": str(section.get("predictor") or ""),
        "simulated": as_float(section.get("simulated")),
        "feasible_simulated": as_float(section.get("feasible_simulated")),
        "front_size": len(front),
        "front_feasible": sum(p["feasible"] for p in front),
        "metric": metric,
        "domains": domains,
        "chosen": {
            **chosen,
            "on_front": _mapping(section.get("chosen")).get("on_front") is True,
            "reason": str(_mapping(section.get("chosen")).get("reason") or ""),
            "violation": as_float(_mapping(section.get("chosen")).get("violation")),
        },
        "guard_rails": rows,
        "validated": bool(recommendation.get("guard_rails")),
        "figure": _figure(front, chosen, metric, rows[0]["limit"] if rows else None),
    }


def _figure(
    front: list[dict[str, Any]],
    chosen: dict[str, Any],
    metric: str | None,
    limit: float | None,
) -> dict[str, Any] | None:
    """The front on the predicted objective (x) and the first guard rail's metric (y)."""
    if metric is None or not front:
        return None

    def xy(points: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
        return (
            [p["predicted"].get("objective") for p in points],
            [p["predicted"].get(metric) for p in points],
        )

    data: list[dict[str, Any]] = []
    for name, colour, points in (
        ("front, meets every guard rail", FEASIBLE, [p for p in front if p["feasible"]]),
        ("front, breaks a guard rail", INFEASIBLE, [p for p in front if not p["feasible"]]),
    ):
        if points:
            x, y = xy(points)
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": name,
                    "x": x,
                    "y": y,
                    "marker": {"size": 7, "color": colour},
                    "hovertemplate": f"objective %{{x:.4f}}<br>{metric} %{{y:.4f}}<extra></extra>",
                }
            )
    xs = [x for x in xy(front)[0] if x is not None]
    if limit is not None and xs:
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"limit on {metric}",
                "x": [min(xs), max(xs)],
                "y": [limit, limit],
                "line": {"color": LIMIT, "width": 1.5, "dash": "dash"},
                "hovertemplate": f"limit {limit:.4f}<extra></extra>",
            }
        )
    x, y = xy([chosen])
    if x[0] is not None and y[0] is not None:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "chosen",
                "x": x,
                "y": y,
                "marker": {
                    "size": 16,
                    "color": MIXTURE_COLORS["recommended"],
                    "symbol": "star",
                    "line": {"color": "#222222", "width": 1},
                },
                "hovertemplate": f"chosen: objective %{{x:.4f}}, {metric} %{{y:.4f}}"
                "<extra></extra>",
            }
        )
    return figure(
        data,
        layout(
            f"Pareto front: predicted objective against {metric}",
            "predicted objective",
            f"predicted {metric}",
        ),
    )
