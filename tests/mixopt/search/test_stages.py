"""A whole job with mixture stages (a fixed main stage, then a searched anneal) over the real
data stage, with the synthetic executor standing in for proxies: every trial trains through the
stages with its mixture in the searched one, and the runs table, recommendation.json and the
exports carry the schedule."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mixopt.job import JobDir
from mixopt.search import SearchJob
from mixopt.testing import ScriptedRunner, consumed_mixture, synthetic_execute, synthetic_losses
from mixopt.trials import TrialRequest
from tests.conftest import QUICK_SEARCH

DOMAINS = ("code", "bible", "dictionary")
MAIN = {"code": 0.2, "bible": 0.6, "dictionary": 0.2}
STAGES = [
    {"name": "main", "share": 0.75, "weights": MAIN},
    {"name": "anneal", "share": 0.25, "search": True},
]


def test_a_fixed_stage_then_a_searched_anneal(make_spec: Any, tmp_path: Any) -> None:
    requests: list[TrialRequest] = []

    def execute(request: TrialRequest) -> dict[str, Any]:
        requests.append(request)
        return synthetic_execute(request)

    spec = make_spec(search=QUICK_SEARCH, proxy={"seq_len": 16, "schedule": "wsd"}, stages=STAGES)
    job_dir = JobDir.new(spec, tmp_path / "job").path
    outcome = SearchJob(spec, job_dir, runner=ScriptedRunner(execute)).run()

    # Every trial, search and validation alike, trains the fixed stage, then its own mixture,
    # branching from the job's shared trunks.
    assert requests and {r.train.schedule for r in requests} == {"wsd"}
    assert {r.train.trunk_dir for r in requests} == {str(JobDir(job_dir).trunks_dir)}
    for request in requests:
        main, anneal = request.train.stages
        assert (main.share, main.weights, anneal.share, anneal.weights) == (0.75, MAIN, 0.25, None)

    runs = pd.read_parquet(outcome.job_dir / "runs.parquet")
    assert (runs["status"] == "completed").all() and set(runs["stage"]) == {"search", "validate"}
    for d in DOMAINS:  # the fixed stage's columns, the same on every row
        assert (runs[f"stage0/weight/{d}"] == MAIN[d]).all()
    assert not any(c.startswith("stage1/") for c in runs.columns)
    for _, row in runs.iterrows():
        searched = {d: row[f"weight/{d}"] for d in DOMAINS}
        whole = {d: 0.75 * MAIN[d] + 0.25 * searched[d] for d in DOMAINS}
        assert row["objective"] == pytest.approx(np.mean(list(synthetic_losses(whole).values())))

    rec = json.loads((outcome.job_dir / "recommendation.json").read_text())
    main, anneal = rec["stages"]
    assert main == {"name": "main", "share": 0.75, "weights": MAIN, "searched": False}
    assert anneal["searched"] and anneal["share"] == 0.25
    assert anneal["weights"] == pytest.approx(rec["weights"])
    assert sum(rec["weights"].values()) == pytest.approx(1.0)
    # The search chose the anneal against the fixed stage: on this law (each domain's loss
    # falls with its weight over the whole run), the anneal leans away from bible, which the
    # main stage already over-weights, and its validated objective beats the initial median.
    validated = rec["validation"]["recommended"]["objective"]
    search = runs[runs["stage"] == "search"]
    assert validated < float(np.median(search["objective"]))
    assert rec["weights"]["bible"] < MAIN["bible"]
    request = next(r for r in requests if r.weights == pytest.approx(rec["weights"]))
    losses = synthetic_losses(consumed_mixture(request))
    assert validated == pytest.approx(np.mean(list(losses.values())))

    # The job exports its schedule: the fixed stage as given, the recommendation in the anneal.
    from mixopt.export import export

    exported = json.loads(export(outcome.job_dir, "json"))
    assert [s["name"] for s in exported["stages"]] == ["main", "anneal"]
    assert exported["stages"][0]["mixture"] == pytest.approx(MAIN)
    assert exported["stages"][1]["mixture"] == pytest.approx(rec["weights"], abs=1e-6)
    assert exported["mixture"] == exported["stages"][1]["mixture"]


def test_staged_trials_train_real_proxies_alone_and_stacked(make_spec: Any) -> None:
    """The worker trains a staged request through its stages: the fixed stage draws only its
    domains, the searched one the trial's mixture, and a stacked group matches single runs."""
    from mixopt.data import prepare_data
    from mixopt.spec import ProxySpec
    from mixopt.worker import execute_group, execute_trial

    spec = make_spec(stages=[{"share": 0.5, "weights": {"code": 1.0}}, STAGES[1] | {"share": 0.5}])
    manifest = prepare_data(spec, log=lambda _: None)
    proxy = ProxySpec(
        preset="tiny", overrides={"n_layer": 1}, seq_len=32, train_tokens=8 * 4 * 32,
        batch_size=4, eval_tokens=1024, schedule="wsd",
    )  # fmt: skip

    def request(trial_id: str, weights: dict[str, float]) -> TrialRequest:
        return TrialRequest.build(
            trial_id, weights, seed=0, proxy=proxy, vocab_size=manifest.vocab_size,
            domains=manifest.domain_tokens(), threads=1, stages=spec.train_stages(),
        )  # fmt: skip

    mixtures = [{"code": 0.0, "bible": 0.5, "dictionary": 0.5}, {"code": 0.0, "bible": 1.0}]
    alone = execute_trial(request("t0", mixtures[0]))
    assert alone["stage_steps"] == [4, 4]
    fixed, searched = alone["stage_tokens"]
    assert fixed == {"code": 4 * 4 * 32, "bible": 0, "dictionary": 0}
    assert searched["code"] == 0 and searched["bible"] + searched["dictionary"] == 4 * 4 * 32
    together = execute_group(
        [request("t0", mixtures[0]), request("t1", mixtures[1])], stacking="on"
    )
    assert together[0]["n_models"] == 2  # one stacked model: the stages are a shared shape
    assert together[0]["stage_tokens"] == alone["stage_tokens"]
    assert together[1]["stage_tokens"][1] == {"code": 0, "bible": 4 * 4 * 32, "dictionary": 0}
    for name, value in alone["metrics"].items():
        assert together[0]["metrics"][name] == pytest.approx(value, rel=1e-4, abs=1e-5)


