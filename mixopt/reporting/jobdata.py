"""A job's files, read once: spec, runs table, recommendation, status, trial results, MLflow ids.

Every file but one is optional, because a job is looked at while it runs: before its data is
prepared there is only ``spec.yaml`` and ``job.json``, the runs table grows a row per finished
trial, and ``recommendation.json`` appears at the end. Files are read through
:class:`~mixopt.job.JobDir`; the spec is parsed into a :class:`~mixopt.spec.JobSpec` where it is
valid, so every default (the objective's metrics, the planned trials) comes from the one place
that defines it. :meth:`JobData.target_scale` reads recommendation.json's ``target_scale``
section (written by :mod:`mixopt.search.scale`) into typed records, leniently: an odd field takes
its default and the record lists what it could not read.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.errors import MixoptError
from mixopt.job import JobDir, JobStatus, StatusRecord, find_job_dirs, planned_trials, trial_order

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

TARGET_SCALE = "target_scale"  # recommendation.json's section (mixopt.search.driver writes it)


@dataclass(frozen=True)
class ScaleMixture:
    """One mixture as the target-scale law predicts it (``target_scale.mixtures[label]``)."""

    label: str
    weights: dict[str, float]
    objective: float | None  # predicted at the target
    objective_std: float | None
    objective_at_proxy: float | None  # predicted at the search proxy's size and tokens
    losses: dict[str, float] = field(default_factory=dict)  # per metric, at the target


@dataclass(frozen=True)
class CalibrationRow:
    """A validated mixture: the law's prediction at the validation proxy against the measure."""

    label: str
    predicted: float | None
    predicted_std: float | None
    observed: float | None
    at_search_scale: float | None


@dataclass(frozen=True)
class ScaleCalibration:
    """The law at the validation scale (``target_scale.calibration``)."""

    params: float | None
    tokens: float | None
    rows: list[CalibrationRow]
    mape: float | None
    spearman_law: float | None  # law's prediction vs observed
    spearman_search_scale: float | None  # the search scale's prediction vs observed


@dataclass(frozen=True)
class ScaleCurves:
    """Each mixture's predicted objective at model sizes from the search proxy's to the
    target's (``target_scale.curves``); the lists run along ``params``."""

    params: list[float]
    tokens: list[float]
    objective: dict[str, list[float | None]]
    objective_std: dict[str, list[float | None]]


@dataclass(frozen=True)
class TargetScale:
    """recommendation.json's ``target_scale``: the recommendation at the target's size."""

    available: bool
    reason: str = ""  # why not, when not available
    params: float | None = None  # the target's non-embedding parameters
    tokens: float | None = None
    law: str = ""
    fitted_on: str = ""
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)  # law -> mape/spearman/error
    shrink: float | None = None
    unshrunk: dict[str, Any] | None = None  # {"weights": {...}, "predicted": float}
    flags: list[str] = field(default_factory=list)
    mixtures: dict[str, ScaleMixture] = field(default_factory=dict)
    calibration: ScaleCalibration | None = None
    curves: ScaleCurves | None = None
    problems: list[str] = field(default_factory=list)  # what could not be read


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


# ------------------------------------------------------------------------------ target scale


