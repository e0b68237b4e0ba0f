"""Continual pretraining: the spec's ``continual`` section, and a whole job on real proxies where
every proxy starts from its size's and seed's base proxy and reports forgetting, which a guard
rail bounds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
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


# ------------------------------------------------------------------- from a team's checkpoint


def test_init_from_specs(make_spec: Any, tmp_path: Any) -> None:
    one_model = {"scale": "search"}
    spec = make_spec(continual={"init_from": "team.pt"}, validate=one_model)
    assert spec.continual is not None and spec.continual.build({"code": 1.0}, 100) is None
    with pytest.raises(ValidationError, match="exactly one of base"):
        make_spec(continual={"init_from": "a.pt", "base": "natural", "base_tokens": 1})
    with pytest.raises(ValidationError, match="base and base_tokens go together"):
        make_spec(continual={"base": "natural"})
    with pytest.raises(ValidationError, match="the checkpoint fits one model, but this job"):
        make_spec(continual={"init_from": "team.pt"})  # validation at a larger proxy


def test_the_service_reads_init_from_only_inside_its_data_roots(tmp_path: Any) -> None:
    from mixopt.service.admission import admit
    from mixopt.service.policy import Rejected
    from mixopt.service.settings import ServiceSettings
    from tests.conftest import corpus_domains

    root, outside = tmp_path / "data", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "team.pt").write_bytes(b"x")
    (outside / "team.pt").write_bytes(b"x")
    settings = ServiceSettings(
        tokens={"alice": "alice-token-0123456789abcdef"}, state_dir=tmp_path / "state",
        data_roots=[root, *{Path(d["paths"][0]).parents[1] for d in corpus_domains()}],
        runner="local",
    )  # fmt: skip

    def spec(path: str) -> dict[str, Any]:
        return {
            "name": "t", "domains": corpus_domains(), "validate": {"scale": "search"},
            "continual": {"init_from": path},
        }  # fmt: skip

    admitted = admit(spec("team.pt"), settings, base_dir=str(root))
    assert admitted.continual is not None and admitted.continual.init_from == str(root / "team.pt")
    with pytest.raises(Rejected) as error:
        admit(spec(str(outside / "team.pt")), settings)
    assert error.value.status == 403 and "continual.init_from" in str(error.value)


def test_the_job_copies_its_checkpoint_and_checks_the_roots_at_use(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixopt.data.sources import READ_ROOTS_ENV, ReadRoots
    from mixopt.errors import DataError
    from mixopt.search.requests import RequestBuilder
    from mixopt.spec import ResourcesSpec
    from mixopt.spec.continual import ContinualSpec

    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "secret.pt").write_bytes(b"weights")
    (root / "link.pt").symlink_to(tmp_path / "secret.pt")
    (root / "team.pt").write_bytes(b"weights")
    job = JobDir(tmp_path / "job")

    def builder(path: Path) -> RequestBuilder:
        continual = ContinualSpec(init_from=str(path))
        return RequestBuilder(None, None, ResourcesSpec(), job, continual=continual)  # type: ignore[arg-type]

    monkeypatch.setenv(READ_ROOTS_ENV, ReadRoots((root,)).to_env())
    copy = Path(str(builder(root / "team.pt").init_from))
    assert copy.parent == job.trunks_dir and copy.read_bytes() == b"weights"
    assert copy.name.startswith("init-") and builder(root / "team.pt").init_from == str(copy)
    with pytest.raises(DataError, match="outside the allowed data roots"):
        _ = builder(root / "link.pt").init_from
    with pytest.raises(DataError, match="no such checkpoint file"):
        _ = builder(root / "missing.pt").init_from


@pytest.mark.slow
def test_a_job_continues_from_a_teams_checkpoint(make_spec: Any, tmp_path: Any) -> None:
    from mixopt.data import prepare_data
    from mixopt.trials import TrialRequest
    from proxies.train import train_proxy

    proxy = {"preset": "tiny", "overrides": {"n_layer": 1}, "seq_len": 32, "batch_size": 4,
             "train_tokens": 4 * 32 * 8, "eval_tokens": 1024}  # fmt: skip
    spec = make_spec(
        proxy=proxy,
        search={"initial_trials": 3, "rounds": 1, "trials_per_round": 1, "strategy": "random"},
        validate={"seeds": 1, "baselines": ["natural"], "scale": "search"},
        continual={"init_from": str(tmp_path / "team")},
    )
    # The team's proxy: the same model, trained on bible alone and kept.
    manifest = prepare_data(spec, log=lambda _: None)
    request = TrialRequest.build(
        "team", {"bible": 1.0}, seed=0, proxy=spec.proxy, vocab_size=manifest.vocab_size,
        domains=manifest.domain_tokens(), threads=1,
    )  # fmt: skip
    kept = dataclasses.replace(
        request.train, checkpoint_dir=str(tmp_path / "team"), keep_checkpoint=True
    )
    team = train_proxy(request.model, kept, list(request.domains), request.weights)
    job = JobDir.new(spec, tmp_path / "job")
    SearchJob(spec, job.path, runner=InProcessRunner()).run()
    runs = pd.read_parquet(job.path / "runs.parquet")
    assert (runs["status"] == "completed").all() and len(runs) == 7  # 4 search, 3 validation
    rise = runs["val_loss/code"] / team.metrics["val_loss/code"] - 1
    np.testing.assert_allclose(runs["forgetting/val_loss/code"], rise, rtol=1e-9)
    assert (runs["forgetting/val_loss/code"] < 0).all()  # the team's proxy never saw code
    assert len(list(job.trunks_dir.glob("init-*.pt"))) == 1
