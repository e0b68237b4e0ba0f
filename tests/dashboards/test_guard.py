"""Attacks on a running dashboard (a real server process on loopback): DNS rebinding (a foreign
Host or Origin), symbolic links out of a job directory, and a ``--server`` dashboard re-serving
its token holder's jobs to whoever reaches its port."""

from __future__ import annotations

import os
import re
import shutil

import httpx
import pytest

from tests.dashboards.test_server import DASHBOARD_TOKEN
from tests.mixopt.service.test_server import TOKEN, cli, fake_service, server_env, write_spec

SECRET = "secret-canary-4e1b"


@pytest.fixture
def runs(tmp_path, finished_job):
    root = tmp_path / "runs"
    shutil.copytree(finished_job, root / "good")
    return root


def test_a_foreign_host_or_origin_is_refused(runs, start_dashboard):
    """DNS rebinding: a page on evil.example resolves its name to 127.0.0.1 and reads the
    dashboard as same-origin; the Host (or Origin) it sends gives it away."""
    dashboard = start_dashboard("--job-dir", str(runs), "--allow-host", "dash.internal")
    port = dashboard.port
    for headers in (
        {"Host": f"evil.example:{port}"},
        {"Host": "evil.example"},
        {"Host": f"127.0.0.1.evil.example:{port}"},
        {"Origin": "http://evil.example"},
        {"Origin": f"http://evil.example:{port}", "Host": f"localhost:{port}"},
        {"Origin": "null"},
    ):
        for path in ("/api/jobs", "/api/jobs/good", "/", "/api/config"):
            response = dashboard.get(path, headers=headers)
            assert response.status_code == 403, (headers, path, response.text)
            assert "good" not in response.text
    for headers in (
        {},
        {"Host": f"localhost:{port}"},
        {"Host": f"[::1]:{port}"},
        {"Host": f"dash.internal:{port}"},
        {"Origin": f"http://127.0.0.1:{port}"},
    ):
        response = dashboard.get("/api/jobs", headers=headers)
        assert response.status_code == 200, (headers, response.text)
        assert [j["id"] for j in response.json()["jobs"]] == ["good"]


@pytest.mark.parametrize("name", ["spec.yaml", "runs.parquet", "job.json"])
def test_links_out_of_a_job_directory_are_not_followed(tmp_path, runs, start_dashboard, name):
    secret = tmp_path / "secret.txt"
    secret.write_text(f"name: {SECRET}\n")
    shutil.copytree(runs / "good", runs / "linked")
    (runs / "linked" / name).unlink()
    (runs / "linked" / name).symlink_to(secret)
    dashboard = start_dashboard("--job-dir", str(runs))
    listed = {j["id"]: j for j in dashboard.get("/api/jobs").json()["jobs"]}
    assert listed["linked"]["state"] == "unreadable"
    assert f"{name} is a link out of the job directory" in listed["linked"]["error"]
    response = dashboard.get("/api/jobs/linked")
    assert response.status_code == 422, response.text
    assert listed["good"]["state"] == "completed"  # its neighbours are served as ever
    for text in (response.text, dashboard.get("/api/jobs").text):
        assert SECRET not in text and str(secret) not in text


def test_a_server_dashboard_needs_its_own_token(tmp_path, start_dashboard):
    with fake_service(tmp_path) as service:
        submitted = cli("submit", str(write_spec(tmp_path, "held")), "--server", service.url)
        job_id = submitted.stdout.strip().splitlines()[-1]
        assert cli("status", job_id, "--server", service.url, "--wait").exit_code == 0
        env = {**server_env(tmp_path / "unused"), "MIXOPT_TOKEN": TOKEN}
        dashboard = start_dashboard("--server", service.url, env=env)  # no dashboard token given
        url = dashboard.url
        for path in ("/api/jobs", f"/api/jobs/{job_id}", "/api/config", "/"):
            response = httpx.get(url + path)
            assert response.status_code == 401, (path, response.text)
            assert job_id not in response.text
        for wrong in ("Bearer " + TOKEN, "Bearer nope", "Basic YTpi"):
            assert httpx.get(url + "/api/jobs", headers={"Authorization": wrong}).status_code == 401
        assert httpx.get(url + "/health").status_code == 200
        printed = re.search(r"\?token=([A-Za-z0-9_\-]+)", dashboard.log.read_text())
        assert printed, dashboard.log.read_text()
        token = printed.group(1)
        opened = httpx.get(f"{url}/?token={token}", follow_redirects=False)
        assert opened.status_code == 303 and opened.headers["location"] == "/"
        assert "HttpOnly" in opened.headers["set-cookie"]
        assert "SameSite=Strict" in opened.headers["set-cookie"]
        with httpx.Client(base_url=url, cookies=opened.cookies) as browser:
            listed = browser.get("/api/jobs")
            assert listed.status_code == 200 and job_id in listed.text
            assert browser.get("/").status_code == 200
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/api/jobs/{job_id}", headers=bearer).status_code == 200
        assert httpx.get(f"{url}/?token=wrong", follow_redirects=False).status_code == 401


def test_a_token_can_guard_a_local_dashboard_too(runs, start_dashboard):
    env = {**os.environ, "MIXOPT_DASHBOARD_TOKEN": DASHBOARD_TOKEN}
    dashboard = start_dashboard("--job-dir", str(runs), env=env)
    assert httpx.get(dashboard.url + "/api/jobs").status_code == 401
    assert dashboard.get("/api/jobs").status_code == 200  # with the bearer token
