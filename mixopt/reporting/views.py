"""The view model: every view's numbers and figures for one job, as plain JSON.

``build_views(job)`` returns ``{"job": {...}, "views": {name: {...}}, ...}`` with the views

- ``recommendation``: the mixture, its predicted objective ± std and 95% interval, the verdict;
- ``trace``: the objective of every finished trial in trial order, best-so-far line, rounds,
  stages and fidelities marked;
- ``mixtures``: recommended vs baselines (uniform, natural, the user's) as bars; the trials'
  weights as stacked bars sorted by objective;
- ``predictor``: cross-validated predicted vs observed objective, Spearman, interval coverage;
- ``effects``: partial dependence of the objective on each domain's weight, sensitivities, and
  the domain × domain interaction heatmap;
- ``validation``: recommended vs baselines at the validation scale, mean ± seed spread;
- ``moe``: expert load over training (MoE proxies);
- ``trials``: every trial with its MLflow run and a link into the MLflow UI;
- ``spec``: the resolved spec.

A view that cannot be shown yet (or for this job) has ``available: false`` and a ``reason`` the
page prints. Predictor fits are cached on the finished trials they rest on, so polling a
running job refits only when a trial finished.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.reporting.figures import (
    MIXTURE_COLORS,
    SYMBOLS,
    color,
    figure,
    jsonable,
    layout,
)
from mixopt.reporting.jobdata import JobData, trial_order

if TYPE_CHECKING:
    import pandas as pd

SCHEMA = 1
DEFAULT_MLFLOW_URL = "http://127.0.0.1:5000"
MIXTURE_ORDER = ("recommended", "current", "natural", "uniform", "best_trial")
MIXTURE_NAMES = {
    "recommended": "recommended",
    "current": "current (yours)",
    "natural": "natural",
    "uniform": "uniform",
    "best_trial": "best trial",
}


@dataclass(frozen=True)
class ViewOptions:
    predictor: str = "gp"  # a registered predictor (see mixopt.predictors); gp has intervals
    cv_folds: int = 5
    mlflow_url: str = DEFAULT_MLFLOW_URL  # base URL of an MLflow UI serving the job's store
    analysis: bool = True  # False: skip the predictor fits (predictor and effects views)


def build_views(
    job: JobData, options: ViewOptions | None = None, *, job_id: str | None = None
) -> dict[str, Any]:
    options = options or ViewOptions()
    runs = job.runs
    search = _finished(runs, "search")
    views: dict[str, Any] = {
        "recommendation": recommendation_view(job),
        "trace": trace_view(job),
        "mixtures": mixtures_view(job, search),
        "validation": validation_view(job),
        "moe": moe_view(job),
        "trials": trials_view(job, options),
        "spec": spec_view(job),
    }
    if options.analysis:
        views["predictor"], views["effects"] = analysis_views(job, search, options)
    else:
        off = {"available": False, "reason": "predictor fits are turned off"}
        views["predictor"], views["effects"] = dict(off), dict(off)
    model = {
        "schema": SCHEMA,
        "id": job_id or job.name,
        "job": job_summary(job),
        "version": job.version,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "notes": list(job.notes),
        "views": views,
    }
    result: dict[str, Any] = jsonable(model)
    return result


# ------------------------------------------------------------------------------- helpers


def _finished(runs: pd.DataFrame | None, stage: str) -> pd.DataFrame | None:
    """Completed trials of ``stage`` with a finite objective, in trial order."""
    if runs is None or "objective" not in runs.columns:
        return None
    frame = runs
    if "stage" in frame.columns:
        frame = frame[frame["stage"] == stage]
    elif stage != "search":
        return None
    if "status" in frame.columns:
        frame = frame[frame["status"] == "completed"]
    objective = frame["objective"].astype(float)
    frame = frame[np.isfinite(objective.to_numpy())]
    return frame if len(frame) else None


def _weight_columns(job: JobData, frame: pd.DataFrame) -> list[str]:
    return [f"weight/{d}" for d in job.domains if f"weight/{d}" in frame.columns]


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _stage_text(job: JobData) -> str:
    stage = job.status.get("stage")
    return f"{job.state}, {stage}" if stage else job.state


def target_fidelity(job: JobData) -> str | None:
    """The search proxy's fidelity ("arch:preset:tokens") when trials ran at several (mfbo):
    only those trials' objectives compare with each other."""
    spec = job.spec or {}
    if not (spec.get("search") or {}).get("fidelities"):
        return None
    proxy = spec.get("proxy") or {}
    return f"{proxy.get('arch')}:{proxy.get('preset')}:{proxy.get('train_tokens')}"


