"""How the API shows a job: its record with fresh progress, its logs and its spec, with server
paths rewritten (:mod:`mixopt.service.redact`): a job's folder is shown relative to the service's
state directory, its error, log and spec without the state directory, Python or home paths."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from mixopt.job import JobDir
from mixopt.service.progress import eta_seconds
from mixopt.service.progress import read_progress as read_job_progress
from mixopt.service.redact import Redactor
from mixopt.service.schemas import JobOut
from mixopt.service.settings import ServiceSettings
from mixopt.service.store import JobRecord
from mixopt.service.supervisor import PROCESS_LOG

MAX_LOG_BYTES = 1 << 20


def iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


class JobViews:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.redact = Redactor(settings.state_dir, keep=list(settings.data_roots))

    def text(self, text: str, job: JobRecord | None = None) -> str:
        """``text`` without server paths (``job``'s own relative to its folder)."""
        return self.redact(text, job.folder if job is not None else None)

    def out(self, job: JobRecord) -> JobOut:
        completed, failed, best, stage = (
            job.trials_completed,
            job.trials_failed,
            job.best_objective,
            job.stage,
        )
        total, eta = job.trials_total, None
        if job.state == "running":  # fresher than the supervisor's last look
            now_progress = read_job_progress(job.job_dir, job.direction)
            eta = now_progress.eta_s
            completed = now_progress.trials_completed or completed
            failed = now_progress.trials_failed or failed
            best = now_progress.best_objective if now_progress.best_objective is not None else best
            stage = now_progress.stage or stage
            total = now_progress.trials_total or total
        now = time.time()
        done = completed + failed
        if job.state == "running" and eta is None:
            eta = eta_seconds(done, total, job.started, now)
        fraction = 1.0 if job.state == "completed" else min(1.0, done / total) if total else 0.0
        end = job.finished or now
        return JobOut(
            id=job.id,
            name=job.name,
            owner=job.owner,
            state=job.state,
            stage=stage,
            trials_completed=completed,
            trials_failed=failed,
            trials_total=total,
            progress=round(fraction, 4),
            best_objective=best,
            eta_s=None if eta is None else round(eta, 1),
            created=iso(job.created) or "",
            started=iso(job.started),
            finished=iso(job.finished),
            updated=iso(job.updated) or "",
            elapsed_s=None if job.started is None else round(end - job.started, 3),
            resumes=job.resumes,
            cancel_requested=job.cancel_requested is not None,
            error=None if job.error is None else self.text(job.error, job),
            job_dir=self.redact.relative(job.job_dir, self.settings.state_dir),
        )

    def spec(self, job: JobRecord) -> str:
        return self.text(job.spec, job)

    def log(self, job: JobRecord, source: str, tail: int, offset: int | None) -> tuple[str, int]:
        """(text, byte offset after it) of the job's process log or its job.log."""
        if source == "process":
            path = Path(job.folder) / PROCESS_LOG
        else:
            path = JobDir(job.job_dir).log_path
        text, end = read_log(path, tail, offset)
        return self.text(text, job), end


def read_log(path: Path, tail: int, offset: int | None) -> tuple[str, int]:
    """(text, offset after it): from ``offset`` (at most MAX_LOG_BYTES), else the last lines."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            if offset is not None:
                start = min(offset, size)
                handle.seek(start)
                data = handle.read(MAX_LOG_BYTES)
                return data.decode(errors="replace"), start + len(data)
            start = max(0, size - MAX_LOG_BYTES)
            handle.seek(start)
            data = handle.read()
    except OSError:
        return "", 0
    lines = data.decode(errors="replace").splitlines(keepends=True)
    return "".join(lines[-tail:]), size
