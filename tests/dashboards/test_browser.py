"""The dashboard and the report in headless Chromium, checked the way a person would look.

Every view must render (sections available, Plotly figures drawn, no page errors), and the
numbers read off the page must be the runs table's: trial objectives and weights, the trace's
points, the recommendation, validation means and seed counts, MoE loads, MLflow links. A
running job is watched until it finishes, without reloading the page. Screenshots are saved
as test artifacts (see conftest).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from mixopt.report import write_report
from tests.mixopt.reporting.jobs import DOMAINS, N_SEARCH, RunningJob

pytestmark = pytest.mark.browser

SECTIONS = (
    "recommendation",
    "trace",
    "mixtures",
    "predictor",
    "effects",
    "validation",
    "moe",
    "trials",
    "spec",
)


def number(text: str) -> float:
    return float(text.replace("−", "-").replace("+", "").replace(",", "").strip())


def cells(page: Any, selector: str) -> list[str]:
    return [c.strip() for c in page.locator(selector).all_inner_texts()]


def trial_order(trial_id: str) -> int:
    return int(re.sub(r"\D", "", trial_id))


def check_job_page(page: Any, job_dir: Path, *, mlflow_url: str | None) -> None:
    """Everything on a rendered finished job's page against the job's files."""
    runs = pd.read_parquet(job_dir / "runs.parquet")
    runs = runs.iloc[sorted(range(len(runs)), key=lambda i: trial_order(runs["trial_id"].iloc[i]))]
    rec = json.loads((job_dir / "recommendation.json").read_text())
    search = runs[runs["stage"] == "search"]

    # every view is there, and every figure was drawn by Plotly
    for name in SECTIONS:
        section = page.locator(f'section[data-view="{name}"]')
        assert section.get_attribute("data-available") == "true", name
    figures = page.locator(".figure")
    assert figures.count() >= 8
    for i in range(figures.count()):
        figure = figures.nth(i)
        assert figure.locator(".main-svg").count() > 0, figure.get_attribute("id")

    # header and recommendation
    assert page.get_by_test_id("job-state").inner_text() == "completed"
    for domain in DOMAINS:
        shown = page.locator(f'#view-recommendation tr[data-domain="{domain}"] [data-col=weight]')
        assert number(shown.inner_text()) == pytest.approx(rec["weights"][domain], abs=6e-5)
    assert page.get_by_test_id("verdict").inner_text() == rec["verdict"]

    # the trace: one point per search trial, in trial order, with the runs table's objectives
    traces = page.evaluate(
        "() => document.getElementById('fig-trace').data"
        ".map(t => ({name: t.name, mode: t.mode, y: Array.from(t.y || [])}))"
    )
    points = [t["y"] for t in traces if t["mode"] == "markers" and t["name"] != "validation"]
    observed = [y for ys in points for y in ys]
    assert sorted(observed) == pytest.approx(sorted(search["objective"]))
    best = next(t for t in traces if t["name"] == "best so far")
    assert min(best["y"]) == pytest.approx(search["objective"].min())

    # the trials table: every trial, its objective and weights, MLflow links
    rows = page.locator("#view-trials tbody tr")
    assert rows.count() == len(runs)
    for i, (_, run) in enumerate(runs.iterrows()):
        row = rows.nth(i)
        assert row.get_attribute("data-trial-id") == run["trial_id"]
        objective = row.locator("[data-col=objective]").inner_text()
        assert number(objective) == pytest.approx(run["objective"], abs=6e-5)
        for domain in DOMAINS:
            weight = row.locator(f'[data-domain="{domain}"]').inner_text()
            assert number(weight) == pytest.approx(run[f"weight/{domain}"], abs=6e-4)
    links = page.get_by_test_id("mlflow-link")
    if mlflow_url is None:
        assert links.count() == 0
    else:
        assert links.count() == len(runs)
        for href in [links.nth(i).get_attribute("href") for i in range(links.count())]:
            assert href is not None and href.startswith(mlflow_url.rstrip("/") + "/#/experiments/")

    # validation at scale: mean, seeds per mixture from the validation trials
    # (trials keep the label they were planned with; when validation chose another mixture, the
    # row "recommended" shows it and "search_choice" the trials planned as "recommended")
    validation = runs[runs["stage"] == "validate"].groupby("label")["objective"]
    chosen = rec["validation"]["recommended"].get("chosen_from")
    shown_as = {chosen: "recommended", "recommended": "search_choice"} if chosen else {}
    table = page.locator("#view-validation tbody tr")
    assert table.count() == validation.ngroups + (1 if chosen else 0)
    for label, values in validation:
        shown = shown_as.get(str(label), label)
        row = page.locator(f'#view-validation tr[data-label="{shown}"]')
        assert number(row.locator("[data-col=mean]").inner_text()) == pytest.approx(
            values.mean(), abs=6e-5
        )
        assert number(row.locator("[data-col=std]").inner_text()) == pytest.approx(
            values.std(ddof=1), abs=6e-5
        )
        assert int(row.locator("[data-col=seeds]").inner_text()) == len(values)

    # predictor quality: the shown Spearman is the one of the plotted held-out predictions
    plotted = page.evaluate(
        "() => { const t = document.getElementById('fig-predictor').data"
        ".find(t => t.mode === 'markers'); return {x: Array.from(t.x), y: Array.from(t.y)}; }"
    )
    assert len(plotted["x"]) == len(search)
    assert sorted(plotted["x"]) == pytest.approx(sorted(search["objective"]))
    rho = float(spearmanr(plotted["x"], plotted["y"]).statistic)
    shown_rho = page.get_by_test_id("spearman")
    assert float(shown_rho.get_attribute("data-value")) == pytest.approx(rho, abs=1e-9)
    assert number(shown_rho.inner_text()) == pytest.approx(rho, abs=6e-4)
    # the 68% coverage shown is the share of plotted points whose ±1σ bar covers the diagonal
    bars = page.evaluate(
        "() => { const t = document.getElementById('fig-predictor').data"
        ".find(t => t.mode === 'markers'); return Array.from(t.error_y.array); }"
    )
    covered = np.mean(
        [abs(y - x) <= e for x, y, e in zip(plotted["x"], plotted["y"], bars, strict=True)]
    )
    shown_coverage = float(page.get_by_test_id("coverage68").get_attribute("data-value"))
    assert shown_coverage == pytest.approx(covered)

    # MoE expert load: one row per MoE trial, final max load from the runs table
    if "moe/max_load" in runs.columns:
        moe = runs.dropna(subset=["moe/max_load"])
        table = page.locator("#view-moe tbody tr")
        assert table.count() == len(moe)
        for _, run in moe.iterrows():
            shown = page.locator(
                f'#view-moe tr[data-trial-id="{run["trial_id"]}"] [data-col=max-load]'
            )
            assert number(shown.inner_text()) == pytest.approx(run["moe/max_load"], abs=6e-4)

    # the spec, verbatim
    spec = page.get_by_test_id("spec").text_content()
    assert spec == (job_dir / "spec.yaml").read_text()


# ------------------------------------------------------------------------------- dashboard


def test_dashboard_shows_a_finished_job(start_dashboard, new_page, finished_job, artifacts):
    mlflow_url = "http://mlflow.example:5000"
    dashboard = start_dashboard(
        "--job-dir", str(finished_job.parent), "--poll", "1", "--mlflow-url", mlflow_url
    )
    tab = new_page()
    page = tab.page
    page.goto(dashboard.url + "/")

    # the jobs list: state, trials and best objective of the job
    row = page.locator(f'tr[data-job-id="{finished_job.name}"]')
    row.wait_for()
    runs = pd.read_parquet(finished_job / "runs.parquet")
    assert row.locator("[data-col=state]").inner_text() == "completed"
    assert row.locator("[data-col=trials]").inner_text() == f"{len(runs)} / {len(runs)}"
    best = runs[runs["stage"] == "search"]["objective"].min()
    assert number(row.locator("[data-col=best]").inner_text()) == pytest.approx(best, abs=6e-5)
    page.screenshot(path=str(artifacts / "jobs.png"))

    # a click opens the job
    row.get_by_test_id("job-link").click()
    page.wait_for_selector("#page[data-rendered]")
    assert page.url.endswith(f"#/job/{finished_job.name}")
    check_job_page(page, finished_job, mlflow_url=mlflow_url)
    page.screenshot(path=str(artifacts / "finished-job.png"), full_page=True)

    # the MoE trial picker redraws the per-trial expert-load figure
    picker = page.get_by_test_id("moe-trial")
    options = picker.locator("option").all_inner_texts()
    assert len(options) > 1
    before = page.evaluate("() => JSON.stringify(document.getElementById('fig-moe-trial').data)")
    picker.select_option(options[-1] if picker.input_value() != options[-1] else options[0])
    after = page.evaluate("() => JSON.stringify(document.getElementById('fig-moe-trial').data)")
    assert after != before
    assert tab.errors == []


def test_dashboard_follows_a_running_job(tmp_path, start_dashboard, new_page, artifacts):
    running = RunningJob(tmp_path, finish=6).start()
    try:
        dashboard = start_dashboard("--job-dir", str(running.job_dir), "--poll", "0.5")
        tab = new_page()
        page = tab.page
        page.goto(f"{dashboard.url}/#/job/{running.job_dir.name}")
        page.wait_for_selector("#page[data-rendered]")
        assert page.get_by_test_id("job-state").inner_text() == "running"
        assert "live" in page.get_by_test_id("live").inner_text()
        completed = page.locator('#view-trials tr[data-status="completed"]')
        assert completed.count() == 6
        assert page.locator('#view-trials tr[data-status="running"]').count() >= 1
        recommendation = page.locator('section[data-view="recommendation"]')
        assert recommendation.get_attribute("data-available") == "false"
        assert "the job is running" in recommendation.get_by_test_id("reason").inner_text()
        # the trace has the finished trials so far
        shown = page.evaluate(
            "() => document.getElementById('fig-trace').data"
            ".filter(t => t.mode === 'markers').reduce((n, t) => n + t.y.length, 0)"
        )
        assert shown == 6
        page.screenshot(path=str(artifacts / "running-job.png"), full_page=True)
    finally:
        running.release()

    # the page follows the job to the end by polling, without a reload
    page.wait_for_selector('.job[data-state="completed"]', timeout=60_000)
    assert page.get_by_test_id("job-state").inner_text() == "completed"
    runs = pd.read_parquet(running.job_dir / "runs.parquet")
    assert page.locator('#view-trials tr[data-status="completed"]').count() == len(runs)
    assert len(runs) > N_SEARCH
    assert recommendation.get_attribute("data-available") == "true"
    check_job_page(page, running.job_dir, mlflow_url=None)
    page.screenshot(path=str(artifacts / "running-job-finished.png"), full_page=True)
    assert tab.errors == [], dashboard.log.read_text()[-3000:]


def test_dashboard_shows_errors_in_the_page(tmp_path, start_dashboard, new_page, finished_job):
    """An unknown job and a job whose files broke say so on the page; the list goes on."""
    import shutil

    root = tmp_path / "jobs"
    shutil.copytree(finished_job, root / "good")
    shutil.copytree(finished_job, root / "broken")
    dashboard = start_dashboard("--job-dir", str(root), "--poll", "0.5")
    tab = new_page()
    page = tab.page
    (root / "broken" / "runs.parquet").write_text("not parquet")
    page.goto(dashboard.url + "/")
    page.locator('tr[data-job-id="good"]').wait_for()
    broken = page.locator('tr[data-job-id="broken"]')
    assert broken.locator("[data-col=state]").inner_text() == "unreadable"
    assert "cannot read the runs table" in broken.inner_text()
    page.goto(dashboard.url + "/#/job/broken")
    error = page.get_by_test_id("error")
    error.wait_for()
    assert "cannot read the runs table" in error.inner_text()
    page.goto(dashboard.url + "/#/job/no-such-job")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=error]')]"
        ".some(e => e.textContent.includes(\"no job 'no-such-job'\"))"
    )
    # the good job still renders
    page.goto(dashboard.url + "/#/job/good")
    page.wait_for_selector("#page[data-rendered]")
    assert page.get_by_test_id("job-state").inner_text() == "completed"


# ---------------------------------------------------------------------------------- report


def test_report_renders_offline_with_the_same_numbers(tmp_path, new_page, finished_job, artifacts):
    from mixopt.reporting.views import ViewOptions

    mlflow_url = "http://mlflow.example:5000"
    report = write_report(
        finished_job,
        tmp_path / "report.html",
        png=False,
        options=ViewOptions(mlflow_url=mlflow_url),
    )
    tab = new_page()
    page = tab.page
    # the network is cut: a report must carry everything it draws with
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort(),
    )
    page.goto(report.html.as_uri())
    page.wait_for_selector("#job[data-rendered]")
    check_job_page(page, finished_job, mlflow_url=mlflow_url)
    assert all(url.startswith("file:") for url in tab.requests), tab.requests
    assert tab.errors == []
    page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    # intervals of the recommendation are on the page
    text = page.locator('section[data-view="recommendation"]').inner_text()
    assert re.search(r"95% interval \[\d+\.\d+, \d+\.\d+\]", text)
    assert np.isfinite(number(page.get_by_test_id("coverage95").get_attribute("data-value")))


def test_report_shows_the_scale_section_with_job_text_as_text(tmp_path, new_page, finished_job):
    """The Scale section of a job with a target: the table's numbers are recommendation.json's,
    the objective-vs-N figure is drawn on a log axis, and text from the job (a flag holding
    markup) is shown as text, never run."""
    from tests.mixopt.reporting.jobs import target_scale_section, with_target_scale

    hostile = "<img src=x onerror=\"document.body.dataset.owned='yes'\">edge"
    section = target_scale_section(flags=[hostile])
    job_dir = with_target_scale(finished_job, tmp_path / "job", section)
    tab = open_report(new_page, job_dir, tmp_path)
    page = tab.page
    scale = page.locator('section[data-view="scale"]')
    assert scale.get_attribute("data-available") == "true"
    for label, mixture in section["mixtures"].items():
        row = scale.locator(f'[data-testid=scale-table] tr[data-label="{label}"]')
        assert number(row.locator("[data-col=objective]").inner_text()) == pytest.approx(
            mixture["objective"], abs=6e-5
        )
        assert number(row.locator("[data-col=at-proxy]").inner_text()) == pytest.approx(
            mixture["objective_at_proxy"], abs=6e-5
        )
        for domain in DOMAINS:
            shown = row.locator(f'[data-domain="{domain}"]').inner_text()
            assert number(shown) == pytest.approx(mixture["weights"][domain], abs=6e-4)
    for source in section["calibration"]["mixtures"]:
        row = scale.locator(f'[data-testid=calibration-table] tr[data-label="{source["label"]}"]')
        assert number(row.locator("[data-col=observed]").inner_text()) == pytest.approx(
            source["observed"], abs=6e-5
        )
    mape = float(page.get_by_test_id("calibration-mape").get_attribute("data-value"))
    assert mape == pytest.approx(section["calibration"]["mape"])
    axis = page.evaluate("() => document.getElementById('fig-scale').layout.xaxis.type")
    assert axis == "log"
    assert scale.locator("#fig-scale .main-svg").count() > 0
    assert page.get_by_test_id("scale-flags").inner_text() == hostile
    assert scale.locator("img").count() == 0
    assert page.evaluate("() => document.body.dataset.owned") is None
    assert tab.errors == []


def open_report(new_page: Any, job_dir: Path, tmp_path: Path) -> Any:
    """A job's report (views only, no PNGs), opened and rendered in a new tab."""
    from mixopt.reporting.views import ViewOptions

    report = write_report(
        job_dir, tmp_path / "report.html", png=False, options=ViewOptions(analysis=False)
    )
    tab = new_page()
    tab.page.goto(report.html.as_uri())
    tab.page.wait_for_selector("#job[data-rendered]")
    return tab