def best_search_trial(job: JobData) -> tuple[str, float] | None:
    search = _finished(job.runs, "search")
    target = target_fidelity(job)
    if search is not None and target is not None and "fidelity" in search.columns:
        search = search[search["fidelity"] == target]
    if search is None or search.empty:
        return None
    values = search["objective"].astype(float).to_numpy()
    index = int(np.argmin(values) if job.direction == "minimize" else np.argmax(values))
    return str(search["trial_id"].iloc[index]), float(values[index])


# ----------------------------------------------------------------------------- job summary


def job_summary(job: JobData) -> dict[str, Any]:
    status = job.status
    runs = job.runs
    completed = failed = None
    if runs is not None and "status" in runs.columns:
        completed = int((runs["status"] == "completed").sum())
        failed = int((runs["status"] == "abandoned").sum())
    best = best_search_trial(job)
    total = status.get("trials_total")
    if total is None and job.spec:
        total = _planned_trials(job.spec)
    rec = job.recommendation or {}
    return {
        "name": job.name,
        "dir": None if job.job_dir is None else str(job.job_dir),
        "source": job.source,
        "state": job.state,
        "finished": job.finished,
        "stage": status.get("stage"),
        "direction": job.direction,
        "domains": job.domains,
        "trials_completed": completed if completed is not None else status.get("trials_completed"),
        "trials_failed": failed if failed is not None else status.get("trials_failed"),
        "trials_total": total,
        "running": status.get("running") or [],
        "best_objective": best[1] if best else _float(status.get("best_objective")),
        "best_trial": best[0] if best else status.get("best_trial"),
        "eta_s": _float(status.get("eta_s")),
        "elapsed_s": _float(status.get("elapsed_s") or status.get("wall_s")),
        "updated": status.get("updated"),
        "error": status.get("error"),
        "verdict": rec.get("verdict"),
    }


def _planned_trials(spec: dict[str, Any]) -> int | None:
    try:
        search, validate = spec.get("search", {}), spec.get("validate", {})
        total = int(search["initial_trials"]) + int(search["rounds"]) * int(
            search["trials_per_round"]
        )
        if validate.get("enabled", True):
            mixtures = (
                1 + len(validate.get("baselines", [])) + (validate.get("current") is not None)
            )
            total += mixtures * int(validate.get("seeds", 1))
        return total
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


# -------------------------------------------------------------------------- recommendation


def recommendation_view(job: JobData) -> dict[str, Any]:
    rec = job.recommendation
    if rec is None:
        return {
            "available": False,
            "reason": f"no recommendation yet: the job is {_stage_text(job)}",
        }
    weights = {str(k): float(v) for k, v in rec.get("weights", {}).items()}
    predicted, std = _float(rec.get("predicted_objective")), _float(rec.get("predicted_std"))
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
        "validated_objective": _float(validated.get("objective")),
        "validated_std": _float(validated.get("objective_std")),
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


# ----------------------------------------------------------------------------------- trace


def _round_name(stage: str, round_index: int) -> str:
    if stage == "validate":
        return "validation"
    return "initial design" if round_index == 0 else f"round {round_index}"


def trace_view(job: JobData) -> dict[str, Any]:
    runs = job.runs
    if runs is None or "objective" not in runs.columns:
        return {
            "available": False,
            "reason": f"no finished trials yet: the job is {_stage_text(job)}",
        }
    minimize = job.direction == "minimize"
    points: list[dict[str, Any]] = []
    best: float | None = None
    best_trial = None
    fidelities: list[str] = []
    target = target_fidelity(job)
    for position, data in enumerate(runs.to_dict("records"), start=1):
        objective = _float(data.get("objective"))
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


# -------------------------------------------------------------------------------- mixtures


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
    current = ((job.spec or {}).get("validate") or {}).get("current")
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
        columns = _weight_columns(job, search)
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


