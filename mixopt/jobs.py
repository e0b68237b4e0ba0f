"""Assembling a job: its directory, runner, tracker and progress view, from the spec.

``run_job`` is what ``mixopt run`` calls; the service will call the same function. Job
directories are never reused: a new run gets a new directory, so earlier results stay intact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mixopt.errors import MixoptError
from mixopt.loop import SPEC_FILE, STATUS_FILE, JobOutcome, SearchJob
from mixopt.progress import Progress, default_progress
from mixopt.runners.base import Runner
from mixopt.spec import JobSpec
from mixopt.tracking.base import Tracker


def create_job_dir(spec: JobSpec, job_dir: Path | None = None) -> Path:
    """A fresh directory for the job; an existing non-empty one is refused, never overwritten."""
    if job_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        job_dir = Path(spec.output_dir) / f"{spec.name}-{stamp}"
    job_dir = Path(job_dir)
    if job_dir.exists() and (not job_dir.is_dir() or any(job_dir.iterdir())):
        raise MixoptError(
            f"{job_dir}: already exists and is not empty; choose another --job-dir "
            "(mixopt never overwrites a job)"
        )
    job_dir.mkdir(parents=True, exist_ok=True)
    return job_dir


def build_runner(spec: JobSpec, kind: str = "ray") -> Runner:
    if kind == "local":
        from mixopt.runners.local import InProcessRunner

        return InProcessRunner()
    if kind == "ray":
        from mixopt.runners.ray_runner import RayRunner

        return RayRunner(
            address=spec.resources.ray_address,
            cpus_per_trial=spec.resources.cpus_per_trial,
            gpus_per_trial=spec.resources.gpus_per_trial,
        )
    raise MixoptError(f"unknown runner {kind!r}; available: local, ray")


def build_tracker(spec: JobSpec, job_dir: Path, **retry: Any) -> Tracker:
    """MLflow (SQLite in the job directory unless ``tracking.mlflow_uri``), wrapped so that
    tracking failures are retried, reported in the job's log and never stop the job; ``retry``
    overrides :class:`~mixopt.tracking.retry.RetryingTracker`'s settings."""
    if not spec.tracking.enabled:
        return Tracker()
    from mixopt.tracking.mlflow_tracker import MlflowTracker, default_tracking_uri, is_remote
    from mixopt.tracking.retry import RetryingTracker

    uri = spec.tracking.mlflow_uri or default_tracking_uri(job_dir)
    # a remote server keeps artifacts where it is configured to; local stores keep them here
    artifacts = None if is_remote(uri) else job_dir / "mlartifacts"
    inner = MlflowTracker(uri, spec.tracking.experiment, artifact_dir=artifacts)
    log_file = job_dir / "job.log"

    def report(text: str) -> None:
        with log_file.open("a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} {text}\n")

    return RetryingTracker(inner, **{"report": report, **retry})


def run_job(
    spec: JobSpec,
    job_dir: Path,
    *,
    runner: str | Runner = "ray",
    tracker: Tracker | None = None,
    progress: Progress | None = None,
    resume: bool = False,
) -> JobOutcome:
    job = SearchJob(
        spec,
        job_dir,
        runner=build_runner(spec, runner) if isinstance(runner, str) else runner,
        tracker=tracker if tracker is not None else build_tracker(spec, job_dir),
        progress=progress if progress is not None else default_progress(),
        resume=resume,
    )
    return job.run()


def resume_job(job_dir: Path, *, runner: str | Runner = "ray", **kwargs: Any) -> JobOutcome:
    """Continue an interrupted job in place, from its saved spec and state."""
    from mixopt.spec import load_spec

    job_dir = Path(job_dir)
    if not (job_dir / SPEC_FILE).is_file():
        raise MixoptError(f"{job_dir}: not a job directory (no {SPEC_FILE})")
    status = (
        json.loads((job_dir / STATUS_FILE).read_text()) if (job_dir / STATUS_FILE).is_file() else {}
    )
    if status.get("status") == "completed":
        raise MixoptError(f"{job_dir}: the job has already completed; nothing to resume")
    return run_job(load_spec(job_dir / SPEC_FILE), job_dir, runner=runner, resume=True, **kwargs)