def test_report_shows_the_pareto_section_with_job_text_as_text(tmp_path, new_page, finished_job):
    """The Pareto section: the guard-rail table's numbers and held/not held are the job's, the
    front is drawn with the chosen point marked, and text from the job is shown as text."""
    from tests.mixopt.reporting.test_pareto import pareto_section, validated_checks, with_pareto

    hostile = "<img src=x onerror=\"document.body.dataset.owned='yes'\">least violating"
    section, _ = pareto_section(reason=hostile)
    checks, _ = validated_checks()
    job_dir = with_pareto(finished_job, tmp_path / "job", section, checks)
    tab = open_report(new_page, job_dir, tmp_path)
    page = tab.page
    pareto = page.locator('section[data-view="pareto"]')
    assert pareto.get_attribute("data-available") == "true"
    for rail, check in zip(section["guard_rails"], checks, strict=True):
        row = pareto.locator(f'[data-testid=pareto-guard-rails] tr[data-metric="{rail["metric"]}"]')
        assert number(row.locator("[data-col=limit]").inner_text()) == pytest.approx(
            rail["limit"], abs=6e-5
        )
        assert number(row.locator("[data-col=validated]").inner_text()) == pytest.approx(
            check["value"], abs=6e-5
        )
        held = row.locator("[data-col=held]")
        assert held.get_attribute("data-held") == str(check["held"]).lower()
        assert held.inner_text() == ("held" if check["held"] else "not held")
    names = page.evaluate("() => document.getElementById('fig-pareto').data.map(t => t.name)")
    assert "chosen" in names and "limit on val_loss/code" in names
    assert pareto.locator("#fig-pareto .main-svg").count() > 0
    assert page.get_by_test_id("pareto-reason").inner_text() == hostile
    assert pareto.locator("img").count() == 0
    assert page.evaluate("() => document.body.dataset.owned") is None
    assert tab.errors == []


