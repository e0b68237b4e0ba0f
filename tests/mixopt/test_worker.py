"""The worker function on a real prepared corpus: deterministic, and threads follow the grant."""

import pytest

from mixopt.data import prepare_data
from mixopt.trials import TrialRequest
from mixopt.worker import execute_trial, granted_threads


@pytest.fixture
def request_for(make_spec):
    spec = make_spec()
    manifest = prepare_data(spec, log=lambda _: None)
    domains = [
        {
            "name": s.name,
            "train_path": s.train_path,
            "val_path": s.val_path,
            "dtype": s.dtype,
            "train_bytes": s.train_bytes,
            "val_bytes": s.val_bytes,
        }
        for s in manifest.domains.values()
    ]

    def make(weights, seed=0):
        return TrialRequest(
            trial_id="t0000",
            weights=weights,
            seed=seed,
            preset="tiny",
            model_overrides={"n_layer": 1},
            train={"train_tokens": 4096, "batch_size": 4, "eval_tokens": 1024, "threads": 1},
            domains=domains,
            vocab_size=manifest.vocab_size,
            seq_len=32,
        )

    return make


def test_same_request_same_result_other_seed_differs(request_for):
    weights = {"code": 0.5, "bible": 0.3, "dictionary": 0.2}
    first = execute_trial(request_for(weights))
    again = execute_trial(request_for(weights))
    other = execute_trial(request_for(weights, seed=1))
    assert first["metrics"] == again["metrics"]
    assert first["metrics"] != other["metrics"]
    assert set(first["metrics"]) >= {f"val_loss/{d}" for d in weights}
    assert first["finished_at"] >= first["started_at"]


def test_threads_follow_the_granted_cpus(request_for, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert granted_threads(1) == 2
    result = execute_trial(request_for({"code": 1.0, "bible": 0.0, "dictionary": 0.0}))
    assert result["threads"] == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert granted_threads(3) == 3
