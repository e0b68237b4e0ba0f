"""The Scale view and its reader: recommendation.json's ``target_scale`` section (numbers from a
stand-in law, see tests/mixopt/reporting/jobs.py) shown in the view model and the report."""

import json

import numpy as np
import pytest

from mixopt.report import write_report
from mixopt.reporting.jobdata import load_job_dir, read_target_scale
from mixopt.reporting.views import ViewOptions, build_views
from mixopt.reporting.views.scale import scale_view
from tests.mixopt.reporting.jobs import (
    DOMAINS,
    PROXY_SIZE,
    TARGET,
    VALIDATION_SIZE,
    PowerLaw,
    split_report,
    target_scale_section,
    with_target_scale,
)

FAST = ViewOptions(analysis=False)


@pytest.fixture(scope="module")
def scaled_job(finished_job, tmp_path_factory):
    section = target_scale_section(flags=["far from every trial (nearest L1 distance 0.61)"])
    return with_target_scale(finished_job, tmp_path_factory.mktemp("scale") / "job", section)


def test_the_view_shows_each_mixture_at_the_target_and_at_the_proxy(scaled_job):
    written = json.loads((scaled_job / "recommendation.json").read_text())["target_scale"]
    view = build_views(load_job_dir(scaled_job), FAST)["views"]["scale"]
    assert view["available"]
    assert view["params"] == TARGET[0] and view["tokens"] == TARGET[1]
    assert view["law"] == "joint" and view["fitted_on"] == written["fitted_on"]
    assert view["domains"] == list(DOMAINS)
    assert [r["label"] for r in view["rows"]] == [
        "recommended",
        "proxy_optimum",
        "natural",
        "uniform",
    ]
    law = PowerLaw()
    for row in view["rows"]:
        w = np.array([row["weights"][d] for d in DOMAINS])
        assert row["weights"] == pytest.approx(written["mixtures"][row["label"]]["weights"])
        assert row["objective"] == pytest.approx(law.value(w, *TARGET))
        assert row["objective_std"] == pytest.approx(law.std(TARGET[0]))
        assert row["objective_at_proxy"] == pytest.approx(law.value(w, *PROXY_SIZE))
    assert view["rows"][1]["name"] == "proxy optimum"
    # the laws' extrapolation scores; NaN and errors read as missing
    scores = {s["law"]: s for s in view["scores"]}
    assert scores["joint"]["chosen"] and not scores["bimix"]["chosen"]
    assert scores["joint"]["mape"] == pytest.approx(0.031)
    assert scores["bimix"]["spearman"] is None
    assert scores["nested"]["error"] == "too few sizes" and scores["nested"]["mape"] is None
    assert view["shrink"] == pytest.approx(0.01)
    assert view["unshrunk"]["predicted"] == pytest.approx(2.5)
    assert view["flags"] == written["flags"]
    assert view["notes"] == []


def test_the_calibration_compares_the_law_with_what_validation_measured(scaled_job):
    written = json.loads((scaled_job / "recommendation.json").read_text())["target_scale"]
    calibration = scale_view(load_job_dir(scaled_job))["calibration"]
    assert calibration["params"] == VALIDATION_SIZE[0]
    assert calibration["tokens"] == VALIDATION_SIZE[1]
    rows = {r["label"]: r for r in calibration["rows"]}
    assert set(rows) == {r["label"] for r in written["calibration"]["mixtures"]}
    for source in written["calibration"]["mixtures"]:
        row = rows[source["label"]]
        assert row["predicted"] == pytest.approx(source["predicted"])
        assert row["observed"] == pytest.approx(source["observed"])
        assert row["error"] == pytest.approx(source["predicted"] - source["observed"])
        assert row["at_search_scale"] == pytest.approx(source["at_search_scale"])
    predicted = np.array([r["predicted"] for r in calibration["rows"]])
    observed = np.array([r["observed"] for r in calibration["rows"]])
    assert calibration["mape"] == pytest.approx(np.mean(np.abs(predicted - observed) / observed))
    assert calibration["spearman_law"] == pytest.approx(0.8)
    assert calibration["spearman_search_scale"] == pytest.approx(0.4)