def test_report_shows_the_mixture_over_training_for_a_staged_job_only(
    tmp_path, new_page, finished_job
):
    """A staged job's report has the "Mixture over training" section (its table's weights are
    recommendation.json's stages, its stacked bars drawn); a single-stage job's has none."""
    from tests.mixopt.reporting.jobs import make_staged_job

    job_dir = make_staged_job(tmp_path / "staged")
    rec = json.loads((job_dir / "recommendation.json").read_text())
    tab = open_report(new_page, job_dir, tmp_path / "staged")
    page = tab.page
    section = page.locator('section[data-view="stages"]')
    assert section.get_attribute("data-available") == "true"
    assert page.locator('nav.toc a[data-section-link="stages"]').count() == 1
    views = page.evaluate(
        "() => Array.from(document.querySelectorAll('section[data-view]')).map(s => s.dataset.view)"
    )
    assert views.index("stages") == views.index("mixtures") + 1
    for index, stage in enumerate(rec["stages"]):
        for domain in DOMAINS:
            cell = section.locator(f'tr[data-domain="{domain}"] td[data-stage="{index}"]')
            assert number(cell.inner_text()) == pytest.approx(stage["weights"][domain], abs=6e-5)
    assert section.get_by_test_id("stage-ranges").locator("li").count() == len(rec["stages"])
    assert section.locator("#fig-stages .main-svg").count() > 0
    traces = page.evaluate("() => document.getElementById('fig-stages').data.map(t => t.name)")
    assert traces == list(DOMAINS)
    assert tab.errors == []

    single = open_report(new_page, finished_job, tmp_path / "single").page
    assert single.locator('section[data-view="stages"]').count() == 0
    assert single.locator('nav.toc a[data-section-link="stages"]').count() == 0
    assert single.locator('section[data-view="mixtures"]').count() == 1
