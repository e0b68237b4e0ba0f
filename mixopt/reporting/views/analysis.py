"""Predictor quality (cross-validated predictions, Spearman, interval coverage) and domain
effects (partial dependence, sensitivity, domain x domain interactions), fitted once per set of
finished trials."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.reporting.figures import color, figure, layout
from mixopt.reporting.jobdata import JobData
from mixopt.reporting.views.common import ViewOptions, weight_columns

if TYPE_CHECKING:
    import pandas as pd


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
    columns = weight_columns(job, search)
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
