"""Fault injection: what happens to a job when the machine misbehaves.

Each case ends with every trial accounted for (completed, or abandoned with its errors), no
duplicate rows, and no finished trial lost. Killing Ray worker nodes is in
tests/mixopt/runners/test_ray_cluster.py; killing the service and the driver with SIGKILL is in
tests/mixopt/service/test_server.py.
"""

import errno
import json

import pandas as pd
import pytest

from mixopt.job import JobDir
from mixopt.runners.local import InProcessRunner
from mixopt.search import SearchJob
from mixopt.testing import ScriptedRunner, synthetic_execute

SEARCH = {"initial_trials": 6, "rounds": 1, "trials_per_round": 2, "strategy": "regmix"}
SEARCH |= {"predictor": "linear", "candidates": 1000, "top_k": 20}


def _spec(make_spec, **sections):
    return make_spec(search=SEARCH, proxy={"seq_len": 16}, **sections)


def _check_complete(job_dir, outcome):
    runs = pd.read_parquet(job_dir / "runs.parquet")
    assert runs["trial_id"].is_unique
    assert set(runs["trial_id"]) == {t.trial_id for t in outcome.trials}
    assert (runs["status"] == "completed").all()
    return runs


def test_a_disk_error_in_the_driver_stops_the_job_which_then_resumes(
    make_spec, tmp_path, monkeypatch
):
    from mixopt.job import JobDir as Dir

    spec = _spec(make_spec)
    job_dir = JobDir.new(spec, tmp_path / "job").path
    real_write, calls = Dir.write_runs, {"n": 0}

    def full_disk(self, rows):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.runs_path))
        return real_write(self, rows)

    monkeypatch.setattr(Dir, "write_runs", full_disk)
    with pytest.raises(OSError, match="No space left"):
        SearchJob(spec, job_dir, runner=ScriptedRunner()).run()
    status = json.loads((job_dir / "job.json").read_text())
    assert status["status"] == "failed" and "No space left" in status["error"]
    before = pd.read_parquet(job_dir / "runs.parquet")
    assert len(before) == 3  # the rows written before the disk filled are intact

    monkeypatch.setattr(Dir, "write_runs", real_write)
    runner = ScriptedRunner()
    outcome = SearchJob(spec, job_dir, runner=runner, resume=True).run()
    runs = _check_complete(job_dir, outcome)
    kept = runs.set_index("trial_id").loc[before["trial_id"], "objective"]
    assert kept.tolist() == before["objective"].tolist()  # finished trials were not retrained
    assert not set(before["trial_id"]) & set(runner.submitted)


def _disk_full_once(request, _seen=set()):  # noqa: B006 - state across calls, on purpose
    if request.trial_id == "t0002" and request.trial_id not in _seen:
        _seen.add(request.trial_id)
        raise OSError(errno.ENOSPC, "No space left on device")
    return synthetic_execute(request)


def test_a_disk_error_in_a_trial_is_retried(make_spec, tmp_path):
    spec = _spec(make_spec, resources={"max_retries": 1})
    job_dir = JobDir.new(spec, tmp_path / "job").path
    outcome = SearchJob(spec, job_dir, runner=InProcessRunner(_disk_full_once)).run()
    _check_complete(job_dir, outcome)
    retried = next(t for t in outcome.trials if t.trial_id == "t0002")
    assert retried.attempts == 2 and "No space left" in retried.failures[0]


def test_a_programming_error_in_a_trial_is_not_retried(make_spec, tmp_path):
    def broken_once(request):
        if request.trial_id == "t0001":
            raise ValueError("bad weights")
        return synthetic_execute(request)

    spec = _spec(make_spec, resources={"max_retries": 3})
    job_dir = JobDir.new(spec, tmp_path / "job").path
    outcome = SearchJob(spec, job_dir, runner=InProcessRunner(broken_once)).run()
    broken = next(t for t in outcome.trials if t.trial_id == "t0001")
    assert broken.status.value == "abandoned" and broken.attempts == 1
    runs = pd.read_parquet(job_dir / "runs.parquet")
    assert runs["trial_id"].is_unique and len(runs) == len(outcome.trials)


class _KilledAfterOne(InProcessRunner):
    def __init__(self) -> None:
        super().__init__()
        self.polls = 0

    def poll(self, timeout):
        self.polls += 1
        if self.polls > 1:
            raise KeyboardInterrupt("driver killed")
        return super().poll(timeout)


@pytest.mark.slow
def test_a_corrupt_checkpoint_costs_progress_not_the_trial(make_spec, tmp_path):
    proxy = {"preset": "tiny", "seq_len": 32, "batch_size": 4, "train_tokens": 8000}
    proxy |= {"eval_tokens": 1024, "checkpoint_every": 5}
    spec = make_spec(
        search={"initial_trials": 3, "rounds": 0, "strategy": "random"},
        proxy=proxy,
        validate={"enabled": False},
        tracking={"enabled": False},
    )
    job_dir = JobDir.new(spec, tmp_path / "job").path
    with pytest.raises(KeyboardInterrupt):
        SearchJob(spec, job_dir, runner=_KilledAfterOne()).run()
    corrupt = job_dir / "checkpoints" / "t0001" / "checkpoint.pt"
    corrupt.parent.mkdir(parents=True, exist_ok=True)
    corrupt.write_bytes(b"\x80\x04 not a checkpoint")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        outcome = SearchJob(spec, job_dir, runner=InProcessRunner(), resume=True).run()
    _check_complete(job_dir, outcome)
    assert (corrupt.parent / "checkpoint.pt.corrupt").is_file()
