"""What the driver tells the world, and who listens: the log, the runs table, the tracker, the
progress view and the status file.

The driver never writes a job file itself: it notifies :class:`JobEvents`, which passes each
event to its listeners. A listener implements only the hooks it cares about:

- ``on_message(text)``: a line for the job's log;
- ``on_trial(trial, row, request)``: a trial finished (completed or abandoned) with its
  runs-table row;
- ``on_progress(snapshot)``: trials changed state (running, finished, best so far).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mixopt.job import JobDir, JobStatus, StatusRecord
from mixopt.progress import Progress, Snapshot

if TYPE_CHECKING:
    from mixopt.search.book import TrialBook
    from mixopt.tracking.base import Tracker
    from mixopt.trials import Trial, TrialRequest


class Listener:
    """A listener's hooks; each does nothing unless overridden."""

    def on_message(self, text: str) -> None: ...

    def on_trial(self, trial: Trial, row: dict[str, Any], request: TrialRequest) -> None: ...

    def on_progress(self, snapshot: Snapshot) -> None: ...


class JobEvents:
    """Fans each event out to the listeners, in order."""

    def __init__(self, listeners: list[Listener]) -> None:
        self.listeners = listeners

    def message(self, text: str) -> None:
        for listener in self.listeners:
            listener.on_message(text)

    def trial(self, trial: Trial, row: dict[str, Any], request: TrialRequest) -> None:
        for listener in self.listeners:
            listener.on_trial(trial, row, request)

    def progress(self, snapshot: Snapshot) -> None:
        for listener in self.listeners:
            listener.on_progress(snapshot)


class LogFile(Listener):
    """``job.log``: every message, time-stamped."""

    def __init__(self, job: JobDir) -> None:
        self.job = job

    def on_message(self, text: str) -> None:
        self.job.log(text)


class RunsTable(Listener):
    """``runs.parquet``: one row per finished trial, rewritten (atomically) at each one."""

    def __init__(self, job: JobDir) -> None:
        self.job = job
        self.rows: dict[str, dict[str, Any]] = {}

    def on_trial(self, trial: Trial, row: dict[str, Any], request: TrialRequest) -> None:
        self.rows[trial.trial_id] = row
        self.job.write_runs(list(self.rows.values()))


class TrackerListener(Listener):
    """The tracker's child run of each finished trial."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def on_trial(self, trial: Trial, row: dict[str, Any], request: TrialRequest) -> None:
        self.tracker.log_trial(trial, row=row, request=request)


class ProgressListener(Listener):
    """A progress view (terminal panel, log lines, or nothing)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_message(self, text: str) -> None:
        self.progress.message(text)

    def on_progress(self, snapshot: Snapshot) -> None:
        self.progress.update(snapshot)


class StatusFile(Listener):
    """``job.json``: the job's status, rewritten as trials change and when the job ends.

    Counts are the whole job's (``book``), the stage and running trials the latest snapshot's;
    ``best`` gives the best search trial so far.
    """

    def __init__(
        self,
        job: JobDir,
        name: str,
        planned: int,
        book: TrialBook,
        best: Callable[[], Trial | None],
    ) -> None:
        self.job = job
        self.name = name
        self.planned = planned
        self.book = book
        self.best = best
        self.started_at = time.time()
        self.stage = "preparing"
        self.running: list[str] = []

    def on_progress(self, snapshot: Snapshot) -> None:
        self.stage, self.running = snapshot.stage, list(snapshot.running)
        self.write(JobStatus.RUNNING)

    def write(self, status: JobStatus, **extra: Any) -> None:
        completed, failed = self.book.counts()
        best = self.best()
        elapsed = time.time() - self.started_at
        eta = None
        if completed and status is JobStatus.RUNNING:
            eta = elapsed / completed * (self.planned - completed)
        record = StatusRecord(
            job=self.name,
            status=status,
            stage=self.stage,
            updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            host=platform.node(),
            pid=os.getpid(),
            trials=len(self.book),
            trials_total=self.planned,
            trials_completed=completed,
            trials_failed=failed,
            best_objective=None if best is None else best.result["objective"],
            best_trial=None if best is None else best.trial_id,
            elapsed_s=elapsed,
            eta_s=eta,
            running=self.running if status is JobStatus.RUNNING else [],
            **extra,
        )
        self.job.write_status(record)
