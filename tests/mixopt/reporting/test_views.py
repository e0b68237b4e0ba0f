"""The view model of a finished and of a running job, checked against the runs table,
recommendation.json and the MLflow store the job wrote."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mixopt.errors import MixoptError
from mixopt.reporting.jobdata import find_job_dirs, load_job_dir, trial_order
from mixopt.reporting.views import ViewOptions, build_views
from tests.mixopt.reporting.jobs import CURRENT, DOMAINS, N_SEARCH, N_VALIDATE, RunningJob


@pytest.fixture(scope="module")
def model(finished_job):
    return build_views(
        load_job_dir(finished_job), ViewOptions(mlflow_url="http://mlflow.test:5000/")
    )


def test_summary_counts_and_best(model, finished_runs):
    job = model["job"]
    search = finished_runs[finished_runs["stage"] == "search"]
    assert job["state"] == "completed" and job["finished"]
    assert job["trials_completed"] == N_SEARCH + N_VALIDATE == len(finished_runs)
    assert job["trials_total"] == N_SEARCH + N_VALIDATE
    assert job["best_objective"] == pytest.approx(search["objective"].min())
    assert job["best_trial"] == search.loc[search["objective"].idxmin(), "trial_id"]
    assert job["domains"] == list(DOMAINS)
    json.dumps(model, allow_nan=False)  # plain JSON: the page and the report inline it


def test_trace_is_every_trial_in_order_with_best_so_far(model, finished_runs):
    trace = model["views"]["trace"]
    ordered = finished_runs.sort_values("trial_id")
    assert [p["trial_id"] for p in trace["points"]] == ordered["trial_id"].tolist()
    assert [p["objective"] for p in trace["points"]] == pytest.approx(ordered["objective"].tolist())
    search = ordered[ordered["stage"] == "search"]["objective"].to_numpy()
    best = [p["best_so_far"] for p in trace["points"] if p["stage"] == "search"]
    assert best == pytest.approx(np.minimum.accumulate(search).tolist())
    groups = {p["group"] for p in trace["points"]}
    assert groups == {"initial design", "round 1", "round 2", "validation"}
    names = [t["name"] for t in trace["figure"]["data"]]
    assert names == ["initial design", "round 1", "round 2", "validation", "best so far"]
    assert len(trace["figure"]["layout"]["shapes"]) == 3  # boundaries between the four groups


def test_mixtures_are_the_recommendation_and_validated_baselines(
    model, finished_job, finished_runs
):
    rec = json.loads((finished_job / "recommendation.json").read_text())
    mixtures = model["views"]["mixtures"]["mixtures"]
    # noiseless synthetic losses: a baseline that beat the search's choice became the
    # recommendation, and the search's choice is shown beside it
    chosen = rec["validation"]["recommended"].get("chosen_from")
    expected = ["recommended", "current", "natural", "uniform", "best_trial", "toward_natural_50"]
    assert list(mixtures) == expected[:1] + (["search_choice"] if chosen else []) + expected[1:]
    assert mixtures["recommended"] == pytest.approx(rec["weights"])
    search = finished_runs[finished_runs["stage"] == "search"]
    best = search.loc[search["objective"].idxmin()]
    assert mixtures["best_trial"] == pytest.approx({d: best[f"weight/{d}"] for d in DOMAINS})
    assert mixtures["current"] == pytest.approx(CURRENT)
    for label in ("natural", "uniform"):
        assert mixtures[label] == pytest.approx(rec["validation"][label]["weights"])
    bars = model["views"]["mixtures"]["figure_bars"]["data"]
    assert next(b["y"] for b in bars) == pytest.approx([rec["weights"][d] for d in DOMAINS])


def test_trial_mixtures_are_sorted_by_objective(model, finished_runs):
    search = finished_runs[finished_runs["stage"] == "search"].sort_values("objective")
    view = model["views"]["mixtures"]
    assert view["trial_order"] == search["trial_id"].tolist()
    code = next(t for t in view["figure_trials"]["data"] if t["name"] == "code")
    assert code["y"] == pytest.approx(search["weight/code"].tolist())


def test_validation_matches_runs_and_recommendation(model, finished_runs, finished_job):
    rec = json.loads((finished_job / "recommendation.json").read_text())
    view = model["views"]["validation"]
    assert view["verdict"] == rec["verdict"] and not view["provisional"]
    validate = finished_runs[finished_runs["stage"] == "validate"]
    rows = {r["label"]: r for r in view["rows"]}
    chosen = rec["validation"]["recommended"].get("chosen_from")
    planned = {"recommended", "uniform", "natural", "toward_natural_50", "current"}
    assert set(rows) == planned | ({"search_choice"} if chosen else set())
    for label, row in rows.items():
        # the runs table labels trials as planned: the search's choice was "recommended"
        planned_as = {"recommended": chosen or "recommended", "search_choice": "recommended"}
        values = validate[validate["label"] == planned_as.get(label, label)]["objective"]
        assert row["seeds"] == 2
        assert row["objective"] == pytest.approx(values.mean())
        assert row["objective_std"] == pytest.approx(values.std(ddof=1))
        assert row["objective"] == pytest.approx(rec["validation"][label]["objective"])
        assert row["objective_std"] == pytest.approx(rec["validation"][label]["objective_std"])
    mine = rows["recommended"]["objective"]
    assert rows["uniform"]["gain"] == pytest.approx(rows["uniform"]["objective"] - mine)


def test_recommendation_interval(model, finished_job):
    rec = json.loads((finished_job / "recommendation.json").read_text())
    view = model["views"]["recommendation"]
    p, s = rec["predicted_objective"], rec["predicted_std"]
    assert view["predicted_objective"] == pytest.approx(p)
    assert view["interval95"] == pytest.approx([p - 1.96 * s, p + 1.96 * s])
    assert view["evidence_trials"] == N_SEARCH
    assert view["validated_objective"] == pytest.approx(
        rec["validation"]["recommended"]["objective"]
    )


def test_predictor_and_effects_views(model, finished_runs):
    predictor = model["views"]["predictor"]
    search = finished_runs[finished_runs["stage"] == "search"]
    assert predictor["available"] and predictor["n"] == N_SEARCH
    observed = {p["trial_id"]: p["observed"] for p in predictor["points"]}
    assert observed == pytest.approx(
        dict(zip(search["trial_id"], search["objective"], strict=True))
    )
    from scipy.stats import spearmanr

    predicted = [p["predicted"] for p in predictor["points"]]
    assert predictor["spearman"] == pytest.approx(
        spearmanr(predicted, [p["observed"] for p in predictor["points"]]).statistic
    )
    assert predictor["spearman"] > 0.5  # 14 trials of a smooth law (with noise)
    effects = model["views"]["effects"]
    assert effects["domains"] == list(DOMAINS)
    assert effects["targets"] == [f"val_loss/{d}" for d in DOMAINS]
    matrix = np.array(effects["interaction"])
    assert (np.diag(matrix) < 0).all()  # the law: more of a domain lowers its own loss
    heatmap = effects["figure_interaction"]["data"][0]
    assert heatmap["z"] == effects["interaction"]


def test_moe_view_reads_expert_counts_over_training(model, finished_job):
    state = json.loads((finished_job / "state.json").read_text())
    runs = pd.read_parquet(finished_job / "runs.parquet").set_index("trial_id")
    view = model["views"]["moe"]
    assert view["available"]
    assert [r["trial_id"] for r in view["rows"]] == sorted(t["trial_id"] for t in state["trials"])
    for row in view["rows"]:
        assert row["evaluations"] == 3 and row["experts"] == 4 and row["layers"] == 2
        assert row["final_max_load"] == pytest.approx(runs.loc[row["trial_id"], "moe/max_load"])
        assert row["runs_max_load"] == pytest.approx(runs.loc[row["trial_id"], "moe/max_load"])
    assert view["default_trial"] == model["job"]["best_trial"]
    first = view["figure_max_load"]["data"][0]
    trial = state["trials"][0]["result"]
    assert first["x"] == [e["tokens"] for e in trial["evals"]] + [trial["tokens"]]


def test_trials_link_into_mlflow(model, finished_job, finished_runs):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{finished_job / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mixopt")
    runs = client.search_runs([experiment.experiment_id], "tags.`mixopt.kind` = 'trial'")
    expected = {r.data.tags["mixopt.trial_id"]: r.info.run_id for r in runs}
    view = model["views"]["trials"]
    assert [r["trial_id"] for r in view["rows"]] == sorted(
        finished_runs["trial_id"], key=trial_order
    )
    for row in view["rows"]:
        run_id = expected[row["trial_id"]]
        assert row["mlflow_run_id"] == run_id
        assert row["mlflow_url"] == (
            f"http://mlflow.test:5000/#/experiments/{experiment.experiment_id}/runs/{run_id}"
        )
    assert view["mlflow"]["linked"] == len(finished_runs)
    assert "mlflow ui --backend-store-uri sqlite:///" in view["mlflow"]["command"]


def test_a_running_job(tmp_path):
    running = RunningJob(tmp_path, finish=6).start()
    try:
        job = load_job_dir(running.job_dir)
        model = build_views(job)
        assert model["job"]["state"] == "running" and not model["job"]["finished"]
        assert model["job"]["trials_completed"] == 6
        views = model["views"]
        assert not views["recommendation"]["available"]
        assert "no recommendation yet: the job is running" in views["recommendation"]["reason"]
        assert len(views["trace"]["points"]) == 6
        assert views["predictor"]["available"] and views["predictor"]["n"] == 6
        assert not views["validation"]["available"]
        # the comparison bars exist before the recommendation: natural, uniform, current, best
        assert list(views["mixtures"]["mixtures"]) == [
            "current",
            "natural",
            "uniform",
            "best_trial",
        ]
        natural = json.loads((running.job_dir / "data_manifest.json").read_text())["domains"]
        total = sum(d["train_tokens"] for d in natural)
        assert views["mixtures"]["mixtures"]["natural"] == pytest.approx(
            {d["name"]: d["train_tokens"] / total for d in natural}
        )
        statuses = {r["trial_id"]: r["status"] for r in views["trials"]["rows"]}
        assert list(statuses.values()).count("completed") == 6
        assert "running" in statuses.values()  # from state.json: the trial the runner holds
    finally:
        running.release()
    model = build_views(load_job_dir(running.job_dir))
    assert model["job"]["state"] == "completed" and model["views"]["recommendation"]["available"]


def test_too_few_trials_for_a_predictor(tmp_path):
    running = RunningJob(tmp_path, finish=3).start()
    try:
        views = build_views(load_job_dir(running.job_dir))["views"]
        assert views["predictor"]["reason"] == (
            "needs at least 5 finished search trials to fit a predictor; 3 so far"
        )
        assert views["effects"]["reason"] == views["predictor"]["reason"]
    finally:
        running.release()


def test_a_job_whose_process_died_is_not_shown_as_running(tmp_path):
    """job.json says running, but its process is gone (killed): the view says interrupted."""
    script = (
        f"import sys; sys.path.insert(0, {os.getcwd()!r})\n"
        "from pathlib import Path\n"
        "from tests.mixopt.reporting.jobs import RunningJob\n"
        f"RunningJob(Path({str(tmp_path)!r}), finish=4).start()\n"
        "print('ready', flush=True)\n"
        "import time; time.sleep(120)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        assert load_job_dir(tmp_path / "running").state == "running"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    job = load_job_dir(tmp_path / "running")
    assert job.state == "interrupted"
    assert job.status is not None and job.status.error == "the job's process is gone"


def test_unknown_and_broken_job_directories(tmp_path, finished_job):
    with pytest.raises(MixoptError, match="no such job directory"):
        load_job_dir(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MixoptError, match="not a mixopt job directory"):
        load_job_dir(tmp_path / "empty")
    with pytest.raises(MixoptError, match=r"not a mixopt job directory .* and no job directories"):
        find_job_dirs(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "runs.parquet").write_text("not parquet")
    with pytest.raises(MixoptError, match="cannot read the runs table"):
        load_job_dir(broken)
    assert find_job_dirs(finished_job.parent) == [finished_job]
    assert find_job_dirs(finished_job) == [finished_job]


def test_trial_order_is_numeric():
    ids = ["t10000", "t0010", "t0009", "t0100"]
    assert sorted(ids, key=trial_order) == ["t0009", "t0010", "t0100", "t10000"]


def test_importing_mixopt_and_its_cli_loads_no_web_or_plot_stack():
    code = (
        "import sys, mixopt, mixopt.cli.main, mixopt.reporting, mixopt.report;"
        "mods = ('fastapi', 'uvicorn', 'plotly', 'matplotlib', 'playwright', 'pandas', 'torch');"
        "print([m for m in mods if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_multi_fidelity_job_compares_only_target_fidelity_trials(tmp_path):
    """mfbo trains cheap proxies too: best-so-far and the best trial count only the target's."""
    from tests.mixopt.reporting.jobs import SEARCH, make_job

    search = {**SEARCH, "strategy": "mfbo", "fidelities": [{"train_tokens": 4000}]}
    proxy = {"seq_len": 16, "arch": "moe", "train_tokens": 40_000}
    job_dir = make_job(tmp_path, search=search, proxy=proxy)
    runs = pd.read_parquet(job_dir / "runs.parquet")
    search_rows = runs[runs["stage"] == "search"].sort_values("trial_id")
    assert set(search_rows["fidelity"]) >= {"moe:tiny:4000"}
    target = search_rows[search_rows["fidelity"] == "moe:tiny:40000"]
    model = build_views(load_job_dir(job_dir))
    trace = model["views"]["trace"]
    assert {p["fidelity"] for p in trace["points"]} == set(runs["fidelity"])
    best = [p["best_so_far"] for p in trace["points"] if p["stage"] == "search"]
    expected, running = [], None
    for _, row in search_rows.iterrows():
        if row["fidelity"] == "moe:tiny:40000":
            running = row["objective"] if running is None else min(running, row["objective"])
        expected.append(running)
    assert [None if b is None else round(b, 9) for b in best] == [
        None if e is None else round(e, 9) for e in expected
    ]
    # equal measured costs (the synthetic trials' wall time): mfbo runs target trials too
    assert len(target) > 0
    assert model["job"]["best_objective"] == pytest.approx(target["objective"].min())
    assert model["job"]["best_trial"] == target.loc[target["objective"].idxmin(), "trial_id"]
    names = [t["name"] for t in trace["figure"]["data"]]
    assert names[-1] == "best so far (target fidelity)"
