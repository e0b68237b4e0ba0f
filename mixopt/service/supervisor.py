"""Runs each job as its own process and watches it.

A job runs as ``python -m mixopt.cli.main run SPEC --job-dir DIR`` (``resume DIR`` to go on from
where a killed one stopped) in its own session, with stdout and stderr in ``process.log`` of the
job's folder. So a job that crashes never takes the server down, and a server that stops or is
killed leaves its jobs running.

Restart semantics (what :meth:`Supervisor.tick` does for each running job of this host):

- its process is still alive → the new server adopts it (watches its pid) and it finishes;
- its process is gone and ``job.json`` says completed → completed; says failed → failed;
- its process is gone without a final state (killed with the server, OOM, a reboot) → it is
  queued again with ``mixopt resume`` (finished trials are kept), at most ``max_resumes`` times;
- a cancelled job's driver gets SIGTERM (it stops its trials, saves its state, records
  ``cancelled`` in ``job.json`` and MLflow and exits 3), its process group SIGKILL after
  ``cancel_grace_s`` (then the supervisor records ``cancelled`` in ``job.json``); a job that
  completed before the cancel reached it stays completed, so every view agrees; a job stopped
  by a SIGTERM nobody asked for through the API (a machine shutting down) is resumed like a
  killed one.

Each job process gets its user's policy (:class:`~mixopt.service.policy.JobPolicy`) in its
environment, and enforces it before it reads or trains anything.

Queued jobs start oldest first while fewer than ``max_concurrent_jobs`` run on this host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from mixopt.cli.common import CANCELLED_EXIT
from mixopt.job import JobDir, JobStatus
from mixopt.service.policy import JobPolicy
from mixopt.service.progress import read_progress
from mixopt.service.settings import TOKEN_ENV, TOKEN_FILE_ENV, ServiceSettings
from mixopt.service.store import JobRecord, JobStore

log = logging.getLogger("mixopt.service")

SUBMITTED_SPEC = "submitted.yaml"
PROCESS_LOG = "process.log"


def process_alive(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` is a live (not zombie) process whose command line contains ``marker``
    (the job directory), so a recycled pid is never taken for the job."""
    if not pid or pid <= 0:
        return False
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").is_dir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        fields = stat.rsplit(")", 1)[-1].split()
        if fields and fields[0] in ("Z", "X"):
            return False
        return marker in cmdline
    try:  # no /proc (macOS): existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_job(pid: int, sig: int, *, group: bool = True) -> None:
    """Send ``sig`` to the job's driver, or to its whole process group (its trials too)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def log_tail(path: Path, lines: int = 20, max_bytes: int = 16_384) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts, watches, cancels and recovers the job processes of this host."""

    def __init__(self, store: JobStore, settings: ServiceSettings, host: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.host = host or platform.node()
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._interrupted: set[str] = set()  # jobs sent SIGTERM for a cancel
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Recover what a previous server left, then watch in a background thread."""
        self.tick()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="mixopt-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching. Job processes keep running; the next server adopts them."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def wake(self) -> None:
        """Tick now rather than at the next poll (a job was queued)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.tick()
            except Exception:  # a bad tick (database hiccup) must not end supervision
                log.exception("supervisor tick failed")

    # -------------------------------------------------------------------------------- ticks

    def tick(self) -> None:
        with self._lock:
            jobs = self.store.active()
            running = 0
            for job in jobs:
                if job.state == "running" and job.host == self.host:
                    running += self._watch(job)
            for job in jobs:
                if job.state != "queued":
                    continue
                if running >= self.settings.max_concurrent_jobs:
                    break
                running += self._launch(job)

    def _watch(self, job: JobRecord) -> int:
        """Update a running job; 1 while its process lives, 0 once it has been finalised."""
        child = self._children.get(job.id)
        if child is not None:
            code = child.poll()
            alive = code is None
        else:
            code = None
            alive = process_alive(job.pid, job.job_dir)
        if alive:
            self._refresh(job)
            pid = child.pid if child is not None else job.pid
            if job.cancel_requested is not None and pid:
                if job.id not in self._interrupted:
                    # the driver turns SIGTERM into a cancellation: it stops its trials,
                    # saves its state and exits
                    signal_job(pid, signal.SIGTERM, group=False)
                    self._interrupted.add(job.id)
                elif time.time() - job.cancel_requested > self.settings.cancel_grace_s:
                    signal_job(pid, signal.SIGKILL)
            return 1
        self._children.pop(job.id, None)
        self._interrupted.discard(job.id)
        self._finalize(job, code)
        return 0

    def _refresh(self, job: JobRecord) -> None:
        progress = read_progress(job.job_dir, job.direction)
        values: dict[str, object] = {}
        for name in ("stage", "trials_completed", "trials_failed", "best_objective"):
            value = getattr(progress, name)
            if value is not None and value != getattr(job, name):
                values[name] = value
        if progress.trials_total and progress.trials_total != job.trials_total:
            values["trials_total"] = progress.trials_total
        if values:
            self.store.update(job.id, **values)

    def _finalize(self, job: JobRecord, code: int | None) -> None:
        progress = read_progress(job.job_dir, job.direction)
        now = time.time()
        values: dict[str, object] = {"pid": None, "exit_code": code, "finished": now}
        for name in ("stage", "trials_completed", "trials_failed", "best_objective"):
            if getattr(progress, name) is not None:
                values[name] = getattr(progress, name)
        how = "it was killed" if code is None else f"exit status {code}"
        if code is not None and code < 0:
            how = f"killed by signal {-code}"
        broke = code is not None and code > 0 and code != CANCELLED_EXIT
        completed = progress.status is JobStatus.COMPLETED and progress.has_recommendation
        if completed and not code:  # finished before a cancel could stop it
            values.update(state="completed", error=None)
        elif job.cancel_requested is not None:
            values.update(state="cancelled", error=None)
            self._record_cancelled(job)
        elif progress.status is JobStatus.FAILED or broke:
            tail = log_tail(Path(job.folder) / PROCESS_LOG)
            values.update(state="failed", error=progress.error or f"{how}:\n{tail}".strip())
        elif self.settings.auto_resume and job.resumes < self.settings.max_resumes:
            log.warning("job %s: process gone (%s); resuming", job.id, how)
            values.update(
                state="queued",
                command=self._next_command(job),
                resumes=job.resumes + 1,
                finished=None,
                error=f"job process ended ({how}); resumed automatically",
            )
        else:
            values.update(
                state="failed",
                error=f"job process ended ({how}) after {job.resumes} automatic resume(s)",
            )
        self.store.transition(job.id, ("running",), **values)

    @staticmethod
    def _record_cancelled(job: JobRecord) -> None:
        """A job killed before it could record its cancellation: record it in ``job.json``."""
        directory = JobDir(job.job_dir)
        record = directory.read_status()
        if record is not None and not record.status.final:
            record.status = JobStatus.CANCELLED
            record.error = "cancelled; the job's process was killed after the grace period"
            record.running = []
            with contextlib.suppress(OSError):
                directory.write_status(record)

    @staticmethod
    def _next_command(job: JobRecord) -> str:
        """Resume a job that saved a resumable state; start one that did not from scratch."""
        return "resume" if JobDir(job.job_dir).can_resume() else "run"

    def _launch(self, job: JobRecord) -> int:
        """Start a queued job's process; 1 when it started."""
        now = time.time()
        claimed = self.store.transition(
            job.id,
            ("queued",),
            state="running",
            host=self.host,
            pid=None,
            started=job.started or now,
            finished=None,
            exit_code=None,
        )
        if not claimed:  # another server took it, or it was cancelled meanwhile
            return 0
        folder, job_dir = Path(job.folder), Path(job.job_dir)
        command = [*self.settings.job_command]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if job.command == "resume":
                command += ["resume", str(job_dir), "--runner", job.runner]
            else:
                if JobDir(job_dir).locked():  # its earlier process still owns it
                    raise OSError(f"job {job.id}: an earlier process still owns its directory")
                if job_dir.exists():  # a start that never got going: begin again, cleanly
                    shutil.rmtree(job_dir)
                spec_path = folder / SUBMITTED_SPEC
                spec_path.write_text(job.spec)
                command += ["run", str(spec_path), "--job-dir", str(job_dir)]
                command += ["--runner", job.runner]
            # the job needs no token, and must not mistake itself for a client of a server
            hidden = (TOKEN_ENV, TOKEN_FILE_ENV, "MIXOPT_SERVER")
            env = {k: v for k, v in os.environ.items() if k not in hidden}
            env.update(JobPolicy.for_user(self.settings, job.owner).to_env())
            env["PYTHONUNBUFFERED"] = "1"
            with (folder / PROCESS_LOG).open("ab") as out:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                out.write(f"=== {stamp} mixopt {job.command} (job {job.id}) ===\n".encode())
                out.flush()
                child = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=folder,
                    env=env,
                    start_new_session=True,
                )
        except OSError as error:
            self.store.transition(
                job.id,
                ("running",),
                state="failed",
                finished=time.time(),
                error=f"cannot start the job process: {error}",
            )
            return 0
        self._children[job.id] = child
        self.store.update(job.id, pid=child.pid)
        log.info("job %s: started %s (pid %d)", job.id, job.command, child.pid)
        return 1

    # ------------------------------------------------------------------------------ actions

    def cancel(self, job: JobRecord) -> None:
        """Cancel a queued job at once; ask a running one to stop (SIGTERM, SIGKILL later)."""
        with self._lock:
            now = time.time()
            if job.state == "queued":
                self.store.transition(
                    job.id, ("queued",), state="cancelled", cancel_requested=now, finished=now
                )
                return
            if job.state != "running":
                return
            if job.cancel_requested is None:
                self.store.transition(job.id, ("running",), cancel_requested=now)
            current = self.store.get(job.id)
            if current is not None and current.state == "running" and current.host == self.host:
                self._watch(current)  # signals the process now (or finalises a dead one)

    def requeue(self, job: JobRecord) -> bool:
        """Queue a failed or cancelled job again, resuming it where it stopped."""
        with self._lock:
            return self.store.transition(
                job.id,
                ("failed", "cancelled"),
                state="queued",
                command=self._next_command(job),
                cancel_requested=None,
                finished=None,
                exit_code=None,
                error=None,
                resumes=0,
            )
