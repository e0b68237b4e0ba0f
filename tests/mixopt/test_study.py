"""Study: ask/tell without proxies or Ray, persistence, imports, and the CLI around it."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mixopt.cli.main import app
from mixopt.errors import MixoptError
from mixopt.study import Study
from mixopt.testing import synthetic_losses

DOMAINS = ["web", "code", "math"]


def evaluate(weights: dict[str, float]) -> dict[str, float]:
    losses = synthetic_losses(weights)
    return {"val_loss": float(np.mean(list(losses.values())))}


def test_ask_tell_loop_improves_on_its_initial_design():
    study = Study(DOMAINS, objective="val_loss", initial=6, seed=0)
    first = study.ask(6)
    assert len({s.mixture_id for s in first}) == 6
    for s in first:
        assert sum(s.weights.values()) == pytest.approx(1.0)
        study.tell(s.mixture_id, evaluate(s.weights))
    initial_best = min(s.objective for s in first)
    for _ in range(3):
        for s in study.ask(2):
            study.tell(s.mixture_id, evaluate(s.weights))
    best = study.best()
    assert evaluate(best.weights)["val_loss"] <= initial_best + 1e-3
    assert len(best.supported_by) == 12
    assert best.predicted_std is not None and not best.outside_data


def test_save_load_round_trip_and_resume(tmp_path):
    study = Study(DOMAINS, objective={"a": 0.5, "b": 0.5}, direction="maximize", seed=3)
    asked = study.ask(3)
    study.tell(asked[0].mixture_id, {"a": 1.0, "b": 3.0})
    path = tmp_path / "s.json"
    study.save(path)
    again = Study.load(path)
    assert again.to_dict() == study.to_dict()
    assert again.suggestions[asked[0].mixture_id].objective == pytest.approx(2.0)
    nxt = again.ask(1)[0]
    assert nxt.mixture_id == "m0003"


def test_bad_tells_and_files_are_clear(tmp_path):
    study = Study(DOMAINS, objective="val_loss")
    s = study.ask(1)[0]
    with pytest.raises(MixoptError, match="unknown mixture id 'zzz'"):
        study.tell("zzz", 1.0)
    with pytest.raises(MixoptError, match=r"metrics lack \['val_loss'\]"):
        study.tell(s.mixture_id, {"loss": 1.0})
    with pytest.raises(MixoptError, match="must be finite"):
        study.tell(s.mixture_id, float("nan"))
    with pytest.raises(MixoptError, match=r"sum to 0\.5"):
        study.add({"web": 0.5}, 1.0)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MixoptError, match="not a study file"):
        Study.load(bad)
    with pytest.raises(MixoptError, match="needs at least 2 results"):
        study.best()


def test_cli_import_ask_tell_best(tmp_path, regmix_runs):
    cli = CliRunner()
    path = tmp_path / "regmix.json"
    target = "metric/the_pile_pile_cc_val_loss"
    result = cli.invoke(
        app,
        [
            "runs",
            "import",
            str(regmix_runs),
            "--weights",
            "train_the_pile_",
            "--target",
            target,
            "--study",
            str(path),
        ],
    )
    assert result.exit_code == 0, result.output
    study = Study.load(path)
    assert len(study.suggestions) == 96 and "pile_cc" in study.domains
    asked = cli.invoke(app, ["study", "ask", str(path), "-n", "2"])
    assert asked.exit_code == 0, asked.output
    lines = [json.loads(line) for line in asked.stdout.strip().splitlines()]
    assert len(lines) == 2 and abs(sum(lines[0]["weights"].values()) - 1) < 1e-6
    told = cli.invoke(app, ["study", "tell", str(path), lines[0]["mixture_id"], "--value", "5.2"])
    assert told.exit_code == 0, told.output
    best = cli.invoke(app, ["study", "best", str(path)])
    assert best.exit_code == 0, best.output
    rec = json.loads(best.stdout)
    assert rec["weights"]["pile_cc"] > 0.5  # Pile-CC loss falls with Pile-CC's share
    mismatch = cli.invoke(
        app,
        [
            "runs",
            "import",
            str(regmix_runs),
            "--weights",
            "train_the_pile_arxiv,train_the_pile_github",
            "--target",
            target,
            "--study",
            str(path),
        ],
    )
    assert mismatch.exit_code == 2 and "differ from the table" in mismatch.output


def test_cli_cv_table_and_json(regmix_runs):
    cli = CliRunner()
    args = ["cv", "--runs", str(regmix_runs), "--weights", "train_the_pile_"]
    args += ["--target", "metric/the_pile_pile_cc_val_loss", "--predictors", "linear,gp"]
    result = cli.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rows"] == 96
    assert data["results"]["gp"]["spearman"] > data["results"]["linear"]["spearman"]
    assert data["results"]["gp"]["coverage95"] is not None
    assert data["results"]["linear"]["coverage95"] is None
    table = cli.invoke(app, args, env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "Spearman" in table.stdout


def test_a_study_runs_the_registered_strategies_that_need_no_fidelities_or_constraints(tmp_path):
    message = r"available: bo, regmix, law, random \(pareto needs constraints and mfbo needs fid"
    for strategy in ("mfbo", "pareto", "sigopt"):
        with pytest.raises(MixoptError, match=message):
            Study(DOMAINS, strategy=strategy)
    for strategy in ("regmix", "law", "random"):  # bo: the tests above
        study = Study(DOMAINS, objective="val_loss", strategy=strategy, initial=4, seed=1)
        for s in study.ask(4):
            study.tell(s.mixture_id, evaluate(s.weights))
        proposed = study.ask(2)
        assert len(proposed) == 2
        for s in proposed:
            assert sum(s.weights.values()) == pytest.approx(1.0)
            assert min(s.weights.values()) >= 0
    path = tmp_path / "s.json"
    refused = CliRunner().invoke(
        app, ["study", "new", str(path), "--domains", "a,b", "--strategy", "mfbo"]
    )
    assert refused.exit_code == 2 and "mfbo needs fidelities" in refused.output
    assert not path.exists()
