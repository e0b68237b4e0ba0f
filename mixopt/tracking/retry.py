"""Tracking that never stops a job: retry, defer, report.

:class:`RetryingTracker` wraps any tracker. Every call is delivered in order:

1. A failing call is retried ``attempts`` times with exponential backoff (``backoff_s``, doubling,
   at most ``max_backoff_s``).
2. If it still fails with a *transient* error (connection refused, timeout, HTTP 5xx, a locked
   database), tracking is considered down: the call and every later one wait in a queue (in
   order, at most ``max_pending``) and the job goes on without waiting; after ``cooldown_s`` the
   next call tries the queue again. When the server is back, the queue is delivered (the
   trackers' idempotence makes a call that half-succeeded safe to repeat).
3. A *permanent* error (a rejected value, a bug) is not retried: the call is dropped. If the
   dropped call is ``start_job``, tracking is off for the rest of the job (every later call
   would fail the same way).

``finish`` makes a last attempt at the queue, whatever the cooldown; what still cannot be
delivered is dropped. Every outage, recovery and drop is reported through ``report`` (the job
log), and :meth:`RetryingTracker.health` gives the counts. Only ``Exception`` is caught:
``KeyboardInterrupt`` still stops a job.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixopt.tracking.base import Tracker
from mixopt.trials import Trial, TrialRequest

Report = Callable[[str], None]

_PERMANENT_MLFLOW_CODES = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "RESOURCE_ALREADY_EXISTS",
    "BAD_REQUEST",
    "INVALID_STATE",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "FEATURE_DISABLED",
    "ENDPOINT_NOT_FOUND",
    "MALFORMED_REQUEST",
}


def is_transient(error: BaseException) -> bool:
    """Could retrying later help? Network and server-side trouble yes; rejected input no."""
    if isinstance(error, OSError | TimeoutError | ConnectionError):  # incl. requests' errors
        return True
    module = type(error).__module__
    if module.startswith(("sqlalchemy", "urllib3", "requests")):
        return True
    code = getattr(error, "error_code", None)
    if module.startswith("mlflow") and isinstance(code, str):
        return code not in _PERMANENT_MLFLOW_CODES
    return False


@dataclass
class _Call:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    label: str
    deferred: bool = False
    failed: bool = False  # counted in the failures already


@dataclass
class _Counts:
    failures: int = 0  # calls that failed after their retries (deferred or dropped), once each
    failed_attempts: int = 0  # every attempt that raised
    deferred: int = 0  # calls that waited in the queue for tracking to come back
    delivered_late: int = 0  # deferred calls delivered after all
    dropped: int = 0  # calls given up (permanent error, queue full, still down at the end)
    outages: int = 0
    last_error: str = ""
    errors: list[str] = field(default_factory=list)  # the latest few, for the health report


class RetryingTracker(Tracker):
    """Wraps ``inner``; see the module docstring. ``sleep``/``clock`` are injectable for tests."""

    def __init__(
        self,
        inner: Tracker,
        *,
        attempts: int = 3,
        backoff_s: float = 1.0,
        max_backoff_s: float = 10.0,
        cooldown_s: float = 60.0,
        max_pending: int = 10_000,
        report: Report | None = None,
        transient: Callable[[BaseException], bool] = is_transient,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        self.inner = inner
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.cooldown_s = cooldown_s
        self.max_pending = max_pending
        self.report: Report = report or (lambda text: None)
        self.transient = transient
        self._sleep = sleep
        self._clock = clock
        self._queue: deque[_Call] = deque()
        self._retry_at: float | None = None  # set while tracking is down
        self._disabled = ""  # why tracking is off for good ("" while on)
        self._counts = _Counts()

    # --------------------------------------------------------------------------- the contract

    def start_job(
        self,
        name: str,
        params: dict[str, Any],
        tags: dict[str, str],
        *,
        run_id: str | None = None,
    ) -> None:
        self._submit("start_job", (name, params, tags), {"run_id": run_id}, f"start_job({name})")

    def log_trial(
        self,
        trial: Trial,
        *,
        row: Mapping[str, Any] | None = None,
        request: TrialRequest | None = None,
    ) -> None:
        kwargs = {"row": row, "request": request}
        self._submit("log_trial", (trial,), kwargs, f"log_trial({trial.trial_id})")

    def log_predictor_fit(
        self,
        name: str,
        cv_scores: Mapping[str, Any],
        params: Mapping[str, Any],
        *,
        round: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        kwargs = {"round": round, "tags": tags}
        label = f"log_predictor_fit({name}, round={round})"
        self._submit("log_predictor_fit", (name, cv_scores, params), kwargs, label)

    def log_job_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        self._submit("log_job_metrics", (metrics,), {"step": step}, "log_job_metrics")

    def log_job_params(self, params: Mapping[str, Any]) -> None:
        self._submit("log_job_params", (params,), {}, "log_job_params")

    def log_artifact(self, path: Path, *, artifact_path: str | None = None) -> None:
        kwargs = {"artifact_path": artifact_path}
        self._submit("log_artifact", (path,), kwargs, f"log_artifact({Path(path).name})")

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self._submit("log_dict", (data, artifact_file), {}, f"log_dict({artifact_file})")

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self._submit("log_figure", (figure, artifact_file), {}, f"log_figure({artifact_file})")

    def finish(self, status: str) -> None:
        self._submit("finish", (status,), {}, f"finish({status})", drain=False)
        self._drain(force=True)
        if self._queue:
            n = len(self._queue)
            for call in self._queue:
                self._drop(call)
            self._queue.clear()
            self.report(
                f"tracking: {n} call(s) could not be delivered before the job ended "
                f"({self._counts.last_error}); the tracker misses them, the runs table has all"
            )

    @property
    def parent_run_id(self) -> str | None:
        return self.inner.parent_run_id

    def describe(self) -> str:
        return f"{self.inner.describe()} (failures retried, reported, never stop the job)"

    def health(self) -> dict[str, Any]:
        c = self._counts
        return {
            "failures": c.failures,
            "failed_attempts": c.failed_attempts,
            "deferred": c.deferred,
            "delivered_late": c.delivered_late,
            "dropped": c.dropped,
            "pending": len(self._queue),
            "outages": c.outages,
            "disabled": self._disabled,
            "last_error": c.last_error,
            "errors": list(c.errors),
        }

    @property
    def failures(self) -> int:
        """Tracking calls that failed after their retries (deferred or dropped)."""
        return self._counts.failures

    # ---------------------------------------------------------------------------- machinery

    def _submit(
        self,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        label: str,
        *,
        drain: bool = True,
    ) -> None:
        if self._disabled:
            self._drop(_Call(method, args, kwargs, label))
            return
        if len(self._queue) >= self.max_pending:
            lost = self._queue.popleft()
            self._drop(lost)
            self.report(f"tracking: queue full ({self.max_pending}); dropped {lost.label}")
        self._queue.append(_Call(method, args, kwargs, label))
        if drain:
            self._drain(force=False)
            self._defer_queued()  # what is still queued waits for tracking to come back

    def _defer_queued(self) -> None:
        for queued in self._queue:
            if not queued.deferred:
                queued.deferred = True
                self._counts.deferred += 1
                self._fail(queued)

    def _fail(self, call: _Call) -> None:
        if not call.failed:
            call.failed = True
            self._counts.failures += 1

    def _drop(self, call: _Call) -> None:
        self._fail(call)
        self._counts.dropped += 1

    def _drain(self, *, force: bool) -> None:
        while self._queue and not self._disabled:
            if not force and self._retry_at is not None and self._clock() < self._retry_at:
                return
            call = self._queue[0]
            error = self._attempt(call)
            if error is None:
                self._queue.popleft()
                if call.deferred:
                    self._counts.delivered_late += 1
                if self._retry_at is not None:
                    self._retry_at = None
                    self.report(f"tracking: back after an outage ({self.inner.describe()})")
                continue
            if not self.transient(error):
                self._queue.popleft()
                self._drop(call)
                if call.method == "start_job":
                    self._disabled = f"{call.label} failed: {_short(error)}"
                    dropped = len(self._queue)
                    for queued in self._queue:
                        self._drop(queued)
                    self._queue.clear()
                    self.report(
                        f"tracking: {self._disabled}; tracking is off for the rest of this job"
                        + (f" ({dropped} queued call(s) dropped)" if dropped else "")
                    )
                else:
                    self.report(f"tracking: {call.label} failed and was dropped: {_short(error)}")
                continue
            # transient and retries exhausted: tracking is down
            first = self._retry_at is None
            self._retry_at = self._clock() + self.cooldown_s
            self._defer_queued()
            if first:
                self._counts.outages += 1
                self.report(
                    f"tracking: {call.label} failed {self.attempts} time(s) ({_short(error)}); "
                    f"the job goes on, tracking calls wait and are retried every "
                    f"{self.cooldown_s:g} s"
                )
            return

    def _attempt(self, call: _Call) -> Exception | None:
        """Run ``call`` with retries; the last error, or None once it succeeded."""
        for attempt in range(self.attempts):
            try:
                getattr(self.inner, call.method)(*call.args, **call.kwargs)
                return None
            except Exception as error:  # tracking must never stop the job
                self._counts.failed_attempts += 1
                self._counts.last_error = f"{call.label}: {_short(error)}"
                self._counts.errors = [*self._counts.errors[-9:], self._counts.last_error]
                if not self.transient(error) or attempt == self.attempts - 1:
                    return error
                self._sleep(min(self.max_backoff_s, self.backoff_s * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover


def _short(error: BaseException, limit: int = 300) -> str:
    """One line, at most about ``limit`` characters, keeping the root cause ("[Errno 111]
    Connection refused") that HTTP clients bury at the end of long messages."""
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    if len(text) <= limit:
        return text
    cause = re.search(r"\[Errno -?\d+\][^'\")\]]*", text)
    tail = f" ... {cause.group(0).strip()}" if cause else "..."
    return text[: limit - len(tail)] + tail
