"""MoE proxies: expert load over training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mixopt.reporting.figures import color, figure, layout
from mixopt.reporting.jobdata import JobData, trial_order
from mixopt.reporting.views.common import as_float, best_search_trial

if TYPE_CHECKING:
    pass


def _expert_series(trial: dict[str, Any]) -> list[tuple[int, list[list[int]]]]:
    result = trial.get("result") or {}
    series: list[tuple[int, list[list[int]]]] = []
    for record in result.get("evals") or []:
        counts = record.get("expert_counts") if isinstance(record, dict) else None
        if counts:
            series.append((int(record.get("tokens", 0)), counts))
    final = result.get("expert_counts")
    tokens = int(result.get("tokens") or 0)
    if final and (not series or tokens > series[-1][0]):
        series.append((tokens, final))
    return series


def moe_view(job: JobData) -> dict[str, Any]:
    from mixopt.reporting.analysis import expert_shares, max_load

    arch = job.job_spec.proxy.arch if job.job_spec is not None else "dense"
    series = {
        str(t["trial_id"]): _expert_series(t)
        for t in sorted(job.trials, key=lambda t: trial_order(str(t.get("trial_id", ""))))
        if t.get("trial_id") is not None
    }
    series = {k: v for k, v in series.items() if v}
    if not series:
        if arch != "moe":
            reason = f"the proxies are dense (proxy.arch: {arch}): no experts to show"
        elif not job.trials and job.job_dir is not None:
            reason = "no trial results to read (state.json is missing)"
        else:
            reason = "no MoE trial has finished yet"
        return {"available": False, "reason": reason}
    stages = {str(t.get("trial_id")): str(t.get("stage", "search")) for t in job.trials}
    runs_max_load: dict[str, float | None] = {}
    dropped: dict[str, float | None] = {}
    if job.runs is not None and "moe/max_load" in job.runs.columns:
        for data in job.runs.to_dict("records"):
            runs_max_load[str(data["trial_id"])] = as_float(data.get("moe/max_load"))
    if job.runs is not None and "moe/dropped_tokens" in job.runs.columns:
        for trial_id, value in zip(
            job.runs["trial_id"], job.runs["moe/dropped_tokens"], strict=True
        ):
            dropped[str(trial_id)] = as_float(value)
    lines, rows, per_trial = [], [], {}
    for index, (trial_id, points) in enumerate(series.items()):
        loads = [max_load(counts) for _, counts in points]
        lines.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": trial_id,
                "x": [tokens for tokens, _ in points],
                "y": loads,
                "line": {"color": color(index), "width": 1.5},
                "marker": {"size": 5},
                "hovertemplate": "%{x} tokens: max load %{y:.3f}<extra>%{fullData.name}</extra>",
            }
        )
        shares = [expert_shares(counts) for _, counts in points]
        n_experts = max((len(s) for s in shares if s is not None), default=0)
        n_layers = len(points[-1][1])
        per_trial[trial_id] = figure(
            [
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": f"expert {e}",
                    "x": [tokens for tokens, _ in points],
                    "y": [None if s is None else float(s[e]) for s in shares],
                    "line": {"color": color(e), "width": 1.5},
                    "hovertemplate": "%{x} tokens: %{y:.3f}<extra>%{fullData.name}</extra>",
                }
                for e in range(n_experts)
            ],
            layout(
                f"{trial_id}: each expert's share of routed tokens (mean over {n_layers} layers)",
                "training tokens",
                "share of routed tokens",
                shapes=[
                    {
                        "type": "line",
                        "xref": "paper",
                        "x0": 0,
                        "x1": 1,
                        "y0": 1.0 / n_experts if n_experts else 0,
                        "y1": 1.0 / n_experts if n_experts else 0,
                        "line": {"dash": "dot", "color": "#999999", "width": 1},
                    }
                ],
            ),
        )
        rows.append(
            {
                "trial_id": trial_id,
                "stage": stages.get(trial_id, ""),
                "evaluations": len(points),
                "experts": n_experts,
                "layers": n_layers,
                "final_max_load": loads[-1],
                "runs_max_load": runs_max_load.get(trial_id),
                "dropped_tokens": dropped.get(trial_id),
            }
        )
    best = best_search_trial(job)
    default = best[0] if best and best[0] in per_trial else next(iter(per_trial))
    return {
        "available": True,
        "rows": rows,
        "default_trial": default,
        "figure_max_load": figure(
            lines,
            layout(
                "Expert load over training: most loaded expert / mean (worst layer; 1 = balanced)",
                "training tokens",
                "max load",
                showlegend=len(lines) <= 12,
            ),
        ),
        "figures_trial": per_trial,
    }
