"""What every view uses: options, the mixtures' names and order, and helpers over the runs
table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.reporting.jobdata import JobData
from mixopt.verdict import AIOLI, DOREMI, SEARCH_CHOICE

if TYPE_CHECKING:
    import pandas as pd


SCHEMA = 1
DEFAULT_MLFLOW_URL = "http://127.0.0.1:5000"
MIXTURE_ORDER = (
    "recommended",
    SEARCH_CHOICE,
    "proxy_optimum",
    "current",
    "natural",
    "uniform",
    "best_trial",
    DOREMI,
    AIOLI,
)
MIXTURE_NAMES = {
    "recommended": "recommended",
    SEARCH_CHOICE: "search's choice",
    "proxy_optimum": "proxy optimum",
    "current": "current (yours)",
    "natural": "natural",
    "uniform": "uniform",
    "best_trial": "best trial",
    DOREMI: "DoReMi",
    AIOLI: "Aioli (schedule)",
}


@dataclass(frozen=True)
class ViewOptions:
    predictor: str = "gp"  # a registered predictor (see mixopt.predictors); gp has intervals
    cv_folds: int = 5
    mlflow_url: str = DEFAULT_MLFLOW_URL  # base URL of an MLflow UI serving the job's store
    analysis: bool = True  # False: skip the predictor fits (predictor and effects views)


def finished(runs: pd.DataFrame | None, stage: str) -> pd.DataFrame | None:
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


def weight_columns(job: JobData, frame: pd.DataFrame) -> list[str]:
    return [f"weight/{d}" for d in job.domains if f"weight/{d}" in frame.columns]


def as_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def stage_text(job: JobData) -> str:
    return f"{job.state}, {job.stage}" if job.stage else job.state


def target_fidelity(job: JobData) -> str | None:
    """The search proxy's fidelity ("arch:preset:tokens") when trials ran at several (mfbo):
    only those trials' objectives compare with each other."""
    spec = job.job_spec
    if spec is None or not spec.search.fidelities:
        return None
    return spec.proxy.fidelity


def best_search_trial(job: JobData) -> tuple[str, float] | None:
    search = finished(job.runs, "search")
    target = target_fidelity(job)
    if search is not None and target is not None and "fidelity" in search.columns:
        search = search[search["fidelity"] == target]
    if search is None or search.empty:
        return None
    values = search["objective"].astype(float).to_numpy()
    index = int(np.argmin(values) if job.direction == "minimize" else np.argmax(values))
    return str(search["trial_id"].iloc[index]), float(values[index])
