"""A whole job with every real part: data stage, proxies, local Ray, MLflow on SQLite, LightGBM."""

import json

import numpy as np
import pandas as pd
import pytest

from mixopt.job import JobDir
from mixopt.runners.local import InProcessRunner
from mixopt.search import run_job

DOMAINS = ("code", "bible", "dictionary")
SMALL_JOB = {
    "proxy": {
        "preset": "tiny",
        "seq_len": 32,
        "batch_size": 4,
        "train_tokens": 12_000,
        "eval_tokens": 2048,
    },
    "search": {
        "initial_trials": 4,
        "rounds": 1,
        "trials_per_round": 2,
        "candidates": 2000,
        "top_k": 20,
    },
    "space": {"bounds": {"code": [0.1, 0.8]}},
    "validate": {"seeds": 1},
}
# 6 search trials; validated: recommended, uniform, natural, the best trial, halfway to natural
N_TRIALS = 6 + 5


def _check_job(job_dir, n_trials):
    runs = pd.read_parquet(job_dir / "runs.parquet")
    assert len(runs) == n_trials and runs["trial_id"].is_unique
    assert (runs["status"] == "completed").all()
    for domain in DOMAINS:
        assert np.isfinite(runs[f"val_loss/{domain}"]).all()
        assert (runs[f"bpb/{domain}"] > 0).all()
        assert (runs[f"weight/{domain}"] >= 0).all()
    assert (runs["weight/code"] >= 0.1 - 1e-9).all() and (runs["weight/code"] <= 0.8 + 1e-9).all()
    assert (runs["tokens"] >= 12_000).all() and (runs["tokens_per_s"] > 0).all()
    expected = runs[[f"val_loss/{d}" for d in DOMAINS]].mean(axis=1)
    np.testing.assert_allclose(runs["objective"], expected)
    rec = json.loads((job_dir / "recommendation.json").read_text())
    assert sum(rec["weights"].values()) == pytest.approx(1.0)
    assert 0.1 - 1e-9 <= rec["weights"]["code"] <= 0.8 + 1e-9
    assert rec["validation"]["recommended"]["seeds"] == 1
    labels = {"recommended", "uniform", "natural", "best_trial", "toward_natural_50"}
    assert set(rec["validation"]) == labels
    assert len(rec["evidence"]["trials"]) == 6
    return runs, rec


@pytest.mark.slow
def test_real_job_on_ray_with_mlflow(make_spec, tmp_path):
    from mlflow.tracking import MlflowClient

    spec = make_spec(**SMALL_JOB)
    job_dir = JobDir.new(spec, tmp_path / "job").path
    outcome = run_job(spec, job_dir, runner="ray")
    runs, rec = _check_job(job_dir, N_TRIALS)
    assert outcome.recommendation == rec

    # Ray ran trials side by side: some trials' training intervals overlap.
    spans = sorted(zip(runs["started_at"], runs["finished_at"], strict=True))
    assert any(spans[i + 1][0] < spans[i][1] for i in range(len(spans) - 1))

    client = MlflowClient(tracking_uri=f"sqlite:///{job_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mixopt")
    all_runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    children = [
        r
        for r in all_runs
        if "mlflow.parentRunId" in r.data.tags and r.data.tags.get("mixopt.kind") == "trial"
    ]
    assert len(parents) == 1 and len(children) == N_TRIALS
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.tags["mixopt.trial_id"] for c in children} == set(runs["trial_id"])
    child = next(c for c in children if c.data.tags["mixopt.trial_id"] == "t0000")
    row = runs.set_index("trial_id").loc["t0000"]
    assert float(child.data.params["weight/code"]) == pytest.approx(row["weight/code"], abs=1e-6)
    assert child.data.metrics["val_loss/bible"] == pytest.approx(row["val_loss/bible"])
    assert len(client.get_metric_history(child.info.run_id, "train_loss")) > 5
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"spec.yaml", "recommendation.json", "runs.parquet"} <= artifacts
    assert parent.info.status == "FINISHED"


def test_real_proxies_in_process(make_spec, tmp_path):
    spec = make_spec(tracking={"enabled": False}, **SMALL_JOB)
    outcome = run_job(spec, JobDir.new(spec, tmp_path / "job").path, runner=InProcessRunner())
    runs, _ = _check_job(outcome.job_dir, N_TRIALS)
    assert runs["device"].eq("cpu").all()
    assert not (outcome.job_dir / "mlflow.db").exists()