# ------------------------------------------------------------------ predictor and effects

_cache: OrderedDict[str, tuple[dict[str, Any], dict[str, Any]]] = OrderedDict()
_cache_lock = threading.Lock()
_fit_lock = threading.Lock()  # one fit at a time: the machine has few cores
CACHE_SIZE = 32


def analysis_views(
    job: JobData, search: pd.DataFrame | None, options: ViewOptions
) -> tuple[dict[str, Any], dict[str, Any]]:
    from mixopt.reporting.analysis import MIN_TRIALS

    n = 0 if search is None else len(search)
    if search is None or n < MIN_TRIALS:
        reason = (
            f"needs at least {MIN_TRIALS} finished search trials to fit a predictor; {n} so far"
        )
        off = {"available": False, "reason": reason}
        return dict(off), dict(off)
    fidelity_note = None
    if "fidelity" in search.columns and search["fidelity"].nunique() > 1:
        main = search["fidelity"].mode().iloc[0]
        search = search[search["fidelity"] == main]
        fidelity_note = f"fitted on the {len(search)} search trials at fidelity {main}"
    columns = _weight_columns(job, search)
    X = search[columns].astype(float).to_numpy()
    y = search["objective"].astype(float).to_numpy()
    targets = {
        f"val_loss/{c.removeprefix('weight/')}": search[f"val_loss/{c.removeprefix('weight/')}"]
        .astype(float)
        .to_numpy()
        for c in columns
        if f"val_loss/{c.removeprefix('weight/')}" in search.columns
    }
    key_source = repr(
        (
            str(job.job_dir),
            options.predictor,
            options.cv_folds,
            [str(t) for t in search["trial_id"]],
            X.round(12).tolist(),
            y.round(12).tolist(),
            sorted(targets),
        )
    )
    key = hashlib.sha256(key_source.encode()).hexdigest()
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            predictor, effects = _cache[key]
            return predictor, effects
    with _fit_lock:
        predictor = _predictor_view(job, search, X, y, options)
        effects = _effects_view(job, columns, X, y, targets, options)
    for view in (predictor, effects):
        if fidelity_note and view.get("available"):
            view["note"] = fidelity_note
    with _cache_lock:
        _cache[key] = (predictor, effects)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return predictor, effects


def _predictor_view(
    job: JobData, search: pd.DataFrame, X: np.ndarray, y: np.ndarray, options: ViewOptions
) -> dict[str, Any]:
    from mixopt.errors import MixoptError
    from mixopt.reporting.analysis import predictor_quality

    try:
        quality = predictor_quality(X, y, predictor=options.predictor, k=options.cv_folds)
    except MixoptError as error:
        return {"available": False, "reason": str(error)}
    except Exception as error:  # a fit that fails on odd data must not take the page down
        return {"available": False, "reason": f"{options.predictor} failed to fit: {error}"}
    ids = [str(t) for t in search["trial_id"]]
    std = quality.std
    points = [
        {
            "trial_id": ids[i],
            "observed": float(y[i]),
            "predicted": float(quality.predicted[i]),
            "std": None if std is None else float(std[i]),
        }
        for i in range(len(y))
    ]
    lo = float(min(y.min(), quality.predicted.min()))
    hi = float(max(y.max(), quality.predicted.max()))
    pad = 0.05 * (hi - lo or 1.0)
    scatter: dict[str, Any] = {
        "type": "scatter",
        "mode": "markers",
        "name": "held-out trial",
        "x": [p["observed"] for p in points],
        "y": [p["predicted"] for p in points],
        "text": ids,
        "hovertemplate": "%{text}<br>observed %{x:.4f}<br>predicted %{y:.4f}<extra></extra>",
        "marker": {"size": 9, "color": color(0)},
    }
    if std is not None:
        scatter["error_y"] = {
            "type": "data",
            "array": [float(s) for s in std],
            "visible": True,
            "color": "#9ab",
            "thickness": 1,
        }
    diagonal = {
        "type": "scatter",
        "mode": "lines",
        "name": "predicted = observed",
        "x": [lo - pad, hi + pad],
        "y": [lo - pad, hi + pad],
        "line": {"dash": "dash", "color": "#999999", "width": 1},
        "hoverinfo": "skip",
    }
    title = (
        f"{options.predictor}: {quality.folds}-fold cross-validated predictions "
        f"(Spearman {quality.spearman:.3f})"
    )
    return {
        "available": True,
        "predictor": options.predictor,
        "n": len(y),
        "folds": quality.folds,
        "spearman": quality.spearman,
        "pearson": quality.pearson,
        "mae": quality.mae,
        "coverage68": quality.coverage68,
        "coverage95": quality.coverage95,
        "points": points,
        "figure": figure(
            [diagonal, scatter],
            layout(
                title,
                "observed objective",
                "predicted objective (±1σ)" if std is not None else "predicted objective",
            ),
        ),
    }


