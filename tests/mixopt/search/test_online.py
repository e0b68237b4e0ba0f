"""DoReMi as a validated baseline: a whole job on real proxies runs DoReMi on the search proxy,
validates its mixture (projected into the space) with the same paired seeds as the
recommendation, reports it in recommendation.json, and a resumed job reuses it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from mixopt.job import JobDir
from mixopt.runners.local import InProcessRunner
from mixopt.search import SearchJob, online

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
    with pytest.raises(ValidationError, match="doremi trains one mixture from scratch"):
        make_spec(validate={"baselines": ["doremi"]}, stages=stages)


@pytest.mark.slow
def test_a_job_validates_doremi_next_to_the_recommendation(
    make_spec: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_spec(
        proxy={"preset": "tiny", "overrides": {"n_layer": 1}, "seq_len": 32, "batch_size": 4,
               "train_tokens": 4 * 32 * 10, "eval_tokens": 1024},
        search={"initial_trials": 4, "rounds": 1, "trials_per_round": 1, "strategy": "random"},
        space={"bounds": {"code": [0.1, 0.5]}},
        validate={"seeds": 2, "baselines": ["natural", "doremi"], "scale": "search",
                  "doremi": {"step_size": 0.1}},
    )  # fmt: skip
    job = JobDir.new(spec, tmp_path / "job")
    SearchJob(spec, job.path, runner=InProcessRunner()).run()
    rec = json.loads((job.path / "recommendation.json").read_text())
    report = rec["online"]["doremi"]
    assert sum(report["weights"].values()) == pytest.approx(1.0)
    assert report["proxy_runs"] == pytest.approx(2.0, rel=0.05)  # a reference and a DRO proxy
    inside = report["validated_weights"]
    assert 0.1 - 1e-9 <= inside["code"] <= 0.5 + 1e-9 and sum(inside.values()) == pytest.approx(1)
    validated = rec["validation"]["doremi"]
    assert validated["seeds"] == 2 and validated["weights"] == pytest.approx(inside)
    assert np.isfinite(validated["objective"])
    assert "doremi" in rec["verdict"]
    # A job that finds DoReMi's result in its directory (a resumed one) reads it back instead of
    # training it again; other settings would train it anew.

    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("DoReMi trained again")

    monkeypatch.setattr("mixopt.worker.execute_doremi", fail)
    again = JobDir.new(spec, tmp_path / "again")
    again.online_path.write_text(job.online_path.read_text())
    SearchJob(spec, again.path, runner=InProcessRunner()).run()
    assert json.loads((again.path / "recommendation.json").read_text())["online"] == rec["online"]
    assert online.read(again)["doremi"] == report
