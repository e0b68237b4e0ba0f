"""Study for a team working in parallel: pending-aware ask, fail, enqueue, best_observed, and
workers in separate processes sharing one study file (StudyFile's lock)."""

import itertools
import json
import multiprocessing

import numpy as np
import pytest
from typer.testing import CliRunner

import mixopt.study.core as core
from mixopt.cli.main import app
from mixopt.errors import MixoptError
from mixopt.study import Study, StudyFile
from mixopt.study.pending import NEAR_L1
from mixopt.testing import synthetic_losses

DOMAINS = ["web", "code", "math"]


def evaluate(weights: dict[str, float]) -> dict[str, float]:
    return {"val_loss": float(np.mean(list(synthetic_losses(weights).values())))}


def told_study(strategy: str) -> Study:
    study = Study(DOMAINS, objective="val_loss", strategy=strategy, initial=6, seed=0)
    for s in study.ask(6):
        study.tell(s.mixture_id, evaluate(s.weights))
    return study


def min_distance(suggestions) -> float:
    X = np.array([[s.weights[d] for d in DOMAINS] for s in suggestions])
    return min(float(np.abs(a - b).sum()) for a, b in itertools.combinations(X, 2))


def test_two_asks_with_nothing_told_keep_away_from_the_pending_mixtures(monkeypatch):
    study = told_study("law")
    got = study.ask(2) + study.ask(2)
    assert [s.state for s in got] == ["pending"] * 4 and len(study.pending()) == 4
    assert min_distance(got) > NEAR_L1
    # without the pending mixtures, the same study proposes near-duplicates
    monkeypatch.setattr(core, "tell_with_pending", lambda p, X, y, pending: p.tell(X, y))
    monkeypatch.setattr(core, "keep_apart", lambda rows, *args, **kwargs: rows)
    old = told_study("law")
    assert min_distance(old.ask(2) + old.ask(2)) < NEAR_L1


def test_a_failed_mixture_is_neither_pending_nor_an_observation(tmp_path):
    study = told_study("regmix")
    a, b = study.ask(2)
    study.fail(a.mixture_id, "diverged at step 900")
    assert a.state == "failed" and [s.mixture_id for s in study.pending()] == [b.mixture_id]
    assert len(study.best().supported_by) == 6  # the failed run is no observation
    assert {r["mixture_id"]: r["state"] for r in study.trials()}[a.mixture_id] == "failed"
    study.save(tmp_path / "s.json")
    again = Study.load(tmp_path / "s.json")
    assert again.suggestions[a.mixture_id].failed == "diverged at step 900"
    assert again.to_dict() == study.to_dict()
    again.tell(a.mixture_id, evaluate(a.weights))  # a retry that worked
    assert again.suggestions[a.mixture_id].state == "done"
    with pytest.raises(MixoptError, match="only a pending one can fail"):
        again.fail(a.mixture_id)
    with pytest.raises(MixoptError, match="unknown mixture id 'zzz'"):
        again.fail("zzz")


def test_enqueued_mixtures_come_out_first_and_are_checked_against_the_space(tmp_path):
    study = Study(DOMAINS, objective="val_loss", bounds={"math": (0.0, 0.3)}, seed=0)
    production = {"web": 0.6, "code": 0.3, "math": 0.1}
    study.enqueue(production)
    study.save(tmp_path / "s.json")
    study = Study.load(tmp_path / "s.json")
    assert len(study.queue) == 1 and study.queue[0] == pytest.approx(production)
    first, second = study.ask(2)
    assert first.weights == pytest.approx(production) and first.source == "enqueued"
    assert second.source == "asked" and not study.queue
    with pytest.raises(MixoptError, match=r"enqueue: unknown domain\(s\) \['wiki'\]"):
        study.enqueue({"web": 0.5, "wiki": 0.5})
    with pytest.raises(MixoptError, match=r"enqueue: weights sum to 0\.5"):
        study.enqueue({"web": 0.5})
    with pytest.raises(MixoptError, match="outside the study's bounds"):
        study.enqueue({"web": 0.2, "code": 0.2, "math": 0.6})  # above math's bound


