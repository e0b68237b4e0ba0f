"""``mixopt report``: a self-contained HTML file with the job's view model, and PNG figures.
(tests/dashboards/test_browser.py opens the HTML in Chromium and reads the numbers off it.)"""

import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from mixopt.cli.main import app
from mixopt.report import figures, write_report
from tests.mixopt.reporting.jobs import inlined_model


def test_report_is_self_contained_and_carries_the_views(tmp_path, finished_job):
    result = write_report(finished_job, tmp_path / "out" / "report.html")
    text = result.html.read_text()
    assert result.html == tmp_path / "out" / "report.html"
    # offline: no script, style or image is fetched from anywhere
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+href=", text)
    assert not re.search(r"<img[^>]+src=[\"']https?:", text)
    # (plotly.js itself carries URLs of map tiles, fetched only by geo plots; the browser test
    # loads the report with the network blocked and checks that every view renders)
    assert "Plotly" in text and "MixoptViews" in text
    model = inlined_model(text)
    runs = pd.read_parquet(finished_job / "runs.parquet")
    assert model["job"]["trials_completed"] == len(runs)
    assert model["views"]["trace"]["points"][0]["objective"] == pytest.approx(
        runs.sort_values("trial_id")["objective"].iloc[0]
    )
    assert model["views"]["spec"]["yaml"] == (finished_job / "spec.yaml").read_text()
    assert model == json.loads(json.dumps(result.model))


def test_report_pngs_are_the_views_figures(tmp_path, finished_job):
    from PIL import Image

    result = write_report(finished_job, tmp_path / "r.html")
    names = [p.stem for p in result.pngs]
    assert names == list(figures(result.model))
    assert {"trace", "mixtures", "predictor", "interaction", "validation", "moe_load"} <= set(names)
    for path in result.pngs:
        assert path.parent == tmp_path / "r-figures"
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 500 and image.height > 300
            # not a blank canvas: a figure has many colours
            assert len(image.convert("RGB").getcolors(maxcolors=1_000_000) or []) > 20


def test_report_command(tmp_path, finished_job):
    out = tmp_path / "job-report.html"
    result = CliRunner().invoke(app, ["report", str(finished_job), "--out", str(out), "--no-png"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    assert out.is_file() and not (tmp_path / "job-report-figures").exists()


def test_report_command_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'nope'}: no such job directory" in result.output
    (tmp_path / "plain").mkdir()
    result = runner.invoke(app, ["report", str(tmp_path / "plain")])
    assert result.exit_code == 2 and "not a mixopt job directory" in result.output
    result = runner.invoke(app, ["report", str(tmp_path / "plain"), "--predictor", "magic"])
    assert result.exit_code == 2 and "unknown predictor 'magic'; available:" in result.output
