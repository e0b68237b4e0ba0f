"""A job whose tracking server is down still finishes, and says what tracking missed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mixopt.job import JobDir
from mixopt.search import SearchJob
from mixopt.testing import ScriptedRunner
from mixopt.tracking.mlflow_tracker import MlflowTracker
from mixopt.tracking.retry import RetryingTracker
from tests.mixopt.tracking.conftest import free_port


def test_job_completes_when_the_tracking_server_is_down(make_spec, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    spec = make_spec(
        search={"initial_trials": 4, "rounds": 1, "trials_per_round": 2, "strategy": "random"},
        proxy={"seq_len": 16},
        validate={"enabled": False},
        tracking={"mlflow_uri": dead, "experiment": "down"},
    )
    job_dir = JobDir.new(spec, tmp_path / "job").path
    # a long cooldown: after the first failed round of retries the job never waits again
    tracker = spec.tracking.build_tracker(JobDir(job_dir), backoff_s=0.1, cooldown_s=600)
    assert isinstance(tracker, RetryingTracker) and isinstance(tracker.inner, MlflowTracker)

    outcome = SearchJob(spec, job_dir, runner=ScriptedRunner(), tracker=tracker).run()

    assert sum(outcome.recommendation["weights"].values()) == pytest.approx(1.0)
    runs = pd.read_parquet(job_dir / "runs.parquet")
    assert len(runs) == 6 and (runs["status"] == "completed").all()
    assert json.loads((job_dir / "job.json").read_text())["status"] == "completed"

    health = tracker.health()
    # start_job, spec artifact, 6 trials, job metrics, 3 artifacts, the recommended weights
    # (params), the manifest, finish: none delivered
    assert health["failures"] == health["dropped"] == 15 and health["pending"] == 0
    assert health["failed_attempts"] == 6  # 3 at the start, 3 in finish's last try
    assert health["last_error"].startswith("start_job(test): MlflowException: API request")
    assert health["last_error"].endswith("[Errno 111] Connection refused")
    log = (job_dir / "job.log").read_text()
    assert "tracking: start_job(test) failed 3 time(s)" in log
    assert "the job goes on" in log
    assert "tracking: 15 call(s) could not be delivered before the job ended" in log


def test_job_logs_to_sqlite_in_the_job_directory_by_default(make_spec, tmp_path):
    from mlflow.tracking import MlflowClient

    spec = make_spec(
        search={"initial_trials": 4, "rounds": 1, "trials_per_round": 2, "strategy": "random"},
        proxy={"seq_len": 16},
        validate={"enabled": False},
    )
    job_dir = JobDir.new(spec, tmp_path / "job").path
    tracker = spec.tracking.build_tracker(JobDir(job_dir))
    assert isinstance(tracker, RetryingTracker) and isinstance(tracker.inner, MlflowTracker)
    assert tracker.inner.artifact_dir == job_dir / "mlartifacts"
    SearchJob(spec, job_dir, runner=ScriptedRunner(), tracker=tracker).run()
    assert tracker.health()["failures"] == 0

    client = MlflowClient(tracking_uri=f"sqlite:///{job_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mixopt")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    (parent,) = [r for r in runs if r.data.tags.get("mixopt.kind") == "job"]
    children = [r for r in runs if r.data.tags.get("mixopt.kind") == "trial"]
    assert sorted(c.info.run_name for c in children) == [f"t{i:04d}" for i in range(6)]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"spec.yaml", "recommendation.json", "runs.parquet"} <= artifacts
    assert (job_dir / "mlartifacts").is_dir()
