"""The search loop over the real data stage, with the synthetic executor standing in for proxies.

The synthetic losses are a known function of the mixture, so these tests check the loop's logic
(rounds, retries, runs table, recommendation, validation) exactly; test_end_to_end.py runs the
same loop with real proxies, real Ray and real MLflow.
"""

import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mixopt.errors import MixoptError
from mixopt.job import JobDir
from mixopt.search import SearchJob
from mixopt.testing import ScriptedRunner, synthetic_losses
from mixopt.trials import TrialStatus
from tests.conftest import QUICK_SEARCH

SEARCH = QUICK_SEARCH  # test_rounds_runs_table_and_recommendation runs the default (bo)
PROXY = {"seq_len": 16}


def _run(make_spec, tmp_path, runner=None, **sections):
    spec = make_spec(search={**SEARCH, **sections.pop("search", {})}, proxy=PROXY, **sections)
    job_dir = JobDir.new(spec, tmp_path / "job").path
    job = SearchJob(spec, job_dir, runner=runner or ScriptedRunner())
    return job, job.run()


def _mean_loss(weights):
    return float(np.mean(list(synthetic_losses(weights).values())))


def test_rounds_runs_table_and_recommendation(make_spec, tmp_path):
    _, outcome = _run(make_spec, tmp_path, search={"strategy": "bo"})
    runs = pd.read_parquet(outcome.job_dir / "runs.parquet")
    search = runs[runs["stage"] == "search"]
    assert search["round"].tolist() == [0] * 8 + [1] * 3 + [2] * 3
    assert (runs["status"] == "completed").all()
    assert runs["trial_id"].is_unique
    weights = runs[[f"weight/{d}" for d in ("code", "bible", "dictionary")]]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    for _, row in runs.iterrows():
        mixture = {d: row[f"weight/{d}"] for d in ("code", "bible", "dictionary")}
        assert row["objective"] == pytest.approx(_mean_loss(mixture))
        assert row["val_loss/code"] == pytest.approx(synthetic_losses(mixture)["val_loss/code"])

    rec = json.loads((outcome.job_dir / "recommendation.json").read_text())
    assert sum(rec["weights"].values()) == pytest.approx(1.0)
    assert rec["objective"]["direction"] == "minimize"
    assert len(rec["evidence"]["trials"]) == 14
    # noiseless losses: a baseline better than the search's choice replaces it (kept beside it)
    validated_labels = {"recommended", "uniform", "natural", "best_trial", "toward_natural_50"}
    chosen = rec["validation"]["recommended"].get("chosen_from")
    assert set(rec["validation"]) == validated_labels | ({"search_choice"} if chosen else set())
    validated = rec["validation"]["recommended"]["objective"]
    assert validated == pytest.approx(_mean_loss(rec["weights"]))
    assert validated < np.median(search["objective"])  # the search learned something
    assert rec["verdict"].startswith("recommended")
    assert (outcome.job_dir / "spec.yaml").is_file()
    assert json.loads((outcome.job_dir / "job.json").read_text())["status"] == "completed"


def test_maximize_flips_the_direction(make_spec, tmp_path):
    objective = {"metrics": {"val_loss/code": 1.0}, "direction": "maximize"}
    _, outcome = _run(make_spec, tmp_path, objective=objective, validate={"enabled": False})
    runs = pd.read_parquet(outcome.job_dir / "runs.parquet")
    # maximising code's loss means starving code: the recommendation gives it little weight
    initial = runs[(runs["stage"] == "search") & (runs["round"] == 0)]
    assert outcome.recommendation["weights"]["code"] < min(0.01, initial["weight/code"].median())
    assert outcome.recommendation["validation"] == {}


