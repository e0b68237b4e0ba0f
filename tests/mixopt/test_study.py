"""Study: ask/tell without proxies or Ray, persistence, imports, and the CLI around it."""

import json

import numpy as np
import pandas as pd
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


# ------------------------------------------------------------------------------ scales

LOSS_NAMES = {d: f"val_loss/{d}" for d in DOMAINS}
FLOOR = np.array([1.0, 0.8, 1.2])
DATA_AMPLITUDE = np.array([30.0, 200.0, 60.0])
DATA_EXPONENT = np.array([0.25, 0.45, 0.2])  # code is learned fast, math slowly
PROXY_SIZES = (1e5, 3e5, 1e6)
TARGET = {"params": 1e8, "tokens": 2e9}


def domain_losses(w: np.ndarray, params: float, tokens: float) -> np.ndarray:
    """A known joint law per domain: E + A·N^-0.3 + B·(D·(w + transfer))^-β."""
    share = np.atleast_2d(w) + 0.02
    return FLOOR + 5.0 * params**-0.3 + DATA_AMPLITUDE * (tokens * share) ** -DATA_EXPONENT


def true_optimum(params: float, tokens: float) -> np.ndarray:
    pool = np.random.default_rng(0).dirichlet(np.ones(3), size=50_000)
    return pool[np.argmin(domain_losses(pool, params, tokens).mean(axis=1))]


def scaled_metrics(weights: dict[str, float], params: float) -> dict[str, float]:
    w = np.array([weights[d] for d in DOMAINS])
    noise = np.random.default_rng([int(params), int(1e6 * w[0])]).normal(0, 0.002, 3)
    losses = domain_losses(w, params, 20 * params)[0] * (1 + noise)
    return {LOSS_NAMES[d]: float(v) for d, v in zip(DOMAINS, losses, strict=True)}


def ladder_study(**options) -> Study:
    """12 mixtures, each told at three proxy sizes (D = 20 N)."""
    objective = {name: 1 / 3 for name in LOSS_NAMES.values()}
    study = Study(DOMAINS, objective=objective, initial=12, seed=0, **options)
    for s in study.ask(12):
        for params in PROXY_SIZES:
            study.tell(
                s.mixture_id, scaled_metrics(s.weights, params), params=params, tokens=20 * params
            )
    return study


def l1(weights: dict[str, float], target: np.ndarray) -> float:
    return float(np.abs(np.array([weights[d] for d in DOMAINS]) - target).sum())


def test_best_at_the_target_follows_the_optimum_as_it_moves_with_scale():
    at_target = true_optimum(TARGET["params"], TARGET["tokens"])
    at_proxy = true_optimum(PROXY_SIZES[-1], 20 * PROXY_SIZES[-1])
    assert np.abs(at_target - at_proxy).sum() > 0.15  # the optimum moves: the test can fail
    study = ladder_study(strategy="law", law="joint")
    assert len(study.suggestions) == 12 and len(study.scales()) == 3
    proxy = study.best()  # the strategy's model at the largest told scale
    assert (proxy.params, proxy.tokens) == (PROXY_SIZES[-1], 20 * PROXY_SIZES[-1])
    best = study.best(target=TARGET)
    assert l1(best.weights, at_target) < 0.05
    assert l1(best.weights, at_target) < l1(proxy.weights, at_target)
    assert l1(best.weights, at_target) < np.abs(at_proxy - at_target).sum() / 3  # beats even
    # the proxy scale's true optimum
    truth = domain_losses(at_target, TARGET["params"], TARGET["tokens"]).mean()
    assert best.predicted == pytest.approx(truth, rel=0.05)  # 100x beyond the largest size
    assert best.predicted_std is not None and best.predicted_std >= 0
    assert best.method.startswith("joint scaling law at N=1e+08")
    assert (best.params, best.tokens) == (1e8, 2e9) and len(best.supported_by) == 12
    assert best.nearest[0]["l1_distance"] <= best.nearest[-1]["l1_distance"]
    assert study.best(target=(1e8, 2e9)).weights == best.weights  # a pair reads the same


