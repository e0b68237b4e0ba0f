"""The MLflow tracker against a real ``mlflow server`` process (see conftest.py).

Parent and child runs, params, metrics, artifacts; idempotence on repeated ``log_trial`` and on
re-attaching to a job (what ``mixopt resume`` relies on); a search job logging to the server.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mixopt.job import JobDir
from mixopt.runs_table import trial_row
from mixopt.search import SearchJob
from mixopt.spec import ProxySpec
from mixopt.testing import ScriptedRunner
from mixopt.tracking.mlflow_tracker import MlflowTracker
from mixopt.tracking.retry import RetryingTracker
from mixopt.trials import Stage, Trial, TrialRequest, TrialStatus

pytestmark = pytest.mark.slow  # the server takes 10-20 s to start on 2 cores

DOMAINS = ("code", "web")


def _trial(i: int, *, status: TrialStatus = TrialStatus.COMPLETED) -> Trial:
    w = 0.1 + 0.2 * i
    weights = {"code": w, "web": 1 - w}
    result = {}
    if status is TrialStatus.COMPLETED:
        result = {
            "metrics": {"val_loss/code": 3.0 - w, "val_loss/web": 2.0 + w, "moe/max_load": 1.2},
            "objective": 2.5,
            "curve": [[t, 5.0 - t / 1000] for t in range(500, 4001, 500)],
            "evals": [
                {
                    "step": 2,
                    "tokens": 2000,
                    "metrics": {"val_loss/code": 3.5 - w, "val_loss/web": 2.5 + w},
                    "expert_counts": [[10, 30], [20, 20]],
                }
            ],
            "expert_counts": [[15, 25], [20, 20]],
            "tokens": 4000,
            "flops": 2.4e7,
            "wall_s": 3.0,
            "train_s": 2.5,
            "eval_s": 0.5,
            "tokens_per_s": 1600.0,
            "device": "cpu",
            "n_params": 1000,
            "n_params_total": 5000,
            "arch": "moe",
            "started_at": 1_700_000_000.0 + i,
            "finished_at": 1_700_000_003.0 + i,
            "host": "worker-1",
        }
    return Trial(
        f"t{i:04d}",
        round=0 if i < 2 else 1,
        weights=weights,
        seed=0,
        status=status,
        attempts=1,
        error="" if status is TrialStatus.COMPLETED else "WorkerCrashedError: node lost",
        result=result,
    )


def _row(trial: Trial) -> dict:
    return trial_row(
        trial,
        job="srv",
        fidelity="moe:tiny:4000",
        data_hash="abc123",
        domain_hashes={"code": "c0de" * 4, "web": "beef" * 4},
        tokenizer_hash="tok",
        train_tokens={"code": 10_000, "web": 20_000},
    )


def _request(trial: Trial) -> TrialRequest:
    proxy = ProxySpec(
        arch="moe",
        preset="tiny",
        overrides={"n_experts": 2},
        seq_len=16,
        train_tokens=4000,
        lr=0.003,
        batch_size=8,
        metrics=["accuracy"],
    )
    return TrialRequest.build(
        trial.trial_id, trial.weights, seed=trial.seed, proxy=proxy, vocab_size=300, domains=[]
    )


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(2, 2))
    axes.plot([0, 1], [1, 0])
    return figure


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri: str, experiment: str, kind: str | None = None) -> list:
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if kind is None or r.data.tags.get("mixopt.kind") == kind]


def _tracker(make_spec, tmp_path, uri, experiment) -> RetryingTracker:
    spec = make_spec(tracking={"mlflow_uri": uri, "experiment": experiment})
    tracker = spec.tracking.build_tracker(JobDir(tmp_path))
    assert isinstance(tracker, RetryingTracker) and isinstance(tracker.inner, MlflowTracker)
    assert tracker.inner.artifact_dir is None  # the server keeps the artifacts
    return tracker


def test_parent_children_params_metrics_artifacts_no_duplicates(mlflow_server, make_spec, tmp_path):
    experiment = f"srv-{uuid.uuid4().hex[:8]}"
    job_dir = str(tmp_path / "runs" / "srv-1")
    tags = {"mixopt.job": "srv", "mixopt.job_dir": job_dir}
    trials = [_trial(0), _trial(1), _trial(2, status=TrialStatus.ABANDONED)]
    trials[2].stage, trials[2].label = Stage.VALIDATE, "uniform"

    tracker = _tracker(make_spec, tmp_path, mlflow_server, experiment)
    tracker.start_job("srv", {"search.strategy": "bo", "data_hash": "abc123"}, tags)
    for trial in trials:
        tracker.log_trial(trial, row=_row(trial), request=_request(trial))
    tracker.log_trial(trials[0], row=_row(trials[0]), request=_request(trials[0]))  # again
    cv = {"spearman": 0.91, "rmse": 0.02, "folds": {"spearman": [0.9, 0.92]}}
    tracker.log_predictor_fit("lightgbm", cv, {"n_estimators": 1000, "lr": 0.01}, round=1)
    tracker.log_predictor_fit("lightgbm", cv, {"n_estimators": 1000, "lr": 0.01}, round=1)
    artifact = tmp_path / "recommendation.json"
    artifact.write_text('{"weights": {"code": 0.3, "web": 0.7}}')
    tracker.log_artifact(artifact)
    tracker.log_dict({"a": 1}, "extra/summary.json")
    tracker.log_figure(_figure(), "plots/curve.png")
    tracker.log_job_metrics({"wall_s": 12.5, "trials": 3.0})
    tracker.finish("FINISHED")
    assert tracker.health()["failures"] == 0 and tracker.health()["failed_attempts"] == 0

    # a second tracker on the same job (what resume does) re-attaches and adds no run
    again = _tracker(make_spec, tmp_path, mlflow_server, experiment)
    again.start_job("srv", {"search.strategy": "bo", "resumed": True}, tags)
    for trial in trials:
        again.log_trial(trial, row=_row(trial), request=_request(trial))
    again.log_predictor_fit("lightgbm", cv, {"n_estimators": 1000}, round=1)
    again.finish("FINISHED")
    assert again.parent_run_id == tracker.parent_run_id and again.health()["failures"] == 0

    client = _client(mlflow_server)
    (parent,) = _runs(mlflow_server, experiment, "job")
    assert parent.info.run_id == tracker.parent_run_id and parent.info.status == "FINISHED"
    assert parent.data.params["search.strategy"] == "bo" and parent.data.params["resumed"] == "True"
    assert parent.data.metrics["wall_s"] == 12.5
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"recommendation.json", "extra", "plots"} <= artifacts
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "plots")] == [
        "plots/curve.png"
    ]
    local = client.download_artifacts(parent.info.run_id, "recommendation.json", str(tmp_path))
    assert Path(local).read_text() == artifact.read_text()

    children = _runs(mlflow_server, experiment, "trial")
    assert sorted(c.info.run_name for c in children) == ["t0000", "t0001", "t0002"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    by_id = {c.data.tags["mixopt.trial_id"]: c for c in children}
    first = by_id["t0000"]
    assert first.info.status == "FINISHED" and by_id["t0002"].info.status == "FAILED"
    assert first.data.tags["mixopt.job"] == "srv" and first.data.tags["mixopt.round"] == "0"
    assert first.data.tags["mixopt.stage"] == "search"
    assert first.data.tags["mixopt.fidelity"] == "moe:tiny:4000"
    assert by_id["t0002"].data.tags["mixopt.label"] == "uniform"
    assert by_id["t0002"].data.tags["mixopt.stage"] == "validate"
    assert "node lost" in by_id["t0002"].data.tags["mixopt.error"]
    params = first.data.params
    assert float(params["weight/code"]) == pytest.approx(0.1)
    assert params["seed"] == "0" and params["proxy.preset"] == "tiny"
    assert params["proxy.n_experts"] == "2" and params["train.lr"] == "0.003"
    assert params["proxy.n_params"] == "1000" and params["proxy.device"] == "cpu"
    assert params["data_hash"] == "abc123" and params["data_hash/web"] == "beef" * 4
    assert params["tokenizer_hash"] == "tok"
    metrics = first.data.metrics
    assert metrics["val_loss/code"] == pytest.approx(2.9) and metrics["objective"] == 2.5
    assert metrics["tokens_per_s"] == 1600.0 and metrics["moe/max_load"] == 1.2
    assert metrics["moe/expert_share/layer0/expert1"] == pytest.approx(25 / 40)
    assert metrics["moe/expert_imbalance/layer0"] == pytest.approx(25 / 20)
    assert metrics["epochs/web"] == pytest.approx(4000 * 0.9 / 20_000)
    run_id = first.info.run_id
    history = client.get_metric_history(run_id, "val_loss/code")  # over tokens, no duplicates
    assert [(m.step, round(m.value, 6)) for m in history] == [(2000, 3.4), (4000, 2.9)]
    curve = client.get_metric_history(run_id, "train_loss")
    assert sorted(m.step for m in curve) == list(range(500, 4001, 500))
    shares = client.get_metric_history(run_id, "moe/expert_share/layer0/expert0")
    assert sorted((m.step, m.value) for m in shares) == [(2000, 0.25), (4000, 15 / 40)]

    (fit,) = _runs(mlflow_server, experiment, "predictor")
    assert fit.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert fit.data.tags["mixopt.predictor"] == "lightgbm" and fit.data.tags["mixopt.round"] == "1"
    assert fit.data.params == {"predictor": "lightgbm", "n_estimators": "1000", "lr": "0.01"}
    assert fit.data.metrics["cv/spearman"] == 0.91 and fit.data.metrics["cv/rmse"] == 0.02
    folds = client.get_metric_history(fit.info.run_id, "cv/folds/spearman")
    assert sorted((m.step, m.value) for m in folds) == [(0, 0.9), (1, 0.92)]


def test_half_logged_child_is_completed_not_duplicated(mlflow_server):
    """A crash (or a lost response) after the child was created: logging again reuses it."""
    experiment = f"half-{uuid.uuid4().hex[:8]}"
    tracker = MlflowTracker(mlflow_server, experiment)
    tracker.start_job("half", {}, {"mixopt.job": "half", "mixopt.job_dir": "/jobs/half"})
    client = _client(mlflow_server)
    parent = tracker.parent_run_id
    exp = client.get_experiment_by_name(experiment).experiment_id
    orphan = client.create_run(
        exp,
        run_name="t0000",
        tags={"mlflow.parentRunId": parent, "mixopt.trial_id": "t0000", "mixopt.kind": "trial"},
    ).info.run_id
    client.log_param(orphan, "weight/code", "0.100000")  # some params made it, nothing else

    fresh = MlflowTracker(mlflow_server, experiment)  # a new process: no memory of the run
    fresh.start_job("half", {}, {"mixopt.job": "half", "mixopt.job_dir": "/jobs/half"})
    assert fresh.parent_run_id == parent
    trial = _trial(0)
    fresh.log_trial(trial, row=_row(trial))
    fresh.log_trial(trial, row=_row(trial))
    (child,) = _runs(mlflow_server, experiment, "trial")
    assert child.info.run_id == orphan and child.info.status == "FINISHED"
    assert child.data.tags["mixopt.logged"] == "completed"
    assert child.data.metrics["val_loss/web"] == pytest.approx(2.1)
    assert child.data.params["data_hash"] == "abc123"
    assert len(client.get_metric_history(orphan, "val_loss/web")) == 2  # eval + final, once each


def test_start_job_reattaches_by_run_id(mlflow_server):
    experiment = f"byid-{uuid.uuid4().hex[:8]}"
    first = MlflowTracker(mlflow_server, experiment)
    first.start_job("byid", {"a": 1}, {"mixopt.job": "byid"})
    first.finish("KILLED")
    second = MlflowTracker(mlflow_server, experiment)
    second.start_job("byid", {"a": 1, "b": 2}, {"mixopt.job": "byid"}, run_id=first.parent_run_id)
    assert second.parent_run_id == first.parent_run_id
    (parent,) = _runs(mlflow_server, experiment)
    assert parent.info.status == "RUNNING"  # re-opened
    assert parent.data.params == {"a": "1", "b": "2"}
    second.finish("FINISHED")
    assert _client(mlflow_server).get_run(parent.info.run_id).info.status == "FINISHED"


def test_search_job_logs_to_the_server(mlflow_server, make_spec, tmp_path):
    experiment = f"job-{uuid.uuid4().hex[:8]}"
    spec = make_spec(
        search={"initial_trials": 4, "rounds": 1, "trials_per_round": 2, "strategy": "random"},
        proxy={"seq_len": 16},
        validate={"enabled": False},
        tracking={"mlflow_uri": mlflow_server, "experiment": experiment},
    )
    job_dir = JobDir.new(spec, tmp_path / "job").path
    tracker = spec.tracking.build_tracker(JobDir(job_dir))
    SearchJob(spec, job_dir, runner=ScriptedRunner(), tracker=tracker).run()
    assert tracker.health()["failures"] == 0
    (parent,) = _runs(mlflow_server, experiment, "job")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mixopt.job_dir"] == str(job_dir.resolve())
    children = _runs(mlflow_server, experiment, "trial")
    assert sorted(c.info.run_name for c in children) == [f"t{i:04d}" for i in range(6)]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all("val_loss/code" in c.data.metrics for c in children)
