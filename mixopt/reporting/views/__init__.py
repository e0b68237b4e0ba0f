"""The view model: every view's numbers and figures for one job, as plain JSON.

``build_views(job)`` returns ``{"job": {...}, "views": {name: {...}}, ...}`` with the views

- ``recommendation``: the mixture, its predicted objective ± std and 95% interval, the verdict;
- ``trace``: the objective of every finished trial in trial order, best-so-far line, rounds,
  stages and fidelities marked;
- ``mixtures``: recommended vs baselines (uniform, natural, the user's) as bars; the trials'
  weights as stacked bars sorted by objective;
- ``stages`` (staged jobs only; a single-stage job has no such key): the recommended mixture
  over training, each stage's weights as a stacked bar in training order with its share of the
  tokens, and the mixture the whole run consumes;
- ``predictor``: cross-validated predicted vs observed objective, Spearman, interval coverage;
- ``effects``: partial dependence of the objective on each domain's weight, sensitivities, and
  the domain × domain interaction heatmap;
- ``validation``: recommended vs baselines at the validation scale, mean ± seed spread;
- ``pareto``: the ``pareto`` strategy's front (predicted objective against the first guard
  rail's metric, the chosen point marked) and each guard rail's limit, predicted and validated
  value, held or not;
- ``scale``: each mixture predicted at the target's size and the search proxy's, the law
  chosen and its extrapolation scores, shrink and flags, the law's calibration at the
  validation proxy, and the predicted objective against model size;
- ``moe``: expert load over training (MoE proxies);
- ``trials``: every trial with its MLflow run and a link into the MLflow UI;
- ``spec``: the resolved spec.

A view that cannot be shown yet (or for this job) has ``available: false`` and a ``reason`` the
page prints. Predictor fits are cached on the finished trials they rest on, so polling a
running job refits only when a trial finished.
"""

from __future__ import annotations

import time
from typing import Any

from mixopt.reporting.figures import jsonable
from mixopt.reporting.jobdata import JobData
from mixopt.reporting.views.analysis import analysis_views
from mixopt.reporting.views.common import DEFAULT_MLFLOW_URL, SCHEMA, ViewOptions, finished
from mixopt.reporting.views.mixtures import mixtures_view
from mixopt.reporting.views.moe import moe_view
from mixopt.reporting.views.pareto import pareto_view
from mixopt.reporting.views.progress import (
    job_summary,
    recommendation_view,
    spec_view,
    trace_view,
    trials_view,
)
from mixopt.reporting.views.scale import scale_view
from mixopt.reporting.views.stages import stages_view
from mixopt.reporting.views.validation import validation_view

__all__ = ["DEFAULT_MLFLOW_URL", "ViewOptions", "build_views", "job_summary"]


def build_views(
    job: JobData, options: ViewOptions | None = None, *, job_id: str | None = None
) -> dict[str, Any]:
    options = options or ViewOptions()
    runs = job.runs
    search = finished(runs, "search")
    stages = stages_view(job)
    views: dict[str, Any] = {
        "recommendation": recommendation_view(job),
        "trace": trace_view(job),
        "mixtures": mixtures_view(job, search),
        **({"stages": stages} if stages is not None else {}),
        "validation": validation_view(job),
        "pareto": pareto_view(job),
        "scale": scale_view(job),
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
