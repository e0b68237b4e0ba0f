"""A job's progress, read from its directory: ``job.json`` first, ``runs.parquet`` to fill gaps.

The job process owns both files; the service only reads them. ``job.json`` may carry
``trials_completed``, ``trials_total``, ``best_objective`` and ``stage``; where it does not, the
runs table (cached by modification time) gives the counts and the best search objective.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixopt.spec import JobSpec

STATE_FILE = "job.json"
RUNS_FILE = "runs.parquet"
RECOMMENDATION_FILE = "recommendation.json"


@dataclass
class JobProgress:
    status: str | None = None  # job.json's status: preparing, running, completed, failed, ...
    stage: str | None = None
    trials_completed: int | None = None
    trials_failed: int | None = None
    trials_total: int | None = None
    best_objective: float | None = None
    eta_s: float | None = None
    error: str | None = None
    has_recommendation: bool = False


def expected_trials(spec: JobSpec) -> int:
    """Trials a job will run: the search budget plus the validation (mixtures x seeds)."""
    s, v = spec.search, spec.validate_
    total = s.initial_trials + s.rounds * s.trials_per_round
    if v.enabled:
        mixtures = 1 + len(v.baselines) + (1 if v.current is not None else 0)
        total += mixtures * v.seeds
    return total


def read_state(job_dir: Path) -> dict[str, Any] | None:
    """``job.json`` as a dict, or None when absent or caught mid-write."""
    try:
        data = json.loads((job_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_runs_cache: dict[str, tuple[tuple[int, int], tuple[int, int, float | None]]] = {}
_runs_lock = threading.Lock()


def _runs_summary(job_dir: Path, direction: str) -> tuple[int, int, float | None] | None:
    """(completed, abandoned, best search objective) from the runs table, cached by mtime."""
    path = job_dir / RUNS_FILE
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
        import pyarrow.parquet as pq

        table = pq.read_table(path).to_pydict()
    except Exception:  # torn or foreign file: no summary rather than an error
        return None
    status = table.get("status", [])
    stage = table.get("stage", ["search"] * len(status))
    objective = table.get("objective", [None] * len(status))
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


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def read_progress(job_dir: str | Path, direction: str = "minimize") -> JobProgress:
    job_dir = Path(job_dir)
    state = read_state(job_dir) or {}
    progress = JobProgress(
        status=state.get("status") if isinstance(state.get("status"), str) else None,
        stage=state.get("stage") if isinstance(state.get("stage"), str) else None,
        trials_completed=_int(state.get("trials_completed")),
        trials_failed=_int(state.get("trials_failed")),
        trials_total=_int(state.get("trials_total")),
        best_objective=_float(state.get("best_objective")),
        eta_s=_float(state.get("eta_s")),
        error=state.get("error") if isinstance(state.get("error"), str) else None,
        has_recommendation=(job_dir / RECOMMENDATION_FILE).is_file(),
    )
    if progress.trials_completed is None or progress.best_objective is None:
        summary = _runs_summary(job_dir, direction)
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
