"""How the supervisor settles a job whose process ended: every view must agree (the service's
state and the job's own ``job.json``), whatever the order of a cancel and the job's end."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mixopt.job import JobDir, JobStatus, StatusRecord
from mixopt.service.store import JobRecord, JobStore
from mixopt.service.supervisor import Supervisor


@pytest.fixture
def supervisor(tmp_path, service_settings):
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}")
    yield Supervisor(store, service_settings(), host="here")
    store.close()


def running_job(supervisor: Supervisor, tmp_path: Path, status: JobStatus, **values) -> JobRecord:
    folder = tmp_path / "jobs" / "j1"
    job = JobDir(folder / "run")
    job.path.mkdir(parents=True)
    job.write_status(StatusRecord(job="x", status=status, running=["t0002"]))
    if status is JobStatus.COMPLETED:
        job.write_recommendation({"weights": {"a": 1.0}})
    now = time.time()
    record = JobRecord(
        id="j1",
        owner="alice",
        name="x",
        state="running",
        command="run",
        runner="local",
        spec="name: x\n",
        folder=str(folder),
        job_dir=str(job.path),
        direction="minimize",
        trials_total=4,
        created=now,
        updated=now,
        host="here",
        **values,
    )
    supervisor.store.add(record)
    return record


def test_a_job_that_completed_before_the_cancel_reached_it_stays_completed(supervisor, tmp_path):
    job = running_job(supervisor, tmp_path, JobStatus.COMPLETED, cancel_requested=time.time())
    supervisor._finalize(job, 0)
    assert supervisor.store.get("j1").state == "completed"
    assert json.loads((Path(job.job_dir) / "job.json").read_text())["status"] == "completed"


def test_a_cancelled_job_killed_after_the_grace_period_says_cancelled_everywhere(
    supervisor, tmp_path
):
    job = running_job(supervisor, tmp_path, JobStatus.RUNNING, cancel_requested=time.time())
    supervisor._finalize(job, -9)
    assert supervisor.store.get("j1").state == "cancelled"
    status = json.loads((Path(job.job_dir) / "job.json").read_text())
    assert status["status"] == "cancelled" and "killed after the grace period" in status["error"]
    assert "running" not in status


def test_a_cancelled_job_that_recorded_it_keeps_its_own_record(supervisor, tmp_path):
    job = running_job(supervisor, tmp_path, JobStatus.CANCELLED, cancel_requested=time.time())
    before = (Path(job.job_dir) / "job.json").read_text()
    supervisor._finalize(job, 3)
    assert supervisor.store.get("j1").state == "cancelled"
    assert (Path(job.job_dir) / "job.json").read_text() == before


def test_a_directory_still_owned_by_a_process_is_never_deleted(supervisor, tmp_path):
    """A restart of a job whose earlier process still holds its directory fails the start
    instead of deleting what the live process is writing."""
    job = running_job(supervisor, tmp_path, JobStatus.RUNNING)
    supervisor.store.update("j1", state="queued")
    with JobDir(job.job_dir).lock():
        assert supervisor._launch(supervisor.store.get("j1")) == 0
        assert (Path(job.job_dir) / "job.json").exists()
    failed = supervisor.store.get("j1")
    assert failed.state == "failed" and "still owns its directory" in failed.error