def test_dead_workers_are_retried_then_abandoned(make_spec, tmp_path):
    runner = ScriptedRunner(die={"t0001": 1, "t0002": 5})
    _, outcome = _run(make_spec, tmp_path, runner=runner, resources={"max_retries": 2})
    by_id = {t.trial_id: t for t in outcome.trials}
    assert by_id["t0001"].status is TrialStatus.COMPLETED and by_id["t0001"].attempts == 2
    assert by_id["t0002"].status is TrialStatus.ABANDONED and by_id["t0002"].attempts == 3
    assert runner.submitted.count("t0002") == 3
    runs = pd.read_parquet(outcome.job_dir / "runs.parquet")
    assert runs["trial_id"].is_unique
    abandoned = runs.set_index("trial_id").loc["t0002"]
    assert abandoned["status"] == "abandoned" and "injected" in abandoned["error"]
    assert "t0002" not in outcome.recommendation["evidence"]["trials"]


def test_failing_trials_do_not_stop_the_job_until_too_few_finish(make_spec, tmp_path):
    def broken(request):
        raise RuntimeError("out of memory")

    from mixopt.runners.local import InProcessRunner

    with pytest.raises(MixoptError, match=r"only 0 trial\(s\) finished"):
        _run(make_spec, tmp_path, runner=InProcessRunner(broken))
    state = json.loads((tmp_path / "job" / "job.json").read_text())
    assert state["status"] == "failed"
    runs = pd.read_parquet(tmp_path / "job" / "runs.parquet")
    assert (runs["status"] == "abandoned").all() and runs["error"].str.contains(
        "out of memory"
    ).all()


def test_existing_job_directories_are_never_reused(make_spec, tmp_path):
    spec = make_spec()
    job_dir = tmp_path / "old"
    job_dir.mkdir()
    (job_dir / "runs.parquet").write_text("precious")
    with pytest.raises(MixoptError, match="already exists and is not empty"):
        JobDir.new(spec, job_dir)
    assert (job_dir / "runs.parquet").read_text() == "precious"