def _effects_view(
    job: JobData,
    columns: list[str],
    X: np.ndarray,
    y: np.ndarray,
    targets: dict[str, np.ndarray],
    options: ViewOptions,
) -> dict[str, Any]:
    from mixopt.reporting.analysis import EFFECT_STEP, domain_effects

    domains = [c.removeprefix("weight/") for c in columns]
    try:
        effects = domain_effects(X, y, domains, targets, predictor=options.predictor)
    except Exception as error:  # as above: show why instead of failing the page
        return {"available": False, "reason": f"{options.predictor} failed to fit: {error}"}
    if not effects.domains:
        return {"available": False, "reason": "no domain's weight varied across the trials"}
    lines = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": name,
            "x": effects.grids[name].tolist(),
            "y": effects.dependence[name].tolist(),
            "line": {"color": color(domains.index(name)), "width": 2},
            "hovertemplate": "weight %{x:.3f}<br>objective %{y:.4f}<extra>%{fullData.name}</extra>",
        }
        for name in effects.domains
    ]
    sensitivity = [
        {
            "type": "bar",
            "name": "sensitivity",
            "x": effects.domains,
            "y": [effects.sensitivity[d] for d in effects.domains],
            "marker": {"color": [color(domains.index(d)) for d in effects.domains]},
            "hovertemplate": "%{x}: %{y:.4f}<extra></extra>",
        }
    ]
    matrix = effects.interaction
    text = [["" if not np.isfinite(v) else f"{v:+.3f}" for v in row] for row in matrix]
    limit = float(np.nanmax(np.abs(matrix))) if np.isfinite(matrix).any() else 1.0
    heatmap = {
        "type": "heatmap",
        "z": matrix.tolist(),
        "x": effects.targets,
        "y": [f"weight/{d}" for d in effects.domains],
        "text": text,
        "texttemplate": "%{text}",
        "colorscale": "RdBu",  # Plotly's RdBu: blue for negative (loss falls), red for positive
        "zmid": 0,
        "zmin": -limit,
        "zmax": limit,
        "colorbar": {"title": {"text": f"Δ loss per +{EFFECT_STEP:g}"}},
        "hovertemplate": "%{y} → %{x}: %{z:+.4f}<extra></extra>",
    }
    n = len(effects.domains)
    rows = [
        {
            "domain": d,
            "weight_min": float(effects.grids[d][0]),
            "weight_max": float(effects.grids[d][-1]),
            "objective_at_min": float(effects.dependence[d][0]),
            "objective_at_max": float(effects.dependence[d][-1]),
            "sensitivity": effects.sensitivity[d],
            "slope": effects.slope[d],
        }
        for d in effects.domains
    ]
    return {
        "available": True,
        "predictor": options.predictor,
        "step": EFFECT_STEP,
        "domains": effects.domains,
        "fixed": [d for d in domains if d not in effects.domains],
        "rows": rows,
        "targets": effects.targets,
        "interaction": matrix.tolist(),
        "figure_dependence": figure(
            lines,
            layout(
                "Partial dependence: predicted objective vs each domain's weight",
                "domain weight (others keep their proportions)",
                "predicted objective",
            ),
        ),
        "figure_sensitivity": figure(
            sensitivity,
            layout(
                "Sensitivity: range of the partial dependence",
                "domain",
                "objective range",
                showlegend=False,
            ),
        ),
        "figure_interaction": figure(
            [heatmap],
            layout(
                f"How a domain's weight moves each domain's loss (per +{EFFECT_STEP:g} weight)",
                "validation loss of",
                "weight of",
                height=max(320, 60 + 42 * n),
                xaxis={"side": "bottom", "type": "category"},
                yaxis={"autorange": "reversed", "type": "category"},
                plot_bgcolor="white",
            ),
        ),
    }


