"""Starting a job: its runner, tracker and progress view from the spec, then the driver.

``run_job`` is what ``mixopt run`` and the service's job process call; ``resume_job`` continues
an interrupted job in place. Job directories are never reused: a new run gets a new directory
(:meth:`mixopt.job.JobDir.create`), so earlier results stay intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.errors import MixoptError
from mixopt.job import JobDir
from mixopt.progress import Progress, default_progress
from mixopt.search.driver import SearchJob
from mixopt.search.outcome import JobOutcome

if TYPE_CHECKING:
    from mixopt.runners.base import Runner
    from mixopt.spec import JobSpec
    from mixopt.tracking.base import Tracker


def run_job(
    spec: JobSpec,
    job_dir: Path | JobDir,
    *,
    runner: str | Runner = "ray",
    tracker: Tracker | None = None,
    progress: Progress | None = None,
    resume: bool = False,
) -> JobOutcome:
    job = job_dir if isinstance(job_dir, JobDir) else JobDir(job_dir)
    progress = progress if progress is not None else default_progress()
    if tracker is None:

        def report(text: str) -> None:  # tracking trouble shows in the job's log and view
            job.log(text)
            progress.message(text)

        tracker = spec.tracking.build_tracker(job, report=report)
    driver = SearchJob(
        spec,
        job,
        runner=spec.resources.build_runner(runner) if isinstance(runner, str) else runner,
        tracker=tracker,
        progress=progress,
        resume=resume,
    )
    return driver.run()


def resume_job(
    job_dir: Path | JobDir, *, runner: str | Runner = "ray", **kwargs: Any
) -> JobOutcome:
    """Continue an interrupted job in place, from its saved spec and state."""
    job = job_dir if isinstance(job_dir, JobDir) else JobDir(job_dir)
    spec = job.load_spec()
    status = job.read_status()
    if status is not None and not status.status.resumable:
        raise MixoptError(f"{job.path}: the job has already completed; nothing to resume")
    return run_job(spec, job, runner=runner, resume=True, **kwargs)