def test_ask_with_a_target_proposes_from_the_law_and_a_ladder_imports_as_one_mixture():
    study = ladder_study(strategy="law", law="joint", target=TARGET)
    proposed = study.ask(2)
    assert len(proposed) == 2 and all(sum(s.weights.values()) == pytest.approx(1) for s in proposed)
    assert study.best().params == TARGET["params"]  # the study's target is best()'s default
    again = Study(DOMAINS, objective=study.objective, strategy="law")
    first = next(iter(study.suggestions.values()))
    for r in first.results:
        mixture_id = again.add(first.weights, r.metrics, params=r.params, tokens=r.tokens)
    assert len(again.suggestions) == 1 and len(again.suggestions[mixture_id].results) == 3
    assert again.suggestions[mixture_id].result.params == PROXY_SIZES[-1]  # the headline result


def test_the_auto_law_is_weighed_by_extrapolation():
    best = ladder_study(strategy="random").best(target=TARGET)
    assert "weighed by extrapolation" in best.method
    assert l1(best.weights, true_optimum(TARGET["params"], TARGET["tokens"])) < 0.1


def test_scaled_study_round_trips_and_a_version_1_file_loads(tmp_path):
    study = Study(DOMAINS, objective="val_loss", target=TARGET, law="bimix")
    s = study.ask(1)[0]
    study.tell(s.mixture_id, 3.0, params=1e5, tokens=2e6)
    study.tell(s.mixture_id, 2.5, params=1e6, tokens=2e7)
    study.tell(s.mixture_id, 2.4, params=1e6, tokens=2e7)  # the same scale again: replaced
    path = tmp_path / "s.json"
    study.save(path)
    data = json.loads(path.read_text())
    assert data["version"] == 2 and data["target"] == TARGET and data["law"] == "bimix"
    again = Study.load(path)
    assert again.to_dict() == study.to_dict()
    assert [r.objective for r in again.suggestions[s.mixture_id].results] == [3.0, 2.4]
    assert [row["params"] for row in again.trials()] == [1e5, 1e6]
    v1 = {key: value for key, value in data.items() if key not in ("target", "law")}
    v1["version"] = 1
    v1["suggestions"] = [
        {"mixture_id": "m0000", "weights": s.weights, "metrics": {"val_loss": 2.0},
         "objective": 2.0, "source": "asked"},
        {"mixture_id": "m0001", "weights": s.weights, "metrics": {}, "objective": None,
         "source": "asked"},
    ]  # fmt: skip
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(v1))
    loaded = Study.load(old)
    assert loaded.suggestions["m0000"].objective == 2.0 and loaded.scaled is False
    assert not loaded.suggestions["m0001"].done and loaded.target is None
    assert loaded.to_dict()["version"] == 2
    v1["version"] = 7
    old.write_text(json.dumps(v1))
    with pytest.raises(MixoptError, match="version 7; this mixopt reads 1, 2"):
        Study.load(old)


def test_bad_scales_are_clear():
    study = Study(DOMAINS, objective="val_loss")
    s = study.ask(2)
    with pytest.raises(MixoptError, match=r"give both params .* and tokens"):
        study.tell(s[0].mixture_id, 1.0, params=1e6)
    for params in (-1.0, float("inf"), 0):
        with pytest.raises(MixoptError, match="params must be finite and > 0"):
            study.tell(s[0].mixture_id, 1.0, params=params, tokens=1e6)
    study.tell(s[0].mixture_id, 2.0, params=1e6, tokens=2e7)
    with pytest.raises(MixoptError, match="have a scale; give params= and tokens="):
        study.tell(s[1].mixture_id, 2.0)
    study.tell(s[1].mixture_id, 2.1, params=1e6, tokens=2e7)
    with pytest.raises(MixoptError, match=r"needs results at 2 or more scales .* has 1 \(N=1e\+06"):
        study.best(target=TARGET)
    with pytest.raises(MixoptError, match=r"must name params .* and tokens"):
        study.best(target={"params": 1e8})
    with pytest.raises(MixoptError, match="unknown scale-aware law 'chinchilla'"):
        Study(DOMAINS, law="chinchilla")
    with pytest.raises(MixoptError, match="this study maximises"):
        Study(DOMAINS, direction="maximize", target=TARGET)
    plain = Study(DOMAINS, objective="val_loss")
    plain.tell(plain.ask(1)[0].mixture_id, 1.0)
    with pytest.raises(MixoptError, match=r"needs results at 2 or more scales .* has 0$"):
        plain.best(target=TARGET)  # results without a scale: no law to fit
    with pytest.raises(MixoptError, match="have no scale"):
        plain.add({"web": 0.2, "code": 0.3, "math": 0.5}, 1.0, params=1e6, tokens=1e7)


