"""A job's status: the one vocabulary of job states, and the ``job.json`` record.

Every view of a job (the driver, ``mixopt status``, the service, the report and the dashboard)
speaks :class:`JobStatus`. The service's API has a coarser vocabulary (queued, running,
completed, failed, cancelled); :meth:`JobStatus.service_state` is the one mapping into it.
:func:`planned_trials` is the one formula for how many trials a job runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mixopt.spec import JobSpec


class JobStatus(StrEnum):
    QUEUED = "queued"  # created; its process is starting
    PREPARING = "preparing"  # the data stage
    RUNNING = "running"  # trials are training
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped on request (SIGTERM, POST /cancel)
    INTERRUPTED = "interrupted"  # stopped by the user's Ctrl-C, or its process died

    @property
    def final(self) -> bool:
        return self in (
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.INTERRUPTED,
        )

    @property
    def active(self) -> bool:
        """The job's process should be alive."""
        return self in (JobStatus.PREPARING, JobStatus.RUNNING)

    @property
    def resumable(self) -> bool:
        return self is not JobStatus.COMPLETED

    def service_state(self) -> str:
        """The state in the service's vocabulary (see ``mixopt.service.schemas.JobState``)."""
        return _SERVICE_STATES[self]

    @classmethod
    def stopped_by(cls, error: BaseException) -> JobStatus:
        """The status of a job stopped by ``error``: cancelled, interrupted (Ctrl-C), failed."""
        if isinstance(error, JobCancelled):
            return cls.CANCELLED
        return cls.INTERRUPTED if isinstance(error, KeyboardInterrupt) else cls.FAILED

    @classmethod
    def parse(cls, value: Any) -> JobStatus | None:
        """The status named by ``value``; None for anything else (a foreign or torn file)."""
        try:
            return cls(value)
        except ValueError:
            return None


_SERVICE_STATES = {
    JobStatus.QUEUED: "queued",
    JobStatus.PREPARING: "running",
    JobStatus.RUNNING: "running",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.INTERRUPTED: "cancelled",
}


@dataclass
class StatusRecord:
    """``job.json``: what a person, ``mixopt status`` or the service polls to follow a job."""

    job: str
    status: JobStatus
    stage: str = ""
    updated: str = ""
    host: str = ""
    pid: int | None = None
    trials: int = 0
    trials_total: int = 0
    trials_completed: int = 0
    trials_failed: int = 0
    best_objective: float | None = None
    best_trial: str | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    running: list[str] = field(default_factory=list)
    error: str | None = None
    wall_s: float | None = None
    tracking: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        # optional fields only when set, as job.json has always been written
        for name in ("error", "wall_s", "tracking"):
            if data[name] is None:
                del data[name]
        if not self.running and self.status is not JobStatus.RUNNING:
            del data["running"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatusRecord | None:
        """A record from ``job.json``'s mapping, leniently (a missing or odd field takes its
        default); None when it names no known status."""
        status = JobStatus.parse(data.get("status"))
        if status is None:
            return None
        record = cls(job=str(data.get("job") or ""), status=status)
        for name, kind in _FIELD_TYPES.items():
            value = data.get(name)
            if _fits(value, kind):
                setattr(record, name, value)
        return record


_FIELD_TYPES: dict[str, Any] = {
    "stage": str,
    "updated": str,
    "host": str,
    "pid": int,
    "trials": int,
    "trials_total": int,
    "trials_completed": int,
    "trials_failed": int,
    "best_objective": float,
    "best_trial": str,
    "elapsed_s": float,
    "eta_s": float,
    "running": list,
    "error": str,
    "wall_s": float,
    "tracking": dict,
}


def _fits(value: Any, kind: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if kind is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, kind)


def planned_trials(spec: JobSpec) -> int:
    """Trials a job plans: the initial design (and the baselines its guard rails are relative
    to), the proposal rounds, and the validation (mixtures, the path toward natural included,
    x seeds)."""
    s, v = spec.search, spec.validate_
    relative = {c.relative_to for c in spec.objective.constraints if c.max_value is None}
    total = s.initial_trials + sum(s.rung_trials()) + len(relative)
    total += s.rounds * s.trials_per_round
    if v.enabled:
        mixtures = 1 + len(v.baselines) + (v.current is not None) + v.path
        total += mixtures * v.seeds
    return total


class JobCancelled(BaseException):
    """Raised in the driver (e.g. by a SIGTERM handler) to stop a job: its status 'cancelled'.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way (a
    trial's own error handling, a runner's) mistakes it for a failed trial.
    """
