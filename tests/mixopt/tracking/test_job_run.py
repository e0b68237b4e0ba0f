"""The job's parent run compares jobs: the recommended weights as params, the predicted and
validated objectives as metrics, the manifest and report as artifacts, system tags; and a
trial's curve points are stamped along its training (real MLflow, SQLite store)."""

from __future__ import annotations

import getpass
import subprocess
import time
from typing import Any

import pytest

from mixopt import __version__
from mixopt.export import exact_weights
from mixopt.job import JobDir
from mixopt.search import SearchJob
from mixopt.testing import ScriptedRunner, synthetic_execute
from mixopt.tracking.job_run import (
    git_commit,
    recommendation_metrics,
    recommendation_params,
    system_tags,
)
from mixopt.tracking.mlflow_content import training_clock
from mixopt.trials import Trial

TRAINING_S = 40.0


def _timed_execute(request) -> dict[str, Any]:
    """The synthetic result, as if its training had taken TRAINING_S seconds until now."""
    result = synthetic_execute(request)
    finished = time.time()
    result.update(started_at=finished - TRAINING_S, finished_at=finished)
    return result


def test_recommendation_as_params_and_metrics():
    rec = {
        "weights": {"code": 1 / 3, "web": 2 / 3},
        "method": "bo",
        "predicted_objective": 3.2,
        "predicted_std": 0.05,
        "validation": {
            "recommended": {"objective": 3.25, "objective_std": 0.01},
            "uniform": {"objective": 3.4, "objective_std": None},
        },
    }
    assert recommendation_params(rec) == {
        "recommended/code": "0.333333",
        "recommended/web": "0.666667",
        "recommended.method": "bo",
    }
    assert recommendation_metrics(rec) == {
        "predicted_objective": 3.2,
        "predicted_std": 0.05,
        "validated_objective": 3.25,
        "validated_objective_std": 0.01,
        "validated/uniform": 3.4,
    }
    assert recommendation_metrics({"weights": {"a": 1.0}}) == {}


def test_guard_rails_checked_at_validation_become_metrics():
    held = {"metric": "val_loss/code", "value": 3.1, "limit": 3.2, "excess": -0.1, "held": True}
    broken = {"metric": "probe/define/accuracy", "value": 0.2, "limit": 0.25, "excess": 0.05,
              "held": False}  # fmt: skip
    unmeasured = {"metric": "val_loss/web", "value": None, "limit": None, "excess": None,
                  "held": None}  # fmt: skip
    rec = {"weights": {"a": 1.0}, "guard_rails": [held, broken, unmeasured]}
    assert recommendation_metrics(rec) == {
        "guard_rail/val_loss/code/value": 3.1,
        "guard_rail/val_loss/code/limit": 3.2,
        "guard_rail/val_loss/code/excess": -0.1,
        "guard_rail/val_loss/code/held": 1.0,
        "guard_rail/probe/define/accuracy/value": 0.2,
        "guard_rail/probe/define/accuracy/limit": 0.25,
        "guard_rail/probe/define/accuracy/excess": 0.05,
        "guard_rail/probe/define/accuracy/held": 0.0,
    }
    assert recommendation_metrics({"weights": {"a": 1.0}, "guard_rails": None}) == {}


def test_system_tags_and_git_commit(tmp_path):
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    outside.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "spec.yaml").write_text("name: x\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "spec.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "spec"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tags = system_tags(repo)
    assert tags["mlflow.source.git.commit"] == head == git_commit(repo)
    assert tags["mixopt.version"] == __version__ and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"] == getpass.getuser()
    assert git_commit(outside) is None and "mlflow.source.git.commit" not in system_tags(outside)


def test_training_clock_spreads_points_over_the_training():
    trial = Trial("t0000", {"a": 1.0}, 0, 0)
    trial.result = {"started_at": 100.0, "tokens": 1000}
    at = training_clock(trial, finished=140_000)
    assert [at(0), at(250), at(1000), at(5000)] == [100_000, 110_000, 140_000, 140_000]
    trial.result = {"tokens": 1000}  # no start time: every point at the finish
    assert training_clock(trial, finished=140_000)(500) == 140_000


def test_parent_run_compares_jobs(make_spec, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # not a git repository: no commit tag
    spec = make_spec(
        search={"initial_trials": 4, "rounds": 1, "trials_per_round": 2, "strategy": "random"},
        proxy={"seq_len": 16},
        validate={"baselines": ["uniform"], "seeds": 2},
    )
    job_dir = JobDir.new(spec, tmp_path / "job").path
    tracker = spec.tracking.build_tracker(JobDir(job_dir))
    outcome = SearchJob(
        spec, job_dir, runner=ScriptedRunner(execute=_timed_execute), tracker=tracker
    ).run()
    assert tracker.health()["failures"] == 0
    rec = outcome.recommendation

    client = MlflowClient(tracking_uri=f"sqlite:///{job_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mixopt")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    (parent,) = [r for r in runs if r.data.tags.get("mixopt.kind") == "job"]
    params, metrics, tags = parent.data.params, parent.data.metrics, parent.data.tags
    for domain, weight in exact_weights(rec["weights"]).items():
        assert params[f"recommended/{domain}"] == f"{weight:.6f}"
    assert metrics["predicted_objective"] == pytest.approx(rec["predicted_objective"])
    validated = rec["validation"]["recommended"]["objective"]
    assert metrics["validated_objective"] == pytest.approx(validated)
    assert metrics["validated/uniform"] == pytest.approx(rec["validation"]["uniform"]["objective"])
    assert tags["mixopt.version"] == __version__ and tags["mlflow.user"] == getpass.getuser()
    assert tags["mlflow.source.type"] == "LOCAL" and "mlflow.source.git.commit" not in tags
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"data_manifest.json", "report.html", "recommendation.json", "spec.yaml"} <= artifacts

    (child,) = [r for r in runs if r.info.run_name == "t0000"]
    curve = sorted(client.get_metric_history(child.info.run_id, "train_loss"), key=lambda m: m.step)
    final = client.get_metric_history(child.info.run_id, "objective")[0]
    half, end = curve  # synthetic curve: half-way and at the end of training
    assert end.timestamp == final.timestamp
    assert end.timestamp - half.timestamp == pytest.approx(TRAINING_S / 2 * 1000, abs=2)