def test_cli_tells_at_scales_and_recommends_at_a_target(tmp_path):
    cli = CliRunner()
    path = tmp_path / "ladder.json"
    study = Study(DOMAINS, objective="val_loss", strategy="random", law="joint", initial=8)
    asked = study.ask(8)
    study.save(path)
    for s in asked:
        for params in PROXY_SIZES:
            value = float(np.mean(list(scaled_metrics(s.weights, params).values())))
            args = ["study", "tell", str(path), s.mixture_id, "--value", str(value)]
            told = cli.invoke(app, [*args, "--params", str(params), "--tokens", str(20 * params)])
            assert told.exit_code == 0, told.output
    assert len(Study.load(path).scales()) == 3
    best = cli.invoke(app, ["study", "best", str(path), "--params", "1e8", "--tokens", "2e9"])
    assert best.exit_code == 0, best.output
    rec = json.loads(best.stdout)
    assert rec["params"] == 1e8 and rec["method"].startswith("joint scaling law")
    truth = domain_losses(true_optimum(1e8, 2e9), 1e8, 2e9).mean()
    assert rec["predicted"] == pytest.approx(truth, rel=0.05)
    half = cli.invoke(app, ["study", "best", str(path), "--params", "1e8"])
    assert half.exit_code == 2 and "give both params" in half.output


def test_cli_imports_a_ladder_table_one_mixture_at_many_scales(tmp_path):
    mixtures = np.random.default_rng(2).dirichlet(np.ones(3), size=5)
    rows = [
        {"w_web": w[0], "w_code": w[1], "w_math": w[2], "N": n, "D": 20 * n}
        | {"loss": float(domain_losses(w, n, 20 * n).mean())}
        for w in mixtures
        for n in PROXY_SIZES
    ]
    table = tmp_path / "ladder.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    path = tmp_path / "s.json"
    args = ["runs", "import", str(table), "--weights", "w_", "--target", "loss"]
    args += ["--study", str(path), "--params-column", "N", "--tokens-column", "D"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    study = Study.load(path)
    assert len(study.suggestions) == 5 and [s.params for s in study.scales()] == list(PROXY_SIZES)
    assert all(len(s.results) == 3 for s in study.suggestions.values())
    one = CliRunner().invoke(app, [*args[:-2], "--study", str(tmp_path / "t.json")])
    assert one.exit_code == 2 and "give both --params-column and --tokens-column" in one.output


def test_a_study_law_gives_each_domain_metric_its_own_data_term_and_eval_sets_theirs():
    from mixopt.study.scale import column_domains, law_columns

    domains = ["web", "code", "math"]
    objective = {"val_loss/code": 0.5, "val_loss/held_out": 0.5}
    columns = law_columns(objective, domains)
    assert columns == ["val_loss/code", "val_loss/held_out"]
    assert column_domains(columns, domains) == [1, None]
    every = {"val_loss/math": 1.0, "web": 1.0, "val_loss/code": 1.0}
    assert law_columns(every, domains) == ["web", "val_loss/code", "val_loss/math"]
    assert column_domains(law_columns(every, domains), domains) == [0, 1, 2]
    assert law_columns({"loss": 1.0}, domains) is None
