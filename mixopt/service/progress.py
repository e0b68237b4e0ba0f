"""A job's progress, read from its directory: ``job.json`` first, the runs table to fill gaps.

The job process owns both files; the service only reads them (through :class:`~mixopt.job.JobDir`).
``job.json`` may carry ``trials_completed``, ``trials_total``, ``best_objective`` and ``stage``;
where it does not, the runs table (cached by modification time) gives the counts and the best
search objective.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

from mixopt.errors import MixoptError
from mixopt.job import JobDir, JobStatus


@dataclass
class JobProgress:
    status: JobStatus | None = None  # job.json's status
    stage: str | None = None
    trials_completed: int | None = None
    trials_failed: int | None = None
    trials_total: int | None = None
    best_objective: float | None = None
    eta_s: float | None = None
    error: str | None = None
    has_recommendation: bool = False


_runs_cache: dict[str, tuple[tuple[int, int], tuple[int, int, float | None]]] = {}
_runs_lock = threading.Lock()


def _runs_summary(job: JobDir, direction: str) -> tuple[int, int, float | None] | None:
    """(completed, abandoned, best search objective) from the runs table, cached by mtime."""
    path = job.runs_path
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (stat.st_mtime_ns, stat.st_size)
    with _runs_lock:
        cached = _runs_cache.get(str(path))
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        runs = job.read_runs()
    except MixoptError:  # torn or foreign file: no summary rather than an error
        return None
    if runs is None or "status" not in runs.columns:
        return None
    status = runs["status"].tolist()
    stage = runs["stage"].tolist() if "stage" in runs.columns else ["search"] * len(status)
    objective = runs["objective"].tolist() if "objective" in runs.columns else [None] * len(status)
    completed = sum(s == "completed" for s in status)
    failed = sum(s == "abandoned" for s in status)
    values = [
        float(o)
        for s, g, o in zip(status, stage, objective, strict=False)
        if s == "completed" and g == "search" and o is not None and math.isfinite(float(o))
    ]
    best = (min(values) if direction == "minimize" else max(values)) if values else None
    summary = (completed, failed, best)
    with _runs_lock:
        if len(_runs_cache) > 1024:
            _runs_cache.clear()
        _runs_cache[str(path)] = (key, summary)
    return summary


def read_progress(job_dir: str | Path | JobDir, direction: str = "minimize") -> JobProgress:
    job = job_dir if isinstance(job_dir, JobDir) else JobDir(job_dir)
    record = job.read_status()
    progress = JobProgress(has_recommendation=job.has_recommendation())
    if record is not None:
        progress.status = record.status
        progress.stage = record.stage or None
        progress.trials_completed = record.trials_completed
        progress.trials_failed = record.trials_failed
        progress.trials_total = record.trials_total or None
        progress.best_objective = record.best_objective
        progress.eta_s = record.eta_s
        progress.error = record.error
    if progress.trials_completed is None or progress.best_objective is None:
        summary = _runs_summary(job, direction)
        if summary is not None:
            completed, failed, best = summary
            if progress.trials_completed is None:
                progress.trials_completed = completed
            if progress.trials_failed is None:
                progress.trials_failed = failed
            if progress.best_objective is None:
                progress.best_objective = best
    return progress


def eta_seconds(completed: int, total: int, started: float | None, now: float) -> float | None:
    """Time left at the average pace so far (data preparation included); None before a trial
    has finished."""
    if started is None or completed <= 0 or total <= completed:
        return None if total > completed else 0.0
    elapsed = max(0.0, now - started)
    return elapsed / completed * (total - completed)
