"""Probe tasks through the worker: a real prepared corpus and task, a real TrialRequest built by
the job's RequestBuilder, trained and scored by execute_trial (alone) and execute_group
(stacked); the probe metrics change no other number."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from mixopt.data import prepare_data
from mixopt.search.requests import RequestBuilder
from mixopt.spec import ProxySpec
from mixopt.trials import Trial
from mixopt.worker import execute_group, execute_trial
from tests.conftest import CORPUS

DOMAINS = [
    {"name": "code", "paths": [str(CORPUS / "code")]},
    {"name": "bible", "paths": [str(CORPUS / "bible" / "[egpr]*.txt")]},
]
ITEMS = [
    {"context": "And God said, Let there be", "choices": [" light", " import os"], "answer": 0},
    {"context": "def f(x):\n    return", "choices": [" x + 1", " the LORD"], "answer": 0},
    {"context": "In the beginning", "choices": [" God created", " class Foo:"], "answer": 0},
    {"context": "for i in", "choices": [" range(10):", " the wilderness"], "answer": 0},
]
METRICS = ("accuracy", "accuracy_norm", "margin")


class _Ladder:
    def __init__(self, proxy: ProxySpec) -> None:
        self._proxy = proxy

    def proxy(self, trial: Trial) -> ProxySpec:
        return self._proxy


class _Job:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.trunks_dir = root / "trunks"

    def checkpoint_dir(self, trial_id: str) -> Path:
        return self.root / "checkpoints" / trial_id


def test_a_trial_reports_probe_metrics_alone_and_stacked(make_spec, tmp_path: Path) -> None:
    task = tmp_path / "task.jsonl"
    task.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    spec = make_spec(DOMAINS, probes=[{"name": "mc", "path": str(task)}])
    manifest = prepare_data(spec, log=lambda _: None)
    proxy = ProxySpec(
        preset="tiny", overrides={"n_layer": 1}, seq_len=32, train_tokens=4096, batch_size=4,
        eval_tokens=1024, eval_every=16,
    )  # fmt: skip
    build = RequestBuilder(
        manifest,
        _Ladder(proxy),
        SimpleNamespace(cpus_per_trial=1),
        _Job(tmp_path),  # type: ignore[arg-type]
    )
    weights = {"code": 0.5, "bible": 0.5}
    request = build(Trial("t0", 0, weights, seed=0))
    assert [p.name for p in request.probes] == ["mc"]
    assert request.to_dict()["probes"] == [{"name": "mc", "path": manifest.probes["mc"].path}]
    result = execute_trial(request)
    metrics = result["metrics"]
    for name in METRICS:
        assert math.isfinite(metrics[f"probe/mc/{name}"])
    assert 0.0 <= metrics["probe/mc/accuracy"] <= 1.0
    assert 0.0 <= metrics["probe/mc/accuracy_norm"] <= 1.0
    assert metrics["probe/mc/accuracy"] * 4 == round(metrics["probe/mc/accuracy"] * 4)
    assert all("probe/mc/margin" in e["metrics"] for e in result["evals"])  # along the run too
    # the probes only add metrics: everything else is what a run without them reports
    plain = execute_trial(dataclasses.replace(request, probes=()))
    assert {k: v for k, v in metrics.items() if not k.startswith("probe/")} == plain["metrics"]
    grouped = execute_group(
        [request, build(Trial("t1", 0, {"code": 1.0, "bible": 0.0}, seed=0))], stacking="on"
    )
    assert [r.get("error") for r in grouped] == [None, None]
    assert grouped[0]["metrics"]["probe/mc/margin"] == pytest.approx(
        metrics["probe/mc/margin"], abs=1e-3
    )
    assert grouped[1]["metrics"]["probe/mc/margin"] != grouped[0]["metrics"]["probe/mc/margin"]
