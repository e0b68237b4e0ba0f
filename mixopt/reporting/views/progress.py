"""How the job is going: its summary, the recommendation, the optimisation trace, the
trials table and the spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mixopt.job import JobDir, StatusRecord
from mixopt.reporting.figures import SYMBOLS, color, figure, layout
from mixopt.reporting.jobdata import JobData, trial_order
from mixopt.reporting.views.common import (
    ViewOptions,
    as_float,
    best_search_trial,
    stage_text,
    target_fidelity,
)


def job_summary(job: JobData) -> dict[str, Any]:
    status = job.status
    runs = job.runs
    completed = failed = None
    if runs is not None and "status" in runs.columns:
        completed = int((runs["status"] == "completed").sum())
        failed = int((runs["status"] == "abandoned").sum())
    best = best_search_trial(job)
    rec = job.recommendation or {}
    return {
        "name": job.name,
        "dir": None if job.job_dir is None else str(job.job_dir),
        "source": job.source,
        "state": job.state,
        "finished": job.finished,
        "stage": job.stage,
        "direction": job.direction,
        "domains": job.domains,
        "trials_completed": completed
        if completed is not None
        else _field(status, "trials_completed"),
        "trials_failed": failed if failed is not None else _field(status, "trials_failed"),
        "trials_total": job.planned_trials,
        "running": _field(status, "running") or [],
        "best_objective": best[1] if best else as_float(_field(status, "best_objective")),
        "best_trial": best[0] if best else _field(status, "best_trial"),
        "eta_s": as_float(_field(status, "eta_s")),
        "elapsed_s": as_float(_field(status, "wall_s") or _field(status, "elapsed_s")),
        "updated": _field(status, "updated") or None,
        "error": _field(status, "error"),
        "verdict": rec.get("verdict"),
    }


def _field(status: StatusRecord | None, name: str) -> Any:
    return None if status is None else getattr(status, name)


def recommendation_view(job: JobData) -> dict[str, Any]:
    rec = job.recommendation
    if rec is None:
        return {
            "available": False,
            "reason": f"no recommendation yet: the job is {stage_text(job)}",
        }
    weights = {str(k): float(v) for k, v in rec.get("weights", {}).items()}
    predicted, std = as_float(rec.get("predicted_objective")), as_float(rec.get("predicted_std"))
    interval = None
    if predicted is not None and std is not None:
        interval = [predicted - 1.96 * std, predicted + 1.96 * std]
    validated = (rec.get("validation") or {}).get("recommended") or {}
    evidence = rec.get("evidence") or {}
    return {
        "available": True,
        "weights": weights,
        "natural": rec.get("natural"),
        "predicted_objective": predicted,
        "predicted_std": std,
        "interval95": interval,
        "validated_objective": as_float(validated.get("objective")),
        "validated_std": as_float(validated.get("objective_std")),
        "validated_seeds": validated.get("seeds"),
        "method": rec.get("method"),
        "evidence_trials": len(evidence.get("trials", [])),
        "nearest": evidence.get("nearest", []),
        "outside_data": bool(evidence.get("outside_data", False)),
        "repetition_caps": rec.get("repetition_caps"),
        "target_epochs": rec.get("target_epochs"),
        "validation_proxy": rec.get("validation_proxy"),
        "verdict": rec.get("verdict"),
        "direction": job.direction,
        "created": rec.get("created"),
    }


def _round_name(stage: str, round_index: int) -> str:
    if stage == "validate":
        return "validation"
    return "initial design" if round_index == 0 else f"round {round_index}"


def trace_view(job: JobData) -> dict[str, Any]:
    runs = job.runs
    if runs is None or "objective" not in runs.columns:
        return {
            "available": False,
            "reason": f"no finished trials yet: the job is {stage_text(job)}",
        }
    minimize = job.direction == "minimize"
    points: list[dict[str, Any]] = []
    best: float | None = None
    best_trial = None
    fidelities: list[str] = []
    target = target_fidelity(job)
    for position, data in enumerate(runs.to_dict("records"), start=1):
        objective = as_float(data.get("objective"))
        if data.get("status", "completed") != "completed" or objective is None:
            continue
        stage = str(data.get("stage", "search"))
        round_index = int(data.get("round", 0)) if data.get("round") is not None else 0
        fidelity = str(data.get("fidelity", ""))
        if fidelity not in fidelities:
            fidelities.append(fidelity)
        point = {
            "x": position,
            "trial_id": str(data["trial_id"]),
            "stage": stage,
            "round": round_index,
            "group": _round_name(stage, round_index),
            "label": str(data.get("label") or ""),
            "fidelity": fidelity,
            "objective": objective,
            "best_so_far": None,
        }
        if stage == "search":
            better = best is None or (objective < best if minimize else objective > best)
            if target in (None, fidelity) and better:
                best, best_trial = objective, point["trial_id"]
            point["best_so_far"] = best
        points.append(point)
    if not points:
        return {"available": False, "reason": "no trial has finished with a finite objective yet"}
    data_traces: list[dict[str, Any]] = []
    groups: list[str] = []
    for p in points:
        if p["group"] not in groups:
            groups.append(p["group"])
    for index, group in enumerate(groups):
        members = [p for p in points if p["group"] == group]
        data_traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": group,
                "x": [p["x"] for p in members],
                "y": [p["objective"] for p in members],
                "text": [
                    f"{p['trial_id']}{' ' + p['label'] if p['label'] else ''}<br>{p['fidelity']}"
                    for p in members
                ],
                "customdata": [p["trial_id"] for p in members],
                "hovertemplate": "%{text}<br>objective %{y:.4f}<extra>%{fullData.name}</extra>",
                "marker": {
                    "size": 9,
                    "color": "#888888" if group == "validation" else color(index),
                    "symbol": [
                        SYMBOLS[fidelities.index(p["fidelity"]) % len(SYMBOLS)] for p in members
                    ],
                    "line": {"width": 1, "color": "white"},
                },
            }
        )
    search = [p for p in points if p["stage"] == "search"]
    if search:
        data_traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "best so far" if target is None else "best so far (target fidelity)",
                "x": [p["x"] for p in search],
                "y": [p["best_so_far"] for p in search],
                "line": {"shape": "hv", "color": "#222222", "width": 2},
                "hoverinfo": "skip",
            }
        )
    shapes, annotations = [], []
    previous = None
    for p in points:
        if previous is not None and p["group"] != previous["group"]:
            boundary = (p["x"] + previous["x"]) / 2
            shapes.append(
                {
                    "type": "line",
                    "xref": "x",
                    "yref": "paper",
                    "x0": boundary,
                    "x1": boundary,
                    "y0": 0,
                    "y1": 1,
                    "line": {"dash": "dot", "color": "#999999", "width": 1},
                }
            )
            annotations.append(
                {
                    "x": boundary,
                    "y": 1,
                    "xref": "x",
                    "yref": "paper",
                    "text": p["group"],
                    "showarrow": False,
                    "xanchor": "left",
                    "yanchor": "bottom",
                    "font": {"size": 10, "color": "#666666"},
                }
            )
        previous = p
    fig = figure(
        data_traces,
        layout(
            "Objective of each trial (trial order)",
            "trial",
            f"objective ({'lower' if job.direction == 'minimize' else 'higher'} is better)",
            shapes=shapes,
            annotations=annotations,
        ),
    )
    return {
        "available": True,
        "figure": fig,
        "points": points,
        "best_trial": best_trial,
        "best_objective": best,
        "fidelities": fidelities,
        "failed": int((runs["status"] == "abandoned").sum()) if "status" in runs.columns else 0,
    }


def _trial_row(
    trial: Mapping[Any, Any], result: Mapping[Any, Any], weights: dict[str, Any], fidelity: Any
) -> dict[str, Any]:
    """One trials-table row from a state.json trial or a runs-table record (its own result)."""
    return {
        "trial_id": str(trial.get("trial_id")),
        "stage": trial.get("stage"),
        "round": trial.get("round"),
        "label": trial.get("label") or "",
        "seed": trial.get("seed"),
        "status": trial.get("status"),
        "objective": as_float(result.get("objective")),
        "weights": weights,
        "fidelity": fidelity,
        "wall_s": as_float(result.get("wall_s")),
        "error": trial.get("error") or "",
    }


def trials_view(job: JobData, options: ViewOptions) -> dict[str, Any]:
    domains = job.domains
    rows: dict[str, dict[str, Any]] = {}
    for trial in job.trials:  # state.json: every trial, queued and running ones included
        result = trial.get("result") or {}
        weights = dict(trial.get("weights") or {})
        rows[str(trial.get("trial_id"))] = _trial_row(trial, result, weights, None)
    if job.runs is not None:  # the runs table is the source of truth for finished trials
        for record in job.runs.to_dict("records"):
            weights = {d: as_float(record.get(f"weight/{d}")) for d in domains}
            rows[str(record["trial_id"])] = _trial_row(
                record, record, weights, record.get("fidelity")
            )
    running = set(_field(job.status, "running") or [])
    mlflow = job.mlflow or {}
    run_ids = mlflow.get("runs") or {}
    experiment = mlflow.get("experiment_id")
    base = options.mlflow_url.rstrip("/")
    from mixopt.reporting.mlflow_runs import run_url

    ordered = [rows[k] for k in sorted(rows, key=trial_order)]
    for row in ordered:
        if row["trial_id"] in running and row["status"] not in ("completed", "abandoned"):
            row["status"] = "running"
        run_id = run_ids.get(row["trial_id"])
        row["mlflow_run_id"] = run_id
        row["mlflow_url"] = run_url(base, experiment, run_id) if run_id and experiment else None
    if not ordered:
        return {"available": False, "reason": f"no trials yet: the job is {stage_text(job)}"}
    command = None
    if job.job_dir is not None and JobDir(job.job_dir).mlflow_db.is_file():
        command = f"mlflow ui --backend-store-uri sqlite:///{JobDir(job.job_dir).mlflow_db}"
    tracking_uri = job.job_spec.tracking.mlflow_uri if job.job_spec is not None else None
    return {
        "available": True,
        "domains": domains,
        "rows": ordered,
        "mlflow": {
            "base_url": base,
            "experiment_id": experiment,
            "parent_run_id": mlflow.get("parent_run_id"),
            "parent_url": run_url(base, experiment, mlflow["parent_run_id"])
            if experiment and mlflow.get("parent_run_id")
            else None,
            "command": command,
            "tracking_uri": tracking_uri,
            "linked": sum(1 for r in ordered if r["mlflow_url"]),
        },
    }


def spec_view(job: JobData) -> dict[str, Any]:
    if job.spec_text is None:
        return {"available": False, "reason": "the job's spec is not available"}
    return {"available": True, "yaml": job.spec_text}
