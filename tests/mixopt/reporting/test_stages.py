"""The "mixture over training" view: a staged job's recommendation stage by stage (its weights
per stage, the range of the run, the whole run's mixture, a stacked bar per stage), in the view
model and the report; a single-stage job has no such view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixopt.report import figures, write_report
from mixopt.reporting.jobdata import load_job_dir
from mixopt.reporting.views import ViewOptions, build_views
from tests.mixopt.reporting.jobs import (
    DOMAINS,
    STAGED_TARGET_TOKENS,
    inlined_model,
    make_staged_job,
)

OFF = ViewOptions(analysis=False)


@pytest.fixture(scope="module")
def staged_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_staged_job(tmp_path_factory.mktemp("staged-report"))


def test_staged_recommendation_has_the_mixture_over_training(staged_job: Path) -> None:
    rec = json.loads((staged_job / "recommendation.json").read_text())
    view = build_views(load_job_dir(staged_job), OFF)["views"]["stages"]
    assert view["available"] and view["domains"] == list(DOMAINS)
    rows = view["stages"]
    assert [r["name"] for r in rows] == [s["name"] for s in rec["stages"]] == ["main", "anneal"]
    assert [r["searched"] for r in rows] == [False, True]
    assert [(r["start"], r["end"]) for r in rows] == [(0.0, 0.7), (0.7, 1.0)]
    assert rows[1]["tokens"] == pytest.approx([0.7 * STAGED_TARGET_TOKENS, STAGED_TARGET_TOKENS])
    for row, stage in zip(rows, rec["stages"], strict=True):
        assert row["weights"] == pytest.approx(stage["weights"], abs=1e-6)
        assert sum(row["weights"].values()) == pytest.approx(1.0, abs=1e-9)
    assert rows[1]["weights"] == pytest.approx(rec["weights"], abs=1e-6)  # the searched stage
    for domain in DOMAINS:
        consumed = sum(s["share"] * s["weights"][domain] for s in rec["stages"])
        assert view["overall"][domain] == pytest.approx(consumed, abs=1e-6)
    bars = view["figure"]["data"]
    assert view["figure"]["layout"]["barmode"] == "stack"
    assert [b["name"] for b in bars] == list(DOMAINS)
    assert all(b["x"] == [r["x"] for r in rows] for b in bars)  # one bar per stage, in order
    assert "70%" in rows[0]["x"] and "30%" in rows[1]["x"]  # each stage with its share
    for i in range(len(rows)):  # each stage's stacked bar reaches 1
        assert sum(b["y"][i] for b in bars) == pytest.approx(1.0, abs=1e-9)


def test_the_report_shows_the_view_for_a_staged_job_only(
    staged_job: Path, finished_job: Path, tmp_path: Path
) -> None:
    staged = write_report(staged_job, tmp_path / "staged.html", options=OFF)
    model = inlined_model(staged.html.read_text())
    assert model["views"]["stages"]["available"]
    assert list(model["views"]).index("stages") == list(model["views"]).index("mixtures") + 1
    assert "stages" in figures(model)
    png = tmp_path / "staged-figures" / "stages.png"
    assert png in staged.pngs and png.stat().st_size > 0

    single = write_report(finished_job, tmp_path / "single.html", png=False, options=OFF)
    assert "stages" not in inlined_model(single.html.read_text())["views"]
    assert "stages" not in figures(single.model)


def test_a_staged_job_without_a_recommendation_says_why(staged_job: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(staged_job, copy)
    (copy / "recommendation.json").unlink()
    view = build_views(load_job_dir(copy), OFF)["views"]["stages"]
    assert not view["available"] and view["reason"].startswith("no recommendation yet")
    rec = json.loads((staged_job / "recommendation.json").read_text())
    rec["stages"] = [{"name": "main", "share": 1.0}]
    (copy / "recommendation.json").write_text(json.dumps(rec))
    view = build_views(load_job_dir(copy), OFF)["views"]["stages"]
    assert not view["available"] and "stages.0 must have a share and weights" in view["reason"]
