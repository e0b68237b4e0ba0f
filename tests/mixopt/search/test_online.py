"""DoReMi and Aioli as validated baselines: a whole job on real proxies runs them on the search
proxy, validates DoReMi's mixture (projected into the space) and Aioli's schedule (as stages)
with the same paired seeds as the recommendation, reports both in recommendation.json, never
hands a schedule over as the recommendation, and a resumed job reuses them."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from mixopt.job import JobDir
from mixopt.runners.local import InProcessRunner
from mixopt.search import SearchJob, online
from mixopt.worker import execute_trial

DOMAINS = ("code", "bible", "dictionary")


def test_doremi_settings_and_where_it_does_not_apply(make_spec: Any) -> None:
    spec = make_spec(validate={"baselines": ["natural", "doremi"], "doremi": {"step_size": 0.5}})
    assert spec.validate_.doremi.step_size == 0.5 and spec.validate_.doremi.reference == "natural"
    with pytest.raises(ValidationError, match="smoothing"):
        make_spec(validate={"doremi": {"smoothing": 1.0}})
    stages = [
        {"share": 0.5, "weights": {"code": 1.0}},
        {"share": 0.5, "search": True},
    ]
    with pytest.raises(ValidationError, match=r"aioli, doremi train\(s\) from scratch"):
        make_spec(validate={"baselines": ["doremi", "aioli"]}, stages=stages)
    aioli = make_spec(validate={"baselines": ["aioli"], "aioli": {"rounds": 3}}).validate_.aioli
    assert aioli.rounds == 3 and aioli.initial == "uniform"
    with pytest.raises(ValidationError, match="delta"):
        make_spec(validate={"aioli": {"delta": 0}})


def test_a_schedule_never_replaces_the_recommendation() -> None:
    from mixopt.search.validation import decide

    def summary(values: list[float], **extra: Any) -> dict[str, Any]:
        seeds = {str(i): v for i, v in enumerate(values)}
        return {"objective": float(np.mean(values)), "objective_std": float(np.std(values)),
                "seeds": len(values), "by_seed": seeds, **extra}  # fmt: skip

    validated = {
        "recommended": summary([3.0, 3.1, 3.2]),
        "aioli": summary([2.0, 2.1, 2.2], schedule=[{"share": 1.0, "weights": {"a": 1.0}}]),
    }
    assert decide(validated, "minimize") is None  # it beats the recommendation, but is a plan
    validated["uniform"] = summary([2.5, 2.6, 2.7])
    assert decide(validated, "minimize") == "uniform"


@pytest.mark.slow
def test_a_job_validates_the_online_baselines_next_to_the_recommendation(
    make_spec: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_spec(
        proxy={"preset": "tiny", "overrides": {"n_layer": 1}, "seq_len": 32, "batch_size": 4,
               "train_tokens": 4 * 32 * 10, "eval_tokens": 1024},
        search={"initial_trials": 4, "rounds": 1, "trials_per_round": 1, "strategy": "random"},
        space={"bounds": {"code": [0.1, 0.5]}},
        validate={"seeds": 2, "baselines": ["natural", "doremi", "aioli"], "scale": "search",
                  "doremi": {"step_size": 0.1}, "aioli": {"rounds": 2, "sweep_steps": 2}},
    )  # fmt: skip
    job = JobDir.new(spec, tmp_path / "job")
    requests: list[Any] = []

    def execute(request: Any) -> dict[str, Any]:
        requests.append(request)
        return execute_trial(request)

    SearchJob(spec, job.path, runner=InProcessRunner(execute)).run()
    rec = json.loads((job.path / "recommendation.json").read_text())
    report = rec["online"]["doremi"]
    assert sum(report["weights"].values()) == pytest.approx(1.0)
    assert report["proxy_runs"] == pytest.approx(2.0, rel=0.05)  # a reference and a DRO proxy
    inside = report["validated_weights"]
    assert 0.1 - 1e-9 <= inside["code"] <= 0.5 + 1e-9 and sum(inside.values()) == pytest.approx(1)
    validated = rec["validation"]["doremi"]
    assert validated["seeds"] == 2 and validated["weights"] == pytest.approx(inside)
    assert np.isfinite(validated["objective"])
    assert "doremi" in rec["verdict"] and "aioli" in rec["verdict"]
    # Aioli's schedule: its rounds, each a mixture, validated as stages of those mixtures.
    schedule = rec["online"]["aioli"]["schedule"]
    assert len(schedule) == 2 and sum(r["share"] for r in schedule) == pytest.approx(1.0)
    assert rec["validation"]["aioli"]["schedule"] == schedule
    assert rec["online"]["aioli"]["sweep_tokens"] > 0
    planned = [r for r in requests if r.trial_id in rec["validation"]["aioli"]["trials"]]
    assert len(planned) == 2
    for request in planned:
        stages = request.train.stages
        assert len(stages) == len(schedule)
        for stage, planned_round in zip(stages, schedule, strict=True):
            assert dict(stage.weights) == pytest.approx(planned_round["weights"])
    others = [r for r in requests if r.trial_id not in rec["validation"]["aioli"]["trials"]]
    assert all(not r.train.stages for r in others)
    # A job that finds DoReMi's result in its directory (a resumed one) reads it back instead of
    # training it again; other settings would train it anew.

    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("DoReMi trained again")

    monkeypatch.setattr("mixopt.worker.execute_doremi", fail)
    monkeypatch.setattr("mixopt.worker.execute_aioli", fail)
    again = JobDir.new(spec, tmp_path / "again")
    again.online_path.write_text(job.online_path.read_text())
    SearchJob(spec, again.path, runner=InProcessRunner()).run()
    assert json.loads((again.path / "recommendation.json").read_text())["online"] == rec["online"]
    assert online.read(again)["doremi"] == report
