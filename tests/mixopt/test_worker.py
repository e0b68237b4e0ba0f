"""The worker function on a real prepared corpus: deterministic, and threads follow the grant."""

import pytest

from mixopt.data import prepare_data
from mixopt.spec import ProxySpec
from mixopt.trials import TrialRequest
from mixopt.worker import execute_trial, granted_threads


@pytest.fixture
def request_for(make_spec):
    spec = make_spec()
    manifest = prepare_data(spec, log=lambda _: None)
    domains = manifest.domain_tokens()

    def make(weights, seed=0):
        proxy = ProxySpec(
            preset="tiny",
            overrides={"n_layer": 1},
            seq_len=32,
            train_tokens=4096,
            batch_size=4,
            eval_tokens=1024,
        )
        return TrialRequest.build(
            "t0000",
            weights,
            seed=seed,
            proxy=proxy,
            vocab_size=manifest.vocab_size,
            domains=domains,
            threads=1,
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