def test_empty_domain_fails_before_any_trial(make_spec, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    domains = [{"name": "blank", "paths": [str(empty)]}, {"name": "other", "paths": [str(empty)]}]
    runner = ScriptedRunner()
    with pytest.raises(MixoptError, match="blank"):
        _run(make_spec, tmp_path, runner=runner, domains=domains)
    assert runner.submitted == []
    assert not (tmp_path / "job" / "runs.parquet").exists()


def test_verdict_weighs_gains_against_seed_noise():
    from mixopt.verdict import verdict as _verdict

    def entry(objective, std, seeds=3):
        return {"objective": objective, "objective_std": std, "seeds": seeds}

    clear = {"recommended": entry(4.0, 0.01), "uniform": entry(4.1, 0.01)}
    assert "beats uniform by +0.1000" in _verdict(clear, "minimize")
    noisy = {"recommended": entry(4.0, 0.2), "uniform": entry(4.05, 0.2)}
    assert "ties uniform" in _verdict(noisy, "minimize")
    worse = {"recommended": entry(4.2, 0.01), "natural": entry(4.0, 0.01)}
    assert "loses to natural" in _verdict(worse, "minimize")
    assert "beats natural" in _verdict(worse, "maximize")
    single = {"recommended": entry(4.0, None, 1), "uniform": entry(4.1, None, 1)}
    assert "one seed (no spread)" in _verdict(single, "minimize")


def test_repetition_caps_bound_every_trial_and_the_recommendation(make_spec, tmp_path):
    from tests.conftest import corpus_domains

    domains = corpus_domains()
    domains[0]["max_epochs"] = 1.0  # code may be seen once
    probe = make_spec(domains=domains)
    from mixopt.data import prepare_data

    train = prepare_data(probe, log=lambda _: None).train_tokens()
    target = 3.0 * train["code"]  # one epoch of code is a third of the target run
    _, outcome = _run(make_spec, tmp_path, domains=domains, target={"tokens": target})
    runs = pd.read_parquet(outcome.job_dir / "runs.parquet")
    cap = outcome.recommendation["repetition_caps"]["code"]
    assert cap == pytest.approx(1 / 3, rel=1e-6)
    assert (runs["weight/code"] <= cap + 1e-6).all()
    assert outcome.recommendation["weights"]["code"] <= cap + 1e-6
    assert outcome.recommendation["target_epochs"]["code"] <= 1.0 + 1e-6
    assert {"data_hash/code", "epochs/code", "tokenizer_hash"} <= set(runs.columns)


def test_grouped_search_keeps_within_group_shares(make_spec, tmp_path):
    from tests.conftest import corpus_domains

    domains = corpus_domains()
    domains[1].update(group="prose", share=3.0)  # bible
    domains[2].update(group="prose", share=1.0)  # dictionary
    _, outcome = _run(make_spec, tmp_path, domains=domains, groups={"level": "groups"})
    runs = pd.read_parquet(outcome.job_dir / "runs.parquet")
    search = runs[runs["stage"] == "search"]
    prose = search["weight/bible"] + search["weight/dictionary"]
    some = prose > 0  # a trial may give the whole group nothing
    assert some.sum() >= 10
    np.testing.assert_allclose(search["weight/bible"][some] / prose[some], 0.75, atol=1e-6)
    rec = outcome.recommendation["weights"]
    assert rec["bible"] / (rec["bible"] + rec["dictionary"]) == pytest.approx(0.75, abs=1e-6)


class _DieAfter(ScriptedRunner):
    """Runs ``n`` trials, then raises as if the driver were killed (state is saved per event)."""

    def __init__(self, n: int, execute=None) -> None:
        super().__init__(*([execute] if execute else []))
        self.left = n

    def poll(self, timeout):
        if self.left <= 0:
            raise KeyboardInterrupt("driver killed")
        events = super().poll(timeout)
        self.left -= len(events)
        return events


def test_resume_keeps_finished_trials_and_does_not_propose_again(make_spec, tmp_path):
    spec = make_spec(search=SEARCH, proxy=PROXY)
    job_dir = JobDir.new(spec, tmp_path / "job").path
    with pytest.raises(KeyboardInterrupt):
        SearchJob(spec, job_dir, runner=_DieAfter(10)).run()
    status = json.loads((job_dir / "job.json").read_text())
    assert status["status"] == "interrupted" and status["trials_completed"] == 10
    saved = json.loads((job_dir / "state.json").read_text())["trials"]
    round1 = {t["trial_id"]: t["weights"] for t in saved if t["round"] == 1}
    assert len(round1) == 3  # round 1 was proposed before the kill

    runner = ScriptedRunner()
    outcome = SearchJob(spec, job_dir, runner=runner, resume=True).run()
    assert "t0000" not in runner.submitted  # finished trials were not trained again
    assert runner.submitted[0] == "t0010"
    by_id = {t.trial_id: t for t in outcome.trials}
    assert {tid: by_id[tid].weights for tid in round1} == round1  # no second proposal
    runs = pd.read_parquet(job_dir / "runs.parquet")
    assert runs["trial_id"].is_unique and len(runs) == len(outcome.trials)
    assert (runs["status"] == "completed").all()
    assert json.loads((job_dir / "job.json").read_text())["status"] == "completed"


def test_resume_refuses_a_finished_or_foreign_directory(make_spec, tmp_path):
    from mixopt.search import resume_job

    _, outcome = _run(make_spec, tmp_path)
    with pytest.raises(MixoptError, match="already completed"):
        resume_job(outcome.job_dir, runner=ScriptedRunner())
    with pytest.raises(MixoptError, match="not a job directory"):
        resume_job(tmp_path, runner=ScriptedRunner())


def test_validation_trains_the_larger_proxy(make_spec, tmp_path):
    validate = {"preset": "small", "train_tokens": 5000, "seeds": 2}
    _, outcome = _run(make_spec, tmp_path, validate=validate)
    runs = pd.read_parquet(outcome.job_dir / "runs.parquet")
    assert set(runs[runs["stage"] == "validate"]["fidelity"]) == {"dense:small:5000"}
    assert set(runs[runs["stage"] == "search"]["fidelity"]) == {"dense:tiny:500000"}
    assert outcome.recommendation["validation"]["uniform"]["seeds"] == 2
    assert outcome.recommendation["validation_proxy"]["preset"] == "small"


def test_pareto_search_keeps_a_domain_within_its_guard_rail(make_spec, tmp_path):
    objective = {"constraints": [{"metric": "val_loss/code", "max_increase": 0.0}]}
    _, outcome = _run(make_spec, tmp_path, objective=objective, search={"strategy": "pareto"})
    runs = pd.read_parquet(outcome.job_dir / "runs.parquet")
    baseline = runs[runs["label"] == "baseline:natural"]
    assert len(baseline) == 1  # the natural mixture was trained to set the limit
    limit = baseline["val_loss/code"].iloc[0]
    validated = outcome.recommendation["validation"]["recommended"]["metrics"]["val_loss/code"]
    assert validated <= limit + 1e-3
    assert "within the constraints" in outcome.recommendation["method"]

    # recommendation.json's pareto section: the front, the chosen point on it, and why
    rec = json.loads((outcome.job_dir / "recommendation.json").read_text())
    section = rec["pareto"]
    assert section["guard_rails"][0]["metric"] == "val_loss/code"
    assert section["guard_rails"][0]["limit"] == pytest.approx(limit)
    front, chosen = section["front"], section["chosen"]
    assert len(front) > 1 and sum(row["chosen"] for row in front) == 1
    weights = list(rec["objective"]["metrics"].items())
    for row in front:  # the predicted objective is the objective's weighting of the targets
        objective = sum(w * row["predicted"][m] for m, w in weights)
        assert row["predicted"]["objective"] == pytest.approx(objective)
        assert row["feasible"] == all(row["meets"])
        assert row["meets"] == [row["predicted"]["val_loss/code"] <= limit]
    on_front = next(row for row in front if row["chosen"])
    assert chosen["feasible"] and chosen["on_front"] and on_front["feasible"]
    assert chosen["predicted"]["val_loss/code"] <= limit
    assert chosen["reason"].startswith("lowest predicted objective among")
    for domain, weight in rec["weights"].items():  # the chosen point is the recommendation
        assert chosen["weights"][domain] == pytest.approx(weight)
        assert on_front["weights"][domain] == pytest.approx(weight, abs=1e-6)
    feasible = [row["predicted"]["objective"] for row in front if row["feasible"]]
    assert on_front["predicted"]["objective"] == pytest.approx(min(feasible))

    # the guard rail checked again on what validation measured, against natural validated too
    natural = rec["validation"]["natural"]["metrics"]["val_loss/code"]
    (check,) = rec["guard_rails"]
    assert check["metric"] == "val_loss/code" and check["relative_to"] == "natural"
    assert check["value"] == pytest.approx(validated)
    assert check["limit"] == pytest.approx(natural)
    assert check["excess"] == pytest.approx(validated - natural)
    assert check["paired"] and check["seeds"] == rec["validation"]["recommended"]["seeds"]
    assert check["held"] == (validated <= natural) and check["excess"] <= 1e-3
    assert f"guard rail val_loss/code {check['outcome']}: {validated:.4f}" in rec["verdict"]


def _multi_fidelity_execute(request):
    """Synthetic losses that fall with training tokens, with a small fidelity bias; the wall
    time grows with the tokens (what mfbo's cost model measures)."""
    from mixopt.testing import synthetic_execute

    result = synthetic_execute(request)
    tokens = result["tokens"]
    penalty = 2.0 * (50_000 / tokens) ** 0.5
    bias = 0.05 * request.weights["code"] * (tokens < 50_000)
    result["metrics"] = {k: v + penalty + bias for k, v in result["metrics"].items()}
    result["wall_s"] = tokens / 10_000
    return result


def test_mfbo_chooses_fidelities_and_recommends_for_the_target(make_spec, tmp_path):
    cheap = {"train_tokens": 5_000}
    search = {"strategy": "mfbo", "fidelities": [cheap], "rounds": 3, "trials_per_round": 3}
    spec = make_spec(
        search={**SEARCH, **search},
        proxy={**PROXY, "train_tokens": 50_000},
        # validate at the target fidelity itself; the recommendation stays mfbo's
        validate={"scale": "search", "choose": "search"},
    )
    job_dir = JobDir.new(spec, tmp_path / "job").path
    outcome = SearchJob(spec, job_dir, runner=ScriptedRunner(_multi_fidelity_execute)).run()
    runs = pd.read_parquet(job_dir / "runs.parquet")
    search_rows = runs[runs["stage"] == "search"]
    initial = search_rows[search_rows["round"] == 0]
    # the initial design runs cheapest, but initial_at_target (2) trials at the target
    assert initial["fidelity"].tolist() == ["dense:tiny:5000"] * 6 + ["dense:tiny:50000"] * 2
    later = search_rows[search_rows["round"] > 0]
    assert set(later["fidelity"]) <= {"dense:tiny:5000", "dense:tiny:50000"}
    assert len(later) == 9
    # each trial's tokens are its fidelity's
    for _, row in search_rows.iterrows():
        assert row["fidelity"].endswith(f":{int(row['tokens'])}")
    saved = json.loads((job_dir / "state.json").read_text())["trials"]
    assert [t["fidelity_level"] for t in saved if t["round"] == 0] == [0] * 6 + [1] * 2
    log = (job_dir / "job.log").read_text()
    assert "round 1: mfbo runs" in log and "dense:tiny:" in log
    rec = outcome.recommendation
    assert rec["method"].startswith("mfbo: lowest posterior mean + 1 std at the target fidelity")
    # predicted on the target's loss level (the cheap proxy's is ~4.3 higher)
    assert rec["predicted_objective"] == pytest.approx(
        rec["validation"]["recommended"]["objective"], abs=0.1
    )
    # validation trains the target proxy; the recommendation beats the natural mixture there
    validated = runs[runs["stage"] == "validate"]
    assert set(validated["fidelity"]) == {"dense:tiny:50000"}
    # the recommendation is among the best mixtures at the target (synthetic truth)
    rec_loss = validated[validated["label"] == "recommended"]["objective"].iloc[0]
    rng = np.random.default_rng(0)
    pool = rng.dirichlet(np.ones(3), size=300)
    truth = [_mean_loss(dict(zip(("code", "bible", "dictionary"), w, strict=True))) for w in pool]
    assert rec_loss - 2.0 <= np.quantile(truth, 0.1)  # 2.0: the target's token penalty


def test_mfbo_spec_errors(make_spec):
    with pytest.raises(ValidationError, match="strategy 'mfbo' needs at least one cheaper proxy"):
        make_spec(search={"strategy": "mfbo"})
    with pytest.raises(ValidationError, match=r"places the initial design itself"):
        make_spec(
            search={"strategy": "mfbo", "fidelities": [{"preset": "nano", "initial_trials": 3}]}
        )
    with pytest.raises(ValidationError, match=r"fidelities\.0\.initial_trials: at most"):
        make_spec(
            search={"initial_trials": 4, "fidelities": [{"preset": "nano", "initial_trials": 5}]}
        )
    with pytest.raises(
        ValidationError, match=r"search\.fidelities\.0: the same proxy as the target"
    ):
        make_spec(
            search={"strategy": "mfbo", "fidelities": [{"train_tokens": 500_000}]},
        )
    with pytest.raises(ValidationError, match="give preset and/or train_tokens"):
        make_spec(search={"strategy": "mfbo", "fidelities": [{"lr": 0.01}]})


def test_mfbo_refuses_a_fidelity_that_is_not_cheaper(make_spec, tmp_path):
    search = {"strategy": "mfbo", "fidelities": [{"preset": "small"}]}
    spec = make_spec(search={**SEARCH, **search}, proxy=PROXY)
    job_dir = JobDir.new(spec, tmp_path / "job").path
    runner = ScriptedRunner()
    with pytest.raises(MixoptError, match=r"search\.fidelities\.0: trains .* not fewer than"):
        SearchJob(spec, job_dir, runner=runner).run()
    assert runner.submitted == []  # nothing was trained


def test_a_single_scale_search_trains_its_ladder_rungs_on_the_first_mixtures(make_spec, tmp_path):
    """bo searches at the search proxy; a rung (larger here) repeats the first initial mixtures
    at its own size, and only search-proxy trials reach the proposer and the best."""
    rung = {"preset": "small", "train_tokens": 4_000, "initial_trials": 3}
    search = {**SEARCH, "strategy": "bo", "fidelities": [rung], "rounds": 1}
    spec = make_spec(search=search, proxy={**PROXY, "train_tokens": 2_000})
    job_dir = JobDir.new(spec, tmp_path / "job").path
    outcome = SearchJob(spec, job_dir, runner=ScriptedRunner()).run()
    runs = pd.read_parquet(job_dir / "runs.parquet")
    initial = runs[(runs["stage"] == "search") & (runs["round"] == 0)]
    assert initial["fidelity"].tolist() == ["dense:tiny:2000"] * 8 + ["dense:small:4000"] * 3
    weights = [f"weight/{d}" for d in ("code", "bible", "dictionary")]
    np.testing.assert_allclose(initial[weights].iloc[8:].to_numpy(), initial[weights].iloc[:3])
    later = runs[(runs["stage"] == "search") & (runs["round"] == 1)]
    assert set(later["fidelity"]) == {"dense:tiny:2000"}
    assert len(outcome.recommendation["evidence"]["trials"]) == 8 + 3  # search-proxy trials


def _scaled_execute(request):
    """Synthetic per-domain losses that fall with model size N and with each domain's tokens
    D * w (a joint scaling law), evaluated along the run: what the target-scale law learns."""
    from mixopt.testing import synthetic_execute

    result = synthetic_execute(request)
    n = request.model.non_embedding_params()
    total = request.train.train_tokens
    names = sorted(request.weights)

    def losses(tokens):
        return {
            f"val_loss/{d}": 1.5
            + 40.0 * n**-0.3
            + (3.0 + i) * (tokens * request.weights[d] + 1e3) ** -0.25
            for i, d in enumerate(names)
        }

    result["n_params"] = n
    result["metrics"] = losses(total)
    result["evals"] = [
        {"tokens": total * k // 4, "metrics": losses(total * k // 4)} for k in (1, 2, 3)
    ]
    return result


def test_a_target_scale_recommendation_from_a_ladder(make_spec, tmp_path):
    rungs = [
        {"preset": "nano", "train_tokens": 20_000, "initial_trials": 6},
        {"preset": "micro", "train_tokens": 20_000, "initial_trials": 6},
    ]
    search = {**SEARCH, "strategy": "bo", "fidelities": rungs, "rounds": 1}
    spec = make_spec(
        search=search,
        proxy={**PROXY, "train_tokens": 20_000},
        target={"params": 1e8, "tokens": 1e6, "max_epochs": 1000},
        validate={"baselines": ["uniform", "natural"], "seeds": 2},
    )
    job_dir = JobDir.new(spec, tmp_path / "job").path
    outcome = SearchJob(spec, job_dir, runner=ScriptedRunner(_scaled_execute)).run()
    rec = outcome.recommendation
    section = rec["target_scale"]
    assert section["available"]
    members = {law for law, score in section["scores"].items() if score.get("weight")}
    assert members and all(law in section["law"] for law in members)
    mixtures = section["mixtures"]
    assert set(mixtures) >= {"recommended", "proxy_optimum", "natural", "uniform"}
    # the recommendation is the best of them at the target, as the law predicts
    best = min(mixtures, key=lambda k: mixtures[k]["objective"])
    assert (
        mixtures["recommended"]["objective"]
        <= mixtures[best]["objective"] + mixtures[best]["objective_std"]
    )
    assert mixtures["recommended"]["objective"] < mixtures["recommended"]["objective_at_proxy"]
    assert rec["weights"] == pytest.approx(mixtures["recommended"]["weights"])
    assert rec["proxy_recommendation"]["method"].startswith("bo")
    # the curves run from the search proxy's size to the target's, ending at the table's values
    curves = section["curves"]
    assert curves["params"][0] == pytest.approx(spec.proxy.size()[0])
    assert curves["params"][-1] == pytest.approx(1e8)
    assert curves["tokens"][-1] == pytest.approx(1e6)
    for label, mixture in mixtures.items():
        assert curves["objective"][label][-1] == pytest.approx(mixture["objective"])
        assert curves["objective"][label][0] == pytest.approx(mixture["objective_at_proxy"])
    assert "proxy_optimum" in rec["validation"]  # validated beside the target's choice
    # calibration: the law's prediction at the validation proxy against what was measured
    calibration = section["calibration"]
    assert {r["label"] for r in calibration["mixtures"]} == set(rec["validation"])
    assert calibration["mape"] < 0.05
    assert calibration["scale"]["params"] > 4 * 0.9 * spec.proxy.size()[0]


def test_resume_in_the_middle_of_a_ladder(make_spec, tmp_path):
    """Killed after the search proxy's initial trials and part of a rung: the resumed job trains
    only what is missing, at the right sizes, and still answers at the target."""
    rungs = [{"preset": "micro", "train_tokens": 20_000, "initial_trials": 6}]
    search = {**SEARCH, "strategy": "bo", "fidelities": rungs, "rounds": 1}
    spec = make_spec(
        search=search,
        proxy={**PROXY, "preset": "nano", "train_tokens": 20_000},
        target={"params": 1e8, "tokens": 1e6, "max_epochs": 1000},
    )
    job_dir = JobDir.new(spec, tmp_path / "job").path
    with pytest.raises(KeyboardInterrupt):
        SearchJob(spec, job_dir, runner=_DieAfter(11, _scaled_execute)).run()
    before = pd.read_parquet(job_dir / "runs.parquet")
    done = set(before.loc[before["status"] == "completed", "trial_id"])
    rung_done = before["fidelity"].eq("dense:micro:20000") & before["trial_id"].isin(done)
    assert 0 < rung_done.sum() < 6 and len(done) >= 8  # stopped inside the rung
    runner = ScriptedRunner(_scaled_execute)
    outcome = SearchJob(spec, job_dir, runner=runner, resume=True).run()
    assert not done & set(runner.submitted)  # nothing trained twice
    runs = pd.read_parquet(job_dir / "runs.parquet")
    initial = runs[(runs["stage"] == "search") & (runs["round"] == 0)]
    assert initial["fidelity"].value_counts().to_dict() == {
        "dense:nano:20000": 8,
        "dense:micro:20000": 6,
    }
    assert runs["trial_id"].is_unique and (runs["status"] == "completed").all()
    assert outcome.recommendation["target_scale"]["available"]


def test_an_objective_on_an_eval_set_is_searched_and_recommended(make_spec, tmp_path):
    """The eval set is never trained on (no weight), every trial reports it, and the
    recommendation optimises it."""
    from mixopt.testing import synthetic_eval_losses
    from tests.conftest import CORPUS

    domains = [
        {"name": "code", "paths": [str(CORPUS / "code")]},
        {"name": "bible", "paths": [str(CORPUS / "bible" / "[egpr]*.txt")]},
        {"name": "dictionary", "paths": [str(CORPUS / "dictionary")]},
    ]
    evals = [{"name": "gospel", "paths": [str(CORPUS / "bible" / "john_01.txt")]}]
    objective = {"metrics": {"val_loss/gospel": 1.0}}
    _, outcome = _run(make_spec, tmp_path, domains=domains, evals=evals, objective=objective)

    def target(weights):
        return synthetic_eval_losses(weights, ["gospel"])["val_loss/gospel"]

    runs = pd.read_parquet(outcome.job_dir / "runs.parquet")
    assert "weight/gospel" not in runs.columns
    assert runs["bpb/gospel"].notna().all()
    for _, row in runs.iterrows():
        mixture = {d["name"]: row[f"weight/{d['name']}"] for d in domains}
        assert row["val_loss/gospel"] == pytest.approx(target(mixture))
        assert row["objective"] == pytest.approx(target(mixture))
    rec = json.loads((outcome.job_dir / "recommendation.json").read_text())
    assert rec["objective"]["metrics"] == {"val_loss/gospel": 1.0}
    assert set(rec["weights"]) == {"code", "bible", "dictionary"}
    validated = rec["validation"]["recommended"]["objective"]
    assert validated == pytest.approx(target(rec["weights"]))
    search = runs[runs["stage"] == "search"]
    assert validated < np.median(search["objective"])
    # the gospel is bible-like text (synthetic_eval_losses): its optimum leans on bible
    assert rec["weights"]["bible"] > np.median(search["weight/bible"])


def _scaled_eval_execute(request):
    """:func:`_scaled_execute` plus an eval set, "gospel", whose loss is mostly the bible's."""
    result = _scaled_execute(request)

    def with_eval(metrics):
        domains = [v for k, v in metrics.items() if k.startswith("val_loss/")]
        return {
            **metrics,
            "val_loss/gospel": 0.8 * metrics["val_loss/bible"] + 0.2 * np.mean(domains),
        }

    result["metrics"] = with_eval(result["metrics"])
    for point in result["evals"]:
        point["metrics"] = with_eval(point["metrics"])
    return result


def test_an_eval_set_objective_is_predicted_at_the_target_scale(make_spec, tmp_path):
    from tests.conftest import CORPUS

    domains = [
        {"name": "code", "paths": [str(CORPUS / "code")]},
        {"name": "bible", "paths": [str(CORPUS / "bible" / "[egpr]*.txt")]},
        {"name": "dictionary", "paths": [str(CORPUS / "dictionary")]},
    ]
    rungs = [{"preset": "nano", "train_tokens": 20_000, "initial_trials": 6}]
    spec = make_spec(
        domains=domains,
        search={**SEARCH, "strategy": "bo", "fidelities": rungs, "rounds": 1},
        proxy={**PROXY, "train_tokens": 20_000},
        evals=[{"name": "gospel", "paths": [str(CORPUS / "bible" / "john_01.txt")]}],
        objective={"metrics": {"val_loss/gospel": 1.0}},
        target={"params": 1e8, "tokens": 1e6, "max_epochs": 1000},
        validate={"baselines": ["uniform", "natural"], "seeds": 2},
    )
    job_dir = JobDir.new(spec, tmp_path / "job").path
    outcome = SearchJob(spec, job_dir, runner=ScriptedRunner(_scaled_eval_execute)).run()
    section = outcome.recommendation["target_scale"]
    assert section["available"], section.get("reason")
    mixtures = section["mixtures"]
    assert set(mixtures["natural"]["losses"]) == {"val_loss/gospel"}
    assert mixtures["natural"]["objective"] == pytest.approx(
        mixtures["natural"]["losses"]["val_loss/gospel"]
    )
    # the law learned that the gospel feeds on bible tokens: the optimum there leans on them
    assert mixtures["recommended"]["weights"]["bible"] > mixtures["natural"]["weights"]["bible"]
    assert mixtures["recommended"]["objective"] < mixtures["natural"]["objective"]
