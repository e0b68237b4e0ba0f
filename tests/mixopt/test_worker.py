"""The worker function on a real prepared corpus: deterministic, and threads follow the grant."""

import math
from pathlib import Path

import pytest

from mixopt.data import prepare_data
from mixopt.spec import ProxySpec
from mixopt.trials import TrialRequest
from mixopt.worker import (
    execute_aioli,
    execute_doremi,
    execute_group,
    execute_trial,
    granted_threads,
)


def small_proxy(**changes) -> ProxySpec:
    """A one-layer tiny proxy on 4k tokens: a real run in about a second."""
    base = {"preset": "tiny", "overrides": {"n_layer": 1}, "seq_len": 32, "train_tokens": 4096}
    return ProxySpec(**base, batch_size=4, eval_tokens=1024, **changes)


@pytest.fixture
def request_for(make_spec):
    spec = make_spec()
    manifest = prepare_data(spec, log=lambda _: None)
    domains = manifest.domain_tokens()

    def make(weights, seed=0):
        proxy = small_proxy()
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


def test_execute_doremi_learns_a_stamped_mixture_on_real_data(request_for):
    """DoReMi on the prepared corpus: a mixture over every domain, both models' metrics, stamped;
    the request's own weights are not used, and the same request gives the same mixture."""
    uniform = {"code": 1 / 3, "bible": 1 / 3, "dictionary": 1 / 3}
    request = request_for({"code": 1.0, "bible": 0.0, "dictionary": 0.0})
    result = execute_doremi(request, reference_weights=uniform, step_size=1.0, smoothing=1e-3)
    assert set(result["weights"]) == set(uniform)
    assert sum(result["weights"].values()) == pytest.approx(1.0)
    assert all(w > 0 for w in result["weights"].values())
    assert result["trial_id"] == "t0000" and result["finished_at"] >= result["started_at"]
    assert result["tokens"] == 2 * result["reference_tokens"] > 0
    assert set(result["proxy"]) >= {f"val_loss/{d}" for d in uniform}
    assert math.isfinite(result["reference"]["val_loss/code"])
    again = execute_doremi(request, reference_weights=uniform, step_size=1.0, smoothing=1e-3)
    assert again["weights"] == result["weights"]


def test_execute_aioli_learns_a_stamped_schedule_on_real_data(request_for):
    """Aioli on the prepared corpus, from the request's own weights: one schedule entry per round
    (shares and weights summing to 1), its average, the sweeps' tokens counted, stamped; the same
    request gives the same schedule."""
    start = {"code": 0.5, "bible": 0.3, "dictionary": 0.2}
    request = request_for(start)
    knobs = {"rounds": 2, "sweep_steps": 2, "delta": 0.5, "eta": 1.0, "smoothing": 0.05}
    result = execute_aioli(request, **knobs)
    assert result["initial_weights"] == pytest.approx(start)
    assert [entry["round"] for entry in result["schedule"]] == [0, 1]
    assert sum(entry["share"] for entry in result["schedule"]) == pytest.approx(1.0)
    for entry in result["schedule"]:
        assert set(entry["weights"]) == set(start)
        assert sum(entry["weights"].values()) == pytest.approx(1.0)
    assert sum(result["weights"].values()) == pytest.approx(1.0)
    assert len(result["interactions"]) == 2 and len(result["interactions"][0]) == 3
    assert result["sweep_tokens"] == 2 * 3 * 2 * 4 * 32 > 0  # rounds * m * steps * B * T
    assert result["tokens"] == 4096 + result["sweep_tokens"]
    assert set(result["metrics"]) >= {f"val_loss/{d}" for d in start}
    assert result["trial_id"] == "t0000" and result["finished_at"] >= result["started_at"]
    again = execute_aioli(request, **knobs)
    assert again["schedule"] == result["schedule"]


def test_threads_follow_the_granted_cpus(request_for, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert granted_threads(1) == 2
    result = execute_trial(request_for({"code": 1.0, "bible": 0.0, "dictionary": 0.0}))
    assert result["threads"] == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert granted_threads(3) == 3


def test_a_real_proxy_reports_eval_sets_it_never_trained_on(make_spec):
    """val_loss/<eval> and bpb/<eval> at the end and along the run, alone and stacked; the eval
    set changes no domain's number (it is only evaluated)."""
    corpus = Path(__file__).resolve().parents[1] / "assets" / "corpus"
    domains = [
        {"name": "code", "paths": [str(corpus / "code")]},
        {"name": "bible", "paths": [str(corpus / "bible" / "[egpr]*.txt")]},
    ]
    held_out = {"name": "gospel", "paths": [str(corpus / "bible" / "john_01.txt")]}
    manifest = prepare_data(make_spec(domains, evals=[held_out]), log=lambda _: None)
    proxy = small_proxy(eval_every=8)

    def build(trial_id, weights, evals):
        return TrialRequest.build(
            trial_id, weights, seed=0, proxy=proxy, vocab_size=manifest.vocab_size,
            domains=manifest.domain_tokens(), evals=evals, threads=1,
        )  # fmt: skip

    weights = {"code": 0.6, "bible": 0.4}
    result = execute_trial(build("t0", weights, manifest.eval_tokens()))
    metrics = result["metrics"]
    gospel = manifest.evals["gospel"]
    assert math.isfinite(metrics["val_loss/gospel"]) and metrics["val_loss/gospel"] > 0
    expected_bpb = metrics["val_loss/gospel"] / math.log(2) * gospel.val_tokens / gospel.val_bytes
    assert metrics["bpb/gospel"] == pytest.approx(expected_bpb)
    assert [e["step"] for e in result["evals"]] == [8, 16, 24]
    assert all("val_loss/gospel" in e["metrics"] for e in result["evals"])
    without = execute_trial(build("t0", weights, ()))
    assert "val_loss/gospel" not in without["metrics"]
    assert {k: v for k, v in metrics.items() if "gospel" not in k} == without["metrics"]
    grouped = execute_group(
        [
            build("t1", weights, manifest.eval_tokens()),
            build("t2", {"code": 1.0}, manifest.eval_tokens()),
        ],
        stacking="on",
    )
    assert [r.get("error") for r in grouped] == [None, None]
    assert all(math.isfinite(r["metrics"]["bpb/gospel"]) for r in grouped)
    assert grouped[0]["metrics"]["val_loss/gospel"] == pytest.approx(
        metrics["val_loss/gospel"], rel=1e-4
    )
