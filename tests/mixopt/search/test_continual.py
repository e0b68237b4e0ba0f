"""Continual pretraining: the spec's ``continual`` section, and a whole job on real proxies where
every proxy starts from its size's and seed's base proxy and reports forgetting, which a guard
rail bounds."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mixopt.job import JobDir
from mixopt.runners.local import InProcessRunner
from mixopt.search import SearchJob

DOMAINS = ("code", "bible", "dictionary")
GUARD = {"metric": "forgetting/val_loss/bible", "max_value": 0.5}


def test_the_continual_section(make_spec: Any) -> None:
    spec = make_spec(
        continual={"base": {"bible": 0.7, "dictionary": 0.3}, "base_tokens": 2},
        objective={"constraints": [GUARD]},
        search={"strategy": "pareto"},
    )
    assert spec.continual is not None
    natural = {"code": 0.5, "bible": 0.3, "dictionary": 0.2}
    base = spec.continual.build(natural, train_tokens=1000)
    assert base.train_tokens == 2000 and dict(base.weights) == {
        "code": 0.0, "bible": 0.7, "dictionary": 0.3
    }  # fmt: skip
    assert "forgetting/bpb/code" in spec.reported_metrics()
    natural_base = make_spec(continual={"base": "natural", "base_tokens": 0.5}).continual
    assert natural_base is not None
    assert dict(natural_base.build(natural, 1000).weights) == natural
    uniform = make_spec(continual={"base": "uniform", "base_tokens": 1}).continual
    assert uniform is not None and set(uniform.build(natural, 10).weights.values()) == {1 / 3}


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"continual": {"base": {"web": 1.0}, "base_tokens": 1}}, "continual.base: unknown domain"),
        ({"continual": {"base": {"code": 0.5}, "base_tokens": 1}}, "sum to 1"),
        ({"continual": {"base": "natural", "base_tokens": 0}}, "base_tokens"),
        (
            {"objective": {"constraints": [GUARD]}, "search": {"strategy": "pareto"}},
            "unknown metric 'forgetting/val_loss/bible'",
        ),
    ],
)
def test_bad_continual_specs(make_spec: Any, sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_spec(**sections)


@pytest.mark.slow
def test_a_continual_job_on_real_proxies(make_spec: Any, tmp_path: Any) -> None:
    spec = make_spec(
        proxy={"preset": "tiny", "overrides": {"n_layer": 1}, "seq_len": 32, "batch_size": 4,
               "train_tokens": 4 * 32 * 8, "eval_tokens": 1024},
        search={"initial_trials": 4, "rounds": 1, "trials_per_round": 1, "strategy": "pareto"},
        validate={"seeds": 2, "baselines": ["natural"], "scale": "search"},
        continual={"base": {"bible": 1.0}, "base_tokens": 2},
        objective={"constraints": [GUARD]},
    )  # fmt: skip
    job = JobDir.new(spec, tmp_path / "job")
    outcome = SearchJob(spec, job.path, runner=InProcessRunner()).run()
    runs = pd.read_parquet(job.path / "runs.parquet")
    assert (runs["status"] == "completed").all()
    for d in DOMAINS:
        rise = runs[f"forgetting/val_loss/{d}"]
        assert np.isfinite(rise).all()
    # The base saw only bible: every proxy improves on code and dictionary over its base.
    assert (runs["forgetting/val_loss/code"] < 0).all()
    assert (runs["forgetting/val_loss/dictionary"] < 0).all()
    # One base per proxy size and seed: the search proxy's seed 0 and validation seeds 0 and 1
    # (validation runs at the search scale here, so seed 0's base is shared).
    bases = sorted(p.name for p in job.trunks_dir.glob("base-*") if p.is_dir())
    assert len(bases) == len(set(zip(runs["stage"] == "validate", runs["seed"], strict=True))) - 1
    rec = json.loads((job.path / "recommendation.json").read_text())
    assert rec["validation"]["recommended"]["seeds"] == 2
    assert outcome.recommendation["weights"] == rec["weights"]
