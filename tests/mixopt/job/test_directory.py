"""The job directory: unique creation, typed readers and writers, the ownership lock."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from mixopt.errors import MixoptError
from mixopt.job import JobDir, JobLocked, JobState, JobStatus, StatusRecord, find_job_dirs
from mixopt.trials import Trial, TrialStatus


def test_created_directories_are_unique_even_in_one_second(tmp_path):
    made = {JobDir.create(tmp_path, "demo").path for _ in range(50)}
    assert len(made) == 50
    assert all(p.name.startswith("demo-") and p.is_dir() for p in made)


def test_an_explicit_directory_must_be_new_or_empty(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "runs.parquet").write_text("precious")
    with pytest.raises(MixoptError, match="already exists and is not empty"):
        JobDir.create(tmp_path, "demo", tmp_path / "old")
    assert (tmp_path / "old" / "runs.parquet").read_text() == "precious"
    assert JobDir.create(tmp_path, "demo", tmp_path / "new").path == tmp_path / "new"


def test_status_round_trips_and_torn_files_read_as_none(tmp_path):
    job = JobDir(tmp_path)
    assert job.read_status() is None
    record = StatusRecord(job="demo", status=JobStatus.RUNNING, trials_completed=3, running=["t1"])
    job.write_status(record)
    assert job.read_status() == record
    assert json.loads((tmp_path / "job.json").read_text())["status"] == "running"
    (tmp_path / "job.json").write_text('{"status": "runn')  # caught mid-write
    notes: list[str] = []
    assert job.read_status(notes) is None and "not valid JSON" in notes[0]
    (tmp_path / "job.json").write_text('{"status": "exploded"}')  # foreign vocabulary
    assert job.read_status() is None


def test_status_fields_of_the_wrong_type_take_their_defaults(tmp_path):
    job = JobDir(tmp_path)
    (tmp_path / "job.json").write_text(
        json.dumps({"status": "failed", "trials_completed": "many", "best_objective": 1e999})
    )
    record = job.read_status()
    assert record is not None and record.status is JobStatus.FAILED
    assert record.trials_completed == 0 and record.best_objective is None


def test_state_round_trips_and_unfinished_trials_queue_again(tmp_path):
    job = JobDir(tmp_path)
    trials = [
        Trial("t0000", 0, {"a": 0.5, "b": 0.5}, 0, status=TrialStatus.COMPLETED),
        Trial("t0001", 0, {"a": 1.0, "b": 0.0}, 0, status=TrialStatus.RUNNING, attempts=1),
    ]
    job.save_state(JobState(trials, {"weights": [0.5, 0.5]}, "run-1"))
    loaded = job.load_state()
    assert [t.trial_id for t in loaded.trials] == ["t0000", "t0001"]
    assert loaded.trials[0].status is TrialStatus.COMPLETED
    assert loaded.trials[1].status is TrialStatus.QUEUED
    assert loaded.parent_run_id == "run-1"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "a mapping was expected, not list"),
        ("{not json", "unreadable job state"),
        ('{"version": 99, "trials": []}', "unknown state version 99"),
        ('{"version": 1, "trials": [{"trial_id": "t0"}]}', "unreadable job state"),
    ],
)
def test_a_corrupt_state_is_a_clear_error(tmp_path, content, message):
    (tmp_path / "state.json").write_text(content)
    with pytest.raises(MixoptError, match=message):
        JobDir(tmp_path).load_state()


def test_missing_state_and_recommendation_say_so(tmp_path):
    job = JobDir(tmp_path)
    with pytest.raises(MixoptError, match=r"no state\.json, nothing to resume"):
        job.load_state()
    with pytest.raises(MixoptError, match="the job has not finished"):
        job.load_recommendation()
    (tmp_path / "recommendation.json").write_text('{"weights": [1]}')
    with pytest.raises(MixoptError, match="no 'weights' mapping"):
        job.load_recommendation()
    assert job.read_recommendation() == {"weights": [1]}


def test_runs_table_is_read_in_trial_order(tmp_path):
    job = JobDir(tmp_path)
    assert job.read_runs() is None
    job.write_runs([{"trial_id": t, "objective": float(i)} for i, t in enumerate(["t10", "t9"])])
    assert job.read_runs()["trial_id"].tolist() == ["t9", "t10"]
    (tmp_path / "runs.parquet").write_text("not parquet")
    with pytest.raises(MixoptError, match="cannot read the runs table"):
        job.read_runs()


def test_job_markers_and_discovery(tmp_path):
    assert not JobDir(tmp_path / "nothing").is_job()
    with pytest.raises(MixoptError, match="no such job directory"):
        find_job_dirs(tmp_path / "nothing")
    with pytest.raises(MixoptError, match="not a mixopt job directory"):
        find_job_dirs(tmp_path)
    older, newer = tmp_path / "a", tmp_path / "b"
    for path in (older, newer):
        JobDir(path).path.mkdir()
        JobDir(path).write_status(StatusRecord(job=path.name, status=JobStatus.COMPLETED))
        time.sleep(0.01)
    assert find_job_dirs(tmp_path) == [newer, older]
    assert find_job_dirs(older) == [older]


def _hold_lock(path: str, ready, release) -> None:  # in a child process
    with JobDir(path).lock():
        ready.set()
        release.wait(30)


def test_one_process_owns_a_job_and_a_dead_owner_leaves_no_lock(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    child.start()
    assert ready.wait(30)
    job = JobDir(tmp_path)
    assert job.locked()
    with pytest.raises(JobLocked, match=f"pid {child.pid}"), job.lock():
        pass
    child.kill()  # the owner dies without releasing: the kernel drops its lock
    child.join(30)
    assert not job.locked()
    with job.lock():  # ours now: a second owner is refused, in this process too
        assert job.locked()
        with pytest.raises(JobLocked, match=f"pid {os.getpid()}"), JobDir(tmp_path).lock():
            pass
    assert not job.locked()


def test_the_lock_file_is_never_a_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / ".lock").symlink_to(target)
    with pytest.raises(OSError), JobDir(tmp_path / "job").lock():
        pass
    assert target.read_text() == "keep"


def test_paths_stay_inside_the_job(tmp_path):
    job = JobDir(tmp_path)
    for path in (job.spec_path, job.runs_path, job.log_path, job.mlflow_db, job.artifacts_dir):
        assert Path(path).parent == tmp_path
    assert job.checkpoint_dir("t0001").is_relative_to(tmp_path.resolve())
