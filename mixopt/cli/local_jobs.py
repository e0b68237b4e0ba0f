"""The client commands without a server: a job started in the background on this machine
(``mixopt submit SPEC``) and a local job directory described like the service's job
(``mixopt status JOB_DIR``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from mixopt.errors import MixoptError


def submit_local(spec_path: Path, runner: str, dry_run: bool) -> None:
    """Start ``mixopt run`` on SPEC in the background; print the job directory last."""
    import subprocess

    from mixopt.job import JobDir
    from mixopt.spec import load_spec

    spec = load_spec(spec_path)
    if dry_run:
        typer.echo(f"{spec_path}: valid")
        return
    directory = JobDir.create(spec.output_dir, spec.name).path
    log_path = directory.with_name(directory.name + ".log")
    command = [sys.executable, "-m", "mixopt.cli.main", "run", str(spec_path.resolve())]
    command += ["--job-dir", str(directory), "--runner", runner]
    with log_path.open("ab") as out:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    typer.echo(
        f"started {spec.name} in the background (pid {child.pid}); output in {log_path}; "
        f"watch it: mixopt status {directory}",
        err=True,
    )
    typer.echo(str(directory))


def local_status(job_dir: Path) -> dict[str, Any]:
    """A local job directory described like the service's job (state, trials, best)."""
    import platform

    from mixopt.job import JobDir, JobStatus, StatusRecord, planned_trials
    from mixopt.job.directory import STATUS_FILE
    from mixopt.service.progress import eta_seconds, read_progress
    from mixopt.service.supervisor import process_alive

    job = JobDir(job_dir)
    record = job.read_status()
    starting = job.path.is_dir() and not any(
        p for p in job.path.iterdir() if not p.name.startswith(".")
    )
    if record is None and starting:  # created; its process has not written a status yet
        record = StatusRecord(job=job.path.name, status=JobStatus.QUEUED)
    if record is None:
        raise MixoptError(f"{job_dir}: not a job directory (no readable {STATUS_FILE})")
    direction, total = "minimize", 0
    if job.spec_path.is_file():
        try:
            spec = job.load_spec()
            direction, total = spec.objective.direction, planned_trials(spec)
        except MixoptError:
            pass
    progress = read_progress(job, direction)
    status = progress.status or record.status
    mapped = status.service_state()
    error = progress.error
    here = record.host in ("", platform.node())
    if status.active and here and record.pid is not None and not process_alive(record.pid, ""):
        mapped = "failed"
        error = f"the job's process is gone; continue it with: mixopt resume {job_dir}"
    completed = progress.trials_completed or 0
    failed = progress.trials_failed or 0
    total = progress.trials_total or total
    eta = progress.eta_s
    if mapped == "running" and eta is None:
        eta = eta_seconds(completed + failed, total, job.path.stat().st_ctime, time.time())
    return {
        "id": str(job_dir),
        "name": record.job or job.path.name,
        "state": mapped,
        "status": status.value,
        "stage": progress.stage,
        "trials_completed": completed,
        "trials_failed": failed,
        "trials_total": total,
        "best_objective": progress.best_objective,
        "eta_s": eta if mapped == "running" else None,
        "error": error,
        "job_dir": str(job_dir),
    }