def test_staged_trials_branch_from_a_shared_trunk(make_spec: Any, tmp_path: Any) -> None:
    """Real proxies: with a trunk folder the first trial of a seed trains the fixed stage and
    saves it, the next branches from it (training only the anneal), neither is stacked, and both
    equal their runs from scratch."""
    import dataclasses

    from mixopt.data import prepare_data
    from mixopt.spec import ProxySpec
    from mixopt.worker import execute_group, execute_trial

    spec = make_spec(stages=STAGES)
    manifest = prepare_data(spec, log=lambda _: None)
    proxy = ProxySpec(
        preset="tiny", overrides={"n_layer": 1}, seq_len=32, train_tokens=8 * 4 * 32,
        batch_size=4, eval_tokens=1024, schedule="wsd",
    )  # fmt: skip
    trunks = str(tmp_path / "trunks")

    def request(trial_id: str, weights: dict[str, float]) -> TrialRequest:
        return TrialRequest.build(
            trial_id, weights, seed=0, proxy=proxy, vocab_size=manifest.vocab_size,
            domains=manifest.domain_tokens(), threads=1, stages=spec.train_stages(),
            trunk_dir=trunks,
        )  # fmt: skip

    mixtures = [{"code": 0.0, "bible": 0.5, "dictionary": 0.5}, {"code": 1.0}]
    first, second = execute_group(
        [request(f"t{i}", m) for i, m in enumerate(mixtures)], stacking="on"
    )
    assert first["n_models"] == second["n_models"] == 1
    assert first["trunk_trained"] and first["trunk_steps"] == 0
    assert not second["trunk_trained"] and second["trunk_steps"] == 6  # 0.75 of 8 steps
    for result, weights in zip((first, second), mixtures, strict=True):
        alone = request("scratch", weights)
        alone = dataclasses.replace(alone, train=dataclasses.replace(alone.train, trunk_dir=None))
        scratch = execute_trial(alone)
        assert scratch["trunk_steps"] == 0 and not scratch["trunk_trained"]
        assert result["metrics"] == scratch["metrics"]
        assert result["stage_tokens"] == scratch["stage_tokens"]


def test_a_staged_job_says_the_target_scale_laws_do_not_apply(make_spec: Any, tmp_path: Any):
    spec = make_spec(
        search=QUICK_SEARCH,
        proxy={"seq_len": 16},
        stages=STAGES,
        target={"params": 1e8, "tokens": 1e6, "max_epochs": 1000},
        validate={"enabled": False},
    )
    job_dir = JobDir.new(spec, tmp_path / "job").path
    outcome = SearchJob(spec, job_dir, runner=ScriptedRunner()).run()
    section = outcome.recommendation["target_scale"]
    assert section == {
        "available": False,
        "reason": "the laws model one mixture throughout training, not a schedule of stages",
    }
    assert outcome.recommendation["stages"][1]["searched"]