def _number(value: Any) -> float | None:
    """A finite float, or None (JSON's NaN, strings, booleans, missing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _numbers(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    out = {str(k): _number(v) for k, v in value.items()}
    return {k: v for k, v in out.items() if v is not None}


def _series(value: Any, length: int) -> list[float | None] | None:
    if not isinstance(value, list) or len(value) != length:
        return None
    return [_number(v) for v in value]


def read_target_scale(recommendation: dict[str, Any] | None) -> TargetScale | None:
    """The ``target_scale`` section of a recommendation, leniently; None when there is none."""
    if not recommendation or TARGET_SCALE not in recommendation:
        return None
    data = recommendation[TARGET_SCALE]
    if not isinstance(data, dict):
        return TargetScale(
            available=False,
            reason=f"recommendation.json: {TARGET_SCALE} is not a mapping",
            problems=[f"{TARGET_SCALE} is a {type(data).__name__}"],
        )
    if data.get("available") is not True:
        reason = data.get("reason")
        return TargetScale(
            available=False,
            reason=str(reason) if reason else "the target-scale law is not available",
        )
    problems: list[str] = []
    mixtures: dict[str, ScaleMixture] = {}
    raw_mixtures = data.get("mixtures")
    for label, item in _mapping(raw_mixtures).items():
        if not isinstance(item, dict):
            problems.append(f"mixtures.{label} is not a mapping")
            continue
        mixtures[str(label)] = ScaleMixture(
            label=str(label),
            weights=_numbers(item.get("weights")),
            objective=_number(item.get("objective")),
            objective_std=_number(item.get("objective_std")),
            objective_at_proxy=_number(item.get("objective_at_proxy")),
            losses=_numbers(item.get("losses")),
        )
    scores: dict[str, dict[str, Any]] = {}
    raw_scores = data.get("scores")
    for law, score in _mapping(raw_scores).items():
        if isinstance(score, dict):
            scores[str(law)] = {
                "mape": _number(score.get("mape")),
                "spearman": _number(score.get("spearman")),
                "error": str(score["error"]) if score.get("error") else None,
            }
    unshrunk = data.get("unshrunk")
    flags = data.get("flags")
    return TargetScale(
        available=True,
        params=_number(data.get("params")),
        tokens=_number(data.get("tokens")),
        law=str(data.get("law") or ""),
        fitted_on=str(data.get("fitted_on") or ""),
        scores=scores,
        shrink=_number(data.get("shrink")),
        unshrunk=(
            {
                "weights": _numbers(unshrunk.get("weights")),
                "predicted": _number(unshrunk.get("predicted")),
            }
            if isinstance(unshrunk, dict)
            else None
        ),
        flags=[str(f) for f in flags] if isinstance(flags, list) else [],
        mixtures=mixtures,
        calibration=_calibration(data.get("calibration"), problems),
        curves=_curves(data.get("curves"), problems),
        problems=problems,
    )


def _calibration(data: Any, problems: list[str]) -> ScaleCalibration | None:
    if not data:  # absent, or {} when no validated mixture had an objective
        return None
    if not isinstance(data, dict):
        problems.append("calibration is not a mapping")
        return None
    scale = _mapping(data.get("scale"))
    listed = data.get("mixtures")
    rows = [
        CalibrationRow(
            label=str(row.get("label", "")),
            predicted=_number(row.get("predicted")),
            predicted_std=_number(row.get("predicted_std")),
            observed=_number(row.get("observed")),
            at_search_scale=_number(row.get("at_search_scale")),
        )
        for row in (listed if isinstance(listed, list) else [])
        if isinstance(row, dict)
    ]
    return ScaleCalibration(
        params=_number(scale.get("params")),
        tokens=_number(scale.get("tokens")),
        rows=rows,
        mape=_number(data.get("mape")),
        spearman_law=_number(data.get("spearman_law")),
        spearman_search_scale=_number(data.get("spearman_search_scale")),
    )


def _curves(data: Any, problems: list[str]) -> ScaleCurves | None:
    if data is None:  # written by mixopt versions that predate the curves
        return None
    if not isinstance(data, dict) or not isinstance(data.get("params"), list):
        problems.append("curves: no list of model sizes")
        return None
    params = [_number(v) for v in data["params"]]
    if len(params) < 2 or any(v is None or v <= 0 for v in params):
        problems.append("curves: the model sizes are not positive numbers")
        return None
    length = len(params)
    tokens = [v for v in _series(data.get("tokens"), length) or [] if v is not None]
    if len(tokens) != length:
        problems.append("curves: no tokens per model size")
        tokens = []
    objective: dict[str, list[float | None]] = {}
    spread: dict[str, list[float | None]] = {}
    raw, raw_std = _mapping(data.get("objective")), _mapping(data.get("objective_std"))
    for label, values in raw.items():
        series = _series(values, length)
        if series is None:
            problems.append(f"curves.objective.{label}: not {length} numbers")
            continue
        objective[str(label)] = series
        spread[str(label)] = _series(raw_std.get(label), length) or [None] * length
    return ScaleCurves(
        params=[float(v) for v in params if v is not None],
        tokens=tokens,
        objective=objective,
        objective_std=spread,
    )


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
