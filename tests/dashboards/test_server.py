"""The dashboard's HTTP API over a real server process: job directories and a real service."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from mixopt.cli.main import app as cli_app
from tests.mixopt.service.conftest import wait_for
from tests.mixopt.service.test_server import TOKEN, cli, fake_service, server_env, write_spec

DASHBOARD_TOKEN = "dashboard-token-0123456789"


def test_api_over_job_directories(tmp_path, start_dashboard, finished_job):
    root = tmp_path / "runs"
    shutil.copytree(finished_job, root / "good")
    shutil.copytree(finished_job, root / "broken")
    (root / "broken" / "runs.parquet").write_text("not parquet")
    dashboard = start_dashboard("--job-dir", str(root), "--poll", "0.5", "--predictor", "linear")

    config = dashboard.get("/api/config").json()
    assert config["poll_s"] == 0.5 and config["predictor"] == "linear"
    assert config["sources"] == [f"directory {root.resolve()}"]

    listed = {j["id"]: j for j in dashboard.get("/api/jobs").json()["jobs"]}
    assert set(listed) == {"good", "broken"}
    runs = pd.read_parquet(root / "good" / "runs.parquet")
    good = listed["good"]
    assert good["state"] == "completed" and good["trials_completed"] == len(runs)
    search = runs[runs["stage"] == "search"]
    assert good["best_objective"] == pytest.approx(search["objective"].min())
    assert listed["broken"]["state"] == "unreadable"
    assert "cannot read the runs table" in listed["broken"]["error"]

    model = dashboard.get("/api/jobs/good").json()
    assert model["id"] == "good" and model["job"]["state"] == "completed"
    assert model["views"]["predictor"]["predictor"] == "linear"
    assert len(model["views"]["trials"]["rows"]) == len(runs)

    # a new job appears in the list without a restart
    shutil.copytree(finished_job, root / "later")
    assert "later" in {j["id"] for j in dashboard.get("/api/jobs").json()["jobs"]}

    unknown = dashboard.get("/api/jobs/nope")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "no job 'nope'"}
    broken = dashboard.get("/api/jobs/broken")
    assert broken.status_code == 422 and "cannot read the runs table" in broken.json()["detail"]
    # the page and its assets are served locally
    assert "mixopt dashboard" in dashboard.get("/").text
    assert dashboard.get("/vendor/plotly.min.js").status_code == 200
    assert "MixoptViews" in dashboard.get("/assets/views.js").text


def test_dashboard_command_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli_app, ["dashboard", "--job-dir", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such job directory" in result.output
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    result = runner.invoke(cli_app, ["dashboard", "--job-dir", str(tmp_path / "notes")])
    assert result.exit_code == 2 and "not a mixopt job directory" in result.output
    result = runner.invoke(cli_app, ["dashboard", "--job-dir", str(tmp_path), "--poll", "0"])
    assert result.exit_code == 2 and "--poll must be > 0" in result.output


@pytest.fixture
def service(tmp_path):
    with fake_service(tmp_path) as server:
        yield server


def test_api_over_a_service(tmp_path, service, start_dashboard):
    submitted = cli("submit", str(write_spec(tmp_path, "served")), "--server", service.url)
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip().splitlines()[-1]
    wait = cli("status", job_id, "--server", service.url, "--wait")
    assert wait.exit_code == 0, wait.output

    env = {**server_env(tmp_path / "unused"), "MIXOPT_TOKEN": TOKEN}
    env["MIXOPT_DASHBOARD_TOKEN"] = DASHBOARD_TOKEN  # --server: the dashboard needs its own
    dashboard = start_dashboard("--server", service.url, env=env)
    config = dashboard.get("/api/config").json()
    assert config["sources"] == [f"service {service.url}"]
    listed = wait_for(
        lambda: dashboard.get("/api/jobs").json(),
        lambda body: any(j["id"] == job_id for j in body["jobs"]),
    )
    job = next(j for j in listed["jobs"] if j["id"] == job_id)
    assert job["state"] == "completed" and job["source"] == f"service {service.url}"
    assert job["best_objective"] == pytest.approx(4.2)
    model = dashboard.get(f"/api/jobs/{job_id}").json()
    assert model["job"]["state"] == "completed"
    assert model["views"]["recommendation"]["available"]
    assert model["views"]["recommendation"]["weights"] == {"a": 0.25, "b": 0.75}
    assert "name: served" in model["views"]["spec"]["yaml"]
    assert dashboard.get("/api/jobs/unknown-job").status_code == 404


def test_a_wrong_service_token_stops_the_dashboard_at_start(tmp_path, service):
    result = CliRunner().invoke(
        cli_app, ["dashboard", "--server", service.url], env={"MIXOPT_TOKEN": "wrong"}
    )
    assert result.exit_code != 0
    assert "401" in result.output or "token" in result.output.lower()


def test_a_running_job_read_mid_write_gets_one_more_look(tmp_path, monkeypatch):
    """A running job rewrites its files after every trial: a failed read is retried once; a
    finished job's failure is reported at once."""
    import os

    import dashboards.sources as sources
    from mixopt.errors import MixoptError
    from tests.mixopt.reporting.jobs import RunningJob

    def bump(job_dir):  # a new version of the job's files (job.json's mtime)
        status = job_dir / "job.json"
        stat = status.stat()
        os.utime(status, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))

    real = sources.load_job_dir
    calls = []

    def flaky(path, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            raise MixoptError("runs.parquet: cannot read the runs table: truncated")
        return real(path, **kwargs)

    running = RunningJob(tmp_path, finish=6).start()
    try:
        registry = sources.JobRegistry(sources.DirectorySource([running.job_dir]))
        assert registry.model("running")["job"]["state"] == "running"
        monkeypatch.setattr(sources, "load_job_dir", flaky)
        bump(running.job_dir)
        assert registry.model("running")["job"]["trials_completed"] == 6
        assert len(calls) == 2
    finally:
        running.release()
    monkeypatch.setattr(sources, "load_job_dir", real)
    assert registry.model("running")["job"]["state"] == "completed"
    calls.clear()
    monkeypatch.setattr(sources, "load_job_dir", flaky)
    bump(running.job_dir)
    with pytest.raises(MixoptError, match="truncated"):
        registry.model("running")
    assert len(calls) == 1


def test_a_job_page_carries_the_scale_view_behind_the_guard(tmp_path, finished_job):
    """/api/jobs/{id} serves the Scale view read from recommendation.json's target_scale, to a
    request from an allowed host with the dashboard's token, and to nobody else."""
    from fastapi.testclient import TestClient

    from dashboards.server import create_app
    from dashboards.sources import DirectorySource, JobRegistry
    from mixopt.reporting.views import ViewOptions
    from tests.mixopt.reporting.jobs import target_scale_section, with_target_scale

    section = target_scale_section(flags=["<b>at the simplex's edge</b>"])
    root = tmp_path / "runs"
    with_target_scale(finished_job, root / "scaled", section)
    with_target_scale(finished_job, root / "plain", None)
    registry = JobRegistry(DirectorySource([root]), options=ViewOptions(analysis=False))
    app = create_app(registry, token=DASHBOARD_TOKEN)
    auth = {"Authorization": f"Bearer {DASHBOARD_TOKEN}"}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/jobs/scaled").status_code == 401
        foreign = TestClient(app, base_url="http://evil.example")
        assert foreign.get("/api/jobs/scaled", headers=auth).status_code == 403
        response = client.get("/api/jobs/scaled", headers=auth)
        assert response.status_code == 200
        view = response.json()["views"]["scale"]
        assert view["available"] and view["law"] == section["law"]
        rows = {r["label"]: r for r in view["rows"]}
        for label, mixture in section["mixtures"].items():
            assert rows[label]["objective"] == pytest.approx(mixture["objective"])
            assert rows[label]["objective_at_proxy"] == pytest.approx(mixture["objective_at_proxy"])
        # the job's text is data for the page to set as text, never markup built here
        assert view["flags"] == section["flags"]
        assert view["calibration"]["mape"] == pytest.approx(section["calibration"]["mape"])
        lines = [t for t in view["figure"]["data"] if t["mode"] == "lines+markers"]
        assert lines[0]["y"] == pytest.approx(section["curves"]["objective"]["recommended"])
        plain = client.get("/api/jobs/plain", headers=auth).json()["views"]["scale"]
        assert not plain["available"] and "no target scale" in plain["reason"]
        # the page draws it with the shared script, which sets every job text as text
        script = client.get("/assets/views.js", headers=auth).text
        assert "render.scale" in script


def test_a_job_page_carries_the_pareto_view(tmp_path, finished_job):
    """/api/jobs/{id} serves the Pareto view read from recommendation.json's pareto section and
    its guard-rail checks; the page script draws it."""
    from fastapi.testclient import TestClient

    from dashboards.server import create_app
    from dashboards.sources import DirectorySource, JobRegistry
    from mixopt.reporting.views import ViewOptions
    from tests.mixopt.reporting.test_pareto import pareto_section, validated_checks, with_pareto

    section, _ = pareto_section(reason="<b>least violating</b>")
    checks, _ = validated_checks()
    root = tmp_path / "runs"
    with_pareto(finished_job, root / "traded", section, checks)
    registry = JobRegistry(DirectorySource([root]), options=ViewOptions(analysis=False))
    app = create_app(registry, token=DASHBOARD_TOKEN)
    auth = {"Authorization": f"Bearer {DASHBOARD_TOKEN}"}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/jobs/traded").status_code == 401
        view = client.get("/api/jobs/traded", headers=auth).json()["views"]["pareto"]
        assert view["available"] and view["front_size"] == len(section["front"])
        assert view["chosen"]["reason"] == section["chosen"]["reason"]  # text, not markup
        assert [r["held"] for r in view["guard_rails"]] == [c["held"] for c in checks]
        chosen = next(t for t in view["figure"]["data"] if t["name"] == "chosen")
        assert chosen["y"] == pytest.approx([section["chosen"]["predicted"]["val_loss/code"]])
        script = client.get("/assets/views.js", headers=auth).text
        assert "render.pareto" in script and '"pareto-guard-rails"' in script
