"""A job's files, read once: spec, runs table, recommendation, status, trial results, MLflow ids.

Every file but one is optional, because a job is looked at while it runs: before its data is
prepared there is only ``spec.yaml`` and ``job.json``, the runs table grows a row per finished
trial, and ``recommendation.json`` appears at the end. Files are read through
:class:`~mixopt.job.JobDir`; the spec is parsed into a :class:`~mixopt.spec.JobSpec` where it is
valid, so every default (the objective's metrics, the planned trials) comes from the one place
that defines it. :meth:`JobData.target_scale` reads recommendation.json's ``target_scale``
section (:mod:`mixopt.reporting.target_scale`).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.errors import MixoptError
from mixopt.job import JobDir, JobStatus, StatusRecord, find_job_dirs, planned_trials, trial_order
from mixopt.reporting.target_scale import (
    ScaleCalibration,
    ScaleCurves,
    ScaleMixture,
    TargetScale,
    read_target_scale,
)

if TYPE_CHECKING:
    import pandas as pd

    from mixopt.spec import JobSpec

__all__ = [
    "JobData",
    "ScaleCalibration",
    "ScaleCurves",
    "ScaleMixture",
    "TargetScale",
    "find_job_dirs",
    "load_job_dir",
    "read_target_scale",
    "trial_order",
]


@dataclass
class JobData:
    """Everything known about one job; any part may be missing (None / empty)."""

    name: str
    job_dir: Path | None = None
    spec: dict[str, Any] | None = None  # the spec as written (for display)
    spec_text: str | None = None
    job_spec: JobSpec | None = None  # the spec, validated (None when it is missing or invalid)
    status: StatusRecord | None = None
    runs: pd.DataFrame | None = None
    recommendation: dict[str, Any] | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)  # state.json trials (results)
    manifest: dict[str, Any] | None = None
    mlflow: dict[str, Any] | None = None  # see mixopt.reporting.mlflow_runs.read_trial_runs
    version: str = ""  # changes whenever one of the job's files changes
    source: str = "directory"
    notes: list[str] = field(default_factory=list)  # what could not be read, for the page

    # ------------------------------------------------------------------------------ derived

    @property
    def state(self) -> str:
        """A :class:`~mixopt.job.JobStatus` value, or ``unknown``."""
        if self.status is not None:
            return self.status.status.value
        if self.recommendation is not None:
            return JobStatus.COMPLETED.value
        return "unknown"

    @property
    def finished(self) -> bool:
        status = JobStatus.parse(self.state)
        return status is not None and status.final

    @property
    def stage(self) -> str | None:
        return (self.status.stage or None) if self.status is not None else None

    @property
    def planned_trials(self) -> int | None:
        if self.status is not None and self.status.trials_total:
            return self.status.trials_total
        return planned_trials(self.job_spec) if self.job_spec is not None else None

    @property
    def domains(self) -> list[str]:
        if self.job_spec is not None:
            return self.job_spec.domain_names
        if self.runs is not None:
            return [c.removeprefix("weight/") for c in self.runs.columns if c.startswith("weight/")]
        if self.recommendation and isinstance(self.recommendation.get("weights"), dict):
            return list(self.recommendation["weights"])
        return []

    @property
    def direction(self) -> str:
        rec_objective = (self.recommendation or {}).get("objective")
        if isinstance(rec_objective, dict) and rec_objective.get("direction") in (
            "minimize",
            "maximize",
        ):
            return str(rec_objective["direction"])
        if self.job_spec is not None:
            return self.job_spec.objective.direction
        return "minimize"

    @property
    def objective_metrics(self) -> dict[str, float]:
        """Metric → weight of the objective (the mean validation loss when the spec names none)."""
        rec_objective = (self.recommendation or {}).get("objective")
        if isinstance(rec_objective, dict) and rec_objective.get("metrics"):
            return {str(k): float(v) for k, v in rec_objective["metrics"].items()}
        if self.job_spec is not None:
            return self.job_spec.objective_weights()
        domains = self.domains
        return {f"val_loss/{d}": 1.0 / len(domains) for d in domains} if domains else {}

    def target_scale(self) -> TargetScale | None:
        """The recommendation at the target's size; None when the job has none (no target in
        its spec, or not finished)."""
        return read_target_scale(self.recommendation)

    def natural(self) -> dict[str, float] | None:
        """The natural mixture (each domain's share of the train tokens)."""
        if self.recommendation and isinstance(self.recommendation.get("natural"), dict):
            return {k: float(v) for k, v in self.recommendation["natural"].items()}
        if self.manifest and isinstance(self.manifest.get("domains"), list):
            tokens = {
                d["name"]: float(d.get("train_tokens", 0))
                for d in self.manifest["domains"]
                if isinstance(d, dict) and "name" in d
            }
            total = sum(tokens.values())
            if tokens and total > 0:
                return {name: value / total for name, value in tokens.items()}
        return None


# ---------------------------------------------------------------------------------- loading


def is_job_dir(path: Path) -> bool:
    return JobDir(path).is_job()


def version_of(job_dir: Path) -> str:
    return JobDir(job_dir).version()


def parse_spec_text(
    text: str | None, notes: list[str]
) -> tuple[dict[str, Any] | None, JobSpec | None]:
    """The spec as a mapping (for display) and validated (None when invalid, with a note)."""
    if text is None:
        return None, None
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        notes.append(f"spec.yaml is not valid YAML: {error}")
        return None, None
    if not isinstance(loaded, dict):
        return None, None
    from mixopt.spec import parse_spec

    try:
        return loaded, parse_spec(loaded, source="spec.yaml")
    except MixoptError as error:
        notes.append(f"the spec does not validate: {error}")
        return loaded, None


def load_job_dir(path: str | Path, *, name: str | None = None) -> JobData:
    """Read a job directory (finished, running or failed)."""
    job = JobDir(path)
    job.require_job()
    version = job.version()
    notes: list[str] = []
    spec_text = job.read_spec_text()
    spec, job_spec = parse_spec_text(spec_text, notes)
    status = _check_alive(job.read_status(notes))
    recommendation = job.read_recommendation(notes)
    manifest = job.read_manifest_mapping(notes)
    trials = job.read_state_trials(notes)
    runs = job.read_runs()
    mlflow = None
    if job.mlflow_db.is_file():
        from mixopt.reporting.mlflow_runs import read_trial_runs

        mlflow = read_trial_runs(job.mlflow_db)
        if mlflow.get("error"):
            notes.append(f"{job.mlflow_db.name}: {mlflow['error']}")
    job_name = (
        name
        or (job_spec.name if job_spec is not None else None)
        or (status.job if status is not None else None)
        or (recommendation or {}).get("job")
        or job.path.name
    )
    return JobData(
        name=str(job_name),
        job_dir=job.path.resolve(),
        spec=spec,
        spec_text=spec_text,
        job_spec=job_spec,
        status=status,
        runs=runs,
        recommendation=recommendation,
        trials=trials,
        manifest=manifest,
        mlflow=mlflow,
        version=version,
        notes=notes,
    )


def _check_alive(status: StatusRecord | None) -> StatusRecord | None:
    """A job.json that says running on this host for a process that is gone did not finish:
    mark it, rather than show a job as running forever."""
    if status is None or not status.status.active:
        return status
    if status.pid is None or status.host != platform.node():
        return status
    try:
        if status.pid <= 0:  # not a process (a negative pid would name a process group)
            raise ProcessLookupError
        os.kill(status.pid, 0)
    except (ProcessLookupError, OverflowError):
        return replace(status, status=JobStatus.INTERRUPTED, error="the job's process is gone")
    except PermissionError:
        pass
    return status