# ------------------------------------------------------------------------------ validation


def _validation_from_runs(job: JobData) -> dict[str, dict[str, Any]]:
    frame = _finished(job.runs, "validate")
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
            "trials": [str(t) for t in group["trial_id"]],
            "fidelity": str(group["fidelity"].iloc[0]) if "fidelity" in group.columns else "",
        }
    return summaries


def _validation_from_recommendation(job: JobData) -> dict[str, dict[str, Any]]:
    """The recommendation's validation summaries (when the runs table cannot be read)."""
    validation = (job.recommendation or {}).get("validation") or {}
    return {
        str(label): {
            "objective": _float(s.get("objective")),
            "objective_std": _float(s.get("objective_std")),
            "seeds": int(s.get("seeds") or 0),
            "values": [],
            "seed_list": [],
            "trials": list(s.get("trials") or []),
            "fidelity": "",
        }
        for label, s in validation.items()
        if isinstance(s, dict) and _float(s.get("objective")) is not None
    }


def validation_view(job: JobData) -> dict[str, Any]:
    validate_spec = (job.spec or {}).get("validate") or {}
    found = _validation_from_runs(job)
    source = "runs table"
    if not found:
        found, source = _validation_from_recommendation(job), "recommendation.json"
    if not found:
        if validate_spec.get("enabled") is False:
            reason = "validation is turned off in the spec (validate.enabled: false)"
        else:
            reason = f"no validation trial has finished yet: the job is {_stage_text(job)}"
        return {"available": False, "reason": reason}
    from mixopt.verdict import standard_error
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
        summary["gain"] = None
        summary["standard_errors"] = None
        if mine is None or label == "recommended":
            continue
        gain = summary["objective"] - mine["objective"]
        gain = gain if job.direction == "minimize" else -gain
        summary["gain"] = gain
        se = standard_error(mine, summary)
        summary["standard_errors"] = None if se is None else gain / se
    rec_verdict = (job.recommendation or {}).get("verdict")
    provisional = rec_verdict is None
    verdict_text = rec_verdict or make_verdict(summaries, job.direction)
    planned = int(validate_spec.get("seeds", 0) or 0)
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


# ------------------------------------------------------------------------------------- moe


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

    arch = ((job.spec or {}).get("proxy") or {}).get("arch", "dense")
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
            runs_max_load[str(data["trial_id"])] = _float(data.get("moe/max_load"))
    if job.runs is not None and "moe/dropped_tokens" in job.runs.columns:
        for trial_id, value in zip(
            job.runs["trial_id"], job.runs["moe/dropped_tokens"], strict=True
        ):
            dropped[str(trial_id)] = _float(value)
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


# ---------------------------------------------------------------------------------- trials


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
        "objective": _float(result.get("objective")),
        "weights": weights,
        "fidelity": fidelity,
        "wall_s": _float(result.get("wall_s")),
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
            weights = {d: _float(record.get(f"weight/{d}")) for d in domains}
            rows[str(record["trial_id"])] = _trial_row(
                record, record, weights, record.get("fidelity")
            )
    running = set(job.status.get("running") or [])
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
        return {"available": False, "reason": f"no trials yet: the job is {_stage_text(job)}"}
    command = None
    if job.job_dir is not None and (job.job_dir / "mlflow.db").is_file():
        command = f"mlflow ui --backend-store-uri sqlite:///{job.job_dir / 'mlflow.db'}"
    tracking = (job.spec or {}).get("tracking") or {}
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
            "tracking_uri": tracking.get("mlflow_uri"),
            "linked": sum(1 for r in ordered if r["mlflow_url"]),
        },
    }


# ------------------------------------------------------------------------------------ spec


def spec_view(job: JobData) -> dict[str, Any]:
    if job.spec_text is None:
        return {"available": False, "reason": "the job's spec is not available"}
    return {"available": True, "yaml": job.spec_text}
