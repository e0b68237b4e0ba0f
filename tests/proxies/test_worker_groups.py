"""mixopt.worker with the proxies of this package: MoE trials, checkpoints, and groups of trials
trained stacked or one at a time (here rather than in tests/mixopt because they test the proxies'
integration; they use the real prepared asset corpus)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from mixopt.data import prepare_data
from mixopt.spec import ProxySpec
from mixopt.trials import TrialRequest
from mixopt.worker import execute_group, execute_trial, shape_key

WEIGHTS = {"code": 0.5, "bible": 0.3, "dictionary": 0.2}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[Any, ...], int]:
    from mixopt.spec import JobSpec
    from tests.conftest import corpus_domains

    tmp = tmp_path_factory.mktemp("worker")
    spec = JobSpec.model_validate(
        {
            "name": "test",
            "output_dir": str(tmp / "runs"),
            "domains": corpus_domains(),
            "data": {"cache_dir": str(tmp / "cache")},
            "tokenizer": {"vocab_size": 300, "sample_bytes_per_domain": 20_000},
        }
    )
    manifest = prepare_data(spec, log=lambda _: None)
    return manifest.domain_tokens(), manifest.vocab_size


def request(
    prepared: tuple[tuple[Any, ...], int],
    trial_id: str,
    weights: dict[str, float],
    seed: int = 0,
    checkpoint_dir: str | None = None,
    **changes: Any,
) -> TrialRequest:
    """A request for the tiny preset cut to one layer; ``changes`` replace proxy fields."""
    domains, vocab = prepared
    fields: dict[str, Any] = {
        "preset": "tiny",
        "overrides": {"n_layer": 1},
        "seq_len": 32,
        "train_tokens": 8 * 4 * 32,
        "batch_size": 4,
        "eval_tokens": 512,
        "device": "cpu",
        "checkpoint_every": 2 if checkpoint_dir else 0,
    }
    proxy = ProxySpec(**{**fields, **changes})
    return TrialRequest.build(
        trial_id,
        weights,
        seed=seed,
        proxy=proxy,
        vocab_size=vocab,
        domains=domains,
        threads=1,
        checkpoint_dir=checkpoint_dir,
    )


def test_moe_trial(prepared: tuple[tuple[Any, ...], int]) -> None:
    result = execute_trial(
        request(
            prepared,
            "m0",
            WEIGHTS,
            arch="moe",
            overrides={"balance": "aux_free", "n_experts": 4},
        )
    )
    assert result["arch"] == "moe" and result["trial_id"] == "m0"
    assert result["metrics"]["moe/dropped_tokens"] == 0.0
    assert len(result["expert_counts"]) == 2 and len(result["expert_counts"][0]) == 4
    assert result["n_params_active"] < result["n_params"]


def test_trial_checkpoint_dir_is_used(
    prepared: tuple[tuple[Any, ...], int], tmp_path: Path
) -> None:
    folder = tmp_path / "t0"
    req = request(prepared, "t0", WEIGHTS, checkpoint_dir=str(folder))
    req = dataclasses.replace(req, train=dataclasses.replace(req.train, keep_checkpoint=True))
    first = execute_trial(req)
    assert (folder / "checkpoint.pt").is_file()
    again = execute_trial(req)  # finished run: resumes at the end, same result
    assert again["resumed_from_step"] == again["steps"] and again["metrics"] == first["metrics"]


def test_group_on_cpu_runs_one_at_a_time_with_identical_results(
    prepared: tuple[tuple[Any, ...], int],
) -> None:
    reqs = [request(prepared, f"g{i}", w, seed=i) for i, w in enumerate([WEIGHTS, {"code": 1.0}])]
    results = execute_group(reqs)  # auto: CPU is sequential
    assert [r["trial_id"] for r in results] == ["g0", "g1"]
    for req, result in zip(reqs, results, strict=True):
        alone = execute_trial(req)
        assert result["metrics"] == alone["metrics"] and result["n_models"] == 1


def test_stacked_group_matches_single_trials_and_isolates_a_bad_one(
    prepared: tuple[tuple[Any, ...], int],
) -> None:
    mixtures = [WEIGHTS, {"code": 1.0}, {"bible": 0.5, "dictionary": 0.5}]
    reqs = [request(prepared, f"s{i}", w, seed=i) for i, w in enumerate(mixtures)]
    bad = request(prepared, "bad", {"code": 0.5, "bible": 0.1})  # sums to 0.6
    other_shape = request(prepared, "wide", WEIGHTS, overrides={"n_layer": 2})
    results = execute_group([reqs[0], bad, reqs[1], other_shape, reqs[2]], stacking="on")
    assert [r["trial_id"] for r in results] == ["s0", "bad", "s1", "wide", "s2"]
    assert "sum to 1" in results[1]["error"] and results[1]["retryable"] is False
    assert results[3]["n_models"] == 1  # alone in its shape
    for req, result in zip(reqs, [results[0], results[2], results[4]], strict=True):
        assert result["n_models"] == 3 and "plan" in result
        alone = execute_trial(req)
        for key, value in alone["metrics"].items():
            assert result["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


def test_group_rejects_duplicate_ids_and_keys_shapes(
    prepared: tuple[tuple[Any, ...], int],
) -> None:
    a = request(prepared, "x", WEIGHTS)
    with pytest.raises(ValueError, match="duplicate trial ids"):
        execute_group([a, a])
    assert shape_key(a) == shape_key(request(prepared, "y", {"code": 1.0}, seed=4))
    assert shape_key(a) != shape_key(request(prepared, "z", WEIGHTS, arch="moe"))