def test_the_figure_runs_from_the_proxy_to_the_target_on_a_log_axis(scaled_job):
    figure = scale_view(load_job_dir(scaled_job))["figure"]
    assert figure["layout"]["xaxis"]["type"] == "log"
    lines = [t for t in figure["data"] if t["mode"] == "lines+markers"]
    assert [t["name"] for t in lines] == ["recommended", "proxy optimum", "natural", "uniform"]
    law = PowerLaw()
    written = json.loads((scaled_job / "recommendation.json").read_text())["target_scale"]
    tokens = written["curves"]["tokens"]
    for trace, label in zip(lines, written["mixtures"], strict=True):
        w = np.array([written["mixtures"][label]["weights"][d] for d in DOMAINS])
        assert trace["x"][0] == pytest.approx(PROXY_SIZE[0])
        assert trace["x"][-1] == pytest.approx(TARGET[0])
        expected = [law.value(w, n, d) for n, d in zip(trace["x"], tokens, strict=True)]
        assert trace["y"] == pytest.approx(expected)
        assert trace["y"][-1] == pytest.approx(written["mixtures"][label]["objective"])
        assert trace["error_y"]["array"] == pytest.approx([law.std(n) for n in trace["x"]])
    gap = scale_view(load_job_dir(scaled_job))["figure_gap"]
    natural = written["curves"]["objective"]["natural"]
    assert [t["name"] for t in gap["data"]] == ["recommended", "proxy optimum", "uniform"]
    for trace, label in zip(gap["data"], ["recommended", "proxy_optimum", "uniform"], strict=True):
        own = written["curves"]["objective"][label]
        assert trace["y"] == pytest.approx([a - b for a, b in zip(own, natural, strict=True)])
    measured = next(t for t in figure["data"] if t["mode"] == "markers")
    assert measured["x"] == [VALIDATION_SIZE[0]] * 4
    assert sorted(measured["y"]) == pytest.approx(
        sorted(r["observed"] for r in written["calibration"]["mixtures"])
    )


def test_the_report_carries_the_section_and_its_figure_escaped(tmp_path, finished_job):
    hostile = "</script><script>alert('flag')</script>"
    section = target_scale_section(flags=[hostile])
    section["law"] = "<img src=x onerror=alert(1)>"
    job_dir = with_target_scale(finished_job, tmp_path / "job", section)
    result = write_report(job_dir, tmp_path / "report.html", options=FAST)
    text = result.html.read_text()
    # the job's text stays inside the model's JSON, which no '</script' can end early
    outside, model = split_report(text)
    assert hostile not in text and "alert('flag')" not in outside
    assert "<img src=x" not in outside and "</script" not in model
    inlined = json.loads(model)["views"]["scale"]
    assert inlined["flags"] == [hostile] and inlined["law"] == section["law"]
    assert inlined["rows"][0]["objective"] == pytest.approx(
        section["mixtures"]["recommended"]["objective"]
    )
    assert {"scale", "scale_gap"} <= {p.stem for p in result.pngs}
    assert (tmp_path / "report-figures" / "scale.png").stat().st_size > 10_000


def test_without_a_target_or_without_a_law_the_view_says_why(tmp_path, finished_job):
    # the shared job's spec names no target
    view = scale_view(load_job_dir(finished_job))
    assert not view["available"] and "sets no target scale" in view["reason"]
    reason = "3 finished search trials; the laws need at least 4"
    job_dir = with_target_scale(
        finished_job, tmp_path / "unfitted", {"available": False, "reason": reason}
    )
    view = scale_view(load_job_dir(job_dir))
    assert not view["available"] and view["reason"].endswith(reason)
    job = load_job_dir(finished_job)
    job.recommendation = None
    job.job_spec = None
    assert "fitted when the search ends" in scale_view(job)["reason"]


def test_the_reader_is_lenient_and_says_what_it_could_not_read():
    assert read_target_scale(None) is None
    assert read_target_scale({"weights": {}}) is None
    broken = read_target_scale({"target_scale": ["not", "a", "mapping"]})
    assert broken is not None and not broken.available and "not a mapping" in broken.reason
    section = target_scale_section()
    section["mixtures"]["odd"] = "not a mapping"
    section["mixtures"]["natural"]["objective"] = "high"
    section["curves"]["objective"]["uniform"] = [1.0, 2.0]  # not one value per size
    del section["calibration"]
    section["flags"] = "not a list"
    read = read_target_scale({"target_scale": section})
    assert read is not None and read.available
    assert "odd" not in read.mixtures and read.mixtures["natural"].objective is None
    assert read.curves is not None and set(read.curves.objective) == {
        "recommended",
        "proxy_optimum",
        "natural",
    }
    assert read.calibration is None and read.flags == []
    assert any("mixtures.odd" in p for p in read.problems)
    assert any("curves.objective.uniform" in p for p in read.problems)
    # older jobs wrote no curves: no figure, no complaint
    del section["curves"]
    older = read_target_scale({"target_scale": section})
    assert older is not None and older.curves is None
    assert not any("curves" in p for p in older.problems)


def test_an_averaged_law_marks_each_member_with_its_weight(finished_job, tmp_path):
    section = target_scale_section()
    section["law"] = "joint 0.70 + bimix 0.30"
    section["scores"]["joint"]["weight"] = 0.7
    section["scores"]["bimix"] = {"mape": 0.05, "spearman": 0.8, "weight": 0.3}
    job = with_target_scale(finished_job, tmp_path / "job", section)
    view = build_views(load_job_dir(job), FAST)["views"]["scale"]
    scores = {s["law"]: s for s in view["scores"]}
    assert scores["joint"]["chosen"] and scores["bimix"]["chosen"]
    assert not scores["nested"]["chosen"]
    assert scores["joint"]["weight"] == pytest.approx(0.7)
    assert scores["bimix"]["weight"] == pytest.approx(0.3)
    assert view["law"] == "joint 0.70 + bimix 0.30"