def test_best_observed_is_the_best_result_told_at_the_largest_scale():
    study = Study(DOMAINS, objective="acc", direction="maximize", initial=4, seed=0)
    with pytest.raises(MixoptError, match="no result told"):
        study.best_observed()
    values = {}
    for i, s in enumerate(study.ask(4)):
        values[s.mixture_id] = study.tell(s.mixture_id, {"acc": 0.1 * (i + 1)})
    best = study.best_observed()
    assert best.objective == max(values.values()) and best.mixture_id == max(values, key=values.get)
    ladder = Study(DOMAINS, objective="loss", initial=2)
    a = ladder.add({"web": 0.5, "code": 0.3, "math": 0.2}, 3.0, params=1e7, tokens=2e8)
    b = ladder.add({"web": 0.2, "code": 0.3, "math": 0.5}, 2.0, params=1e7, tokens=2e8)
    ladder.add({"web": 0.5, "code": 0.3, "math": 0.2}, 2.5, params=1e8, tokens=2e9)
    assert ladder.best_observed().mixture_id == a  # the only result at the largest scale
    small = ladder.best_observed({"params": 1e7, "tokens": 2e8})
    assert small.mixture_id == b and small.params == 1e7


def worker(path: str, results: int) -> None:
    for _ in range(results):
        with StudyFile(path) as study:
            suggestion = study.ask(1)[0]
        value = evaluate(suggestion.weights)
        with StudyFile(path) as study:
            study.tell(suggestion.mixture_id, value)


def test_workers_in_separate_processes_lose_no_result(tmp_path):
    path = tmp_path / "shared.json"
    Study(DOMAINS, objective="val_loss", initial=40, seed=0).save(path)
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=worker, args=(str(path), 5)) for _ in range(4)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * 4
    study = Study.load(path)
    assert len(study.suggestions) == 20 and all(
        s.state == "done" for s in study.suggestions.values()
    )
    assert min_distance(study.suggestions.values()) > 0  # 20 distinct mixtures


def test_study_file_saves_only_a_block_that_succeeds(tmp_path):
    path = tmp_path / "s.json"
    with pytest.raises(MixoptError, match="study file not found"), StudyFile(path):
        pass
    handle = StudyFile(path, create=lambda: Study(DOMAINS, objective="val_loss"))
    with handle as study:
        study.ask(2)
    assert handle.created and len(Study.load(path).suggestions) == 2
    with pytest.raises(RuntimeError), StudyFile(path) as study:
        study.ask(3)
        raise RuntimeError("the worker crashed")
    assert len(Study.load(path).suggestions) == 2


def test_cli_fail_enqueue_and_best_observed(tmp_path):
    path = tmp_path / "s.json"
    runner = CliRunner()
    new = ["study", "new", str(path), "--domains", "web,code,math", "--objective", "val_loss"]
    assert runner.invoke(app, new).exit_code == 0
    again = runner.invoke(app, new)
    assert again.exit_code != 0 and "already exists" in again.output
    production = {"web": 0.6, "code": 0.3, "math": 0.1}
    out = runner.invoke(app, ["study", "enqueue", str(path), "--weights", json.dumps(production)])
    assert out.exit_code == 0, out.output
    asked = runner.invoke(app, ["study", "ask", str(path), "-n", "3"])
    rows = [json.loads(line) for line in asked.stdout.splitlines()]
    assert rows[0]["weights"] == pytest.approx(production)
    for row in rows[:2]:
        tell = ["study", "tell", str(path), row["mixture_id"], "--value", "2.5"]
        assert runner.invoke(app, tell).exit_code == 0
    runner.invoke(app, ["study", "tell", str(path), rows[0]["mixture_id"], "--value", "2.0"])
    failed = runner.invoke(
        app, ["study", "fail", str(path), rows[2]["mixture_id"], "--reason", "OOM"]
    )
    assert failed.exit_code == 0
    assert Study.load(path).suggestions[rows[2]["mixture_id"]].failed == "OOM"
    best = runner.invoke(app, ["study", "best", str(path), "--observed"])
    assert json.loads(best.stdout)["mixture_id"] == rows[0]["mixture_id"]
    assert json.loads(best.stdout)["objective"] == 2.0
