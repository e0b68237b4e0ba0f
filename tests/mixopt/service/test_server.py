"""The service as a real uvicorn server process on a free loopback port, driven by the CLI.

Fast tests run a server whose jobs are ``fake_job.py``; the slow ones run ``mixopt serve``
with real (tiny) mixopt jobs, kill the server with SIGKILL mid-job and restart it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from mixopt.cli.main import app as cli_app
from tests.conftest import ASSETS
from tests.mixopt.service.conftest import TOKENS, spec_dict, wait_for
from tests.processes import ServerProcess as Server
from tests.processes import free_port

REPO = Path(__file__).resolve().parents[3]
TOKEN = TOKENS["alice"]
FINAL = ("completed", "failed", "cancelled")


def server_env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXOPT_")}
    env.update(MIXOPT_TOKEN=TOKEN, MIXOPT_SERVICE_DIR=str(state_dir))
    env.update(extra)
    return env


def kill_job_processes(state_dir: Path) -> None:
    """End job processes a test left behind (their pids are in job.json)."""
    for status in state_dir.glob("jobs/*/run/job.json"):
        try:
            pid = json.loads(status.read_text()).get("pid")
        except ValueError:
            continue
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def cli(*args: str) -> Any:
    result = CliRunner().invoke(cli_app, list(args), env={"MIXOPT_TOKEN": TOKEN})
    return result


# -------------------------------------------------------------------- fast: fake jobs, real HTTP


@contextlib.contextmanager
def fake_service(
    tmp_path: Path, data_roots: list[Path] | None = None, **extra: str
) -> Iterator[Server]:
    """The real service over HTTP on a free port, its jobs run by ``fake_job.py`` (``extra``:
    more of fake_server.py's settings, e.g. ``MIXOPT_TEST_MIXED_JOBS="1"``)."""
    state = tmp_path / "state"
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "tests.mixopt.service.fake_server:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    roots = os.pathsep.join(str(r) for r in data_roots or [ASSETS])
    env = server_env(state, MIXOPT_TEST_DATA_ROOTS=roots, **extra)
    server = Server(command, env, tmp_path / "server.log", port).start()
    try:
        yield server
    finally:
        server.stop()
        kill_job_processes(state)


@pytest.fixture
def fake_server(tmp_path):
    with fake_service(tmp_path) as server:
        yield server


def write_spec(tmp_path: Path, name: str, **sections: Any) -> Path:
    path = tmp_path / f"{name}.yaml"
    spec = spec_dict(name, **sections)
    spec["domains"][0]["paths"] = [str(ASSETS / "corpus" / "code")]
    spec["domains"][1]["paths"] = [str(ASSETS / "corpus" / "bible" / "*.txt")]
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_cli_drives_a_real_server(fake_server, tmp_path):
    url = fake_server.url
    spec = write_spec(tmp_path, "cli-job")
    submitted = cli("submit", str(spec), "--server", url)
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip().splitlines()[-1]
    assert job_id.startswith("j") and len(job_id) == 13

    waited = cli("status", job_id, "--server", url, "--wait", "--interval", "0.1", "--json")
    assert waited.exit_code == 0, waited.output
    job = json.loads(waited.stdout)
    assert job["state"] == "completed" and job["trials_completed"] == 4
    human = cli("status", job_id, "--server", url)
    # the total is job.json's (the fake job plans 4 trials)
    assert human.stdout.startswith(f"job {job_id} (cli-job): completed, 4/4 trials")

    listed = cli("jobs", "--server", url)
    assert listed.exit_code == 0 and job_id in listed.stdout and "completed" in listed.stdout
    as_json = json.loads(cli("jobs", "--server", url, "--json").stdout)
    assert as_json["total"] == 1 and as_json["jobs"][0]["id"] == job_id

    exported = cli("export", job_id, "--server", url, "--format", "yaml")
    assert exported.exit_code == 0, exported.output
    assert yaml.safe_load(exported.stdout)["mixture"] == {"a": 0.25, "b": 0.75}
    out = tmp_path / "mix.json"
    written = cli("export", job_id, "--server", url, "--out", str(out))
    assert written.exit_code == 0 and json.loads(out.read_text())["mixture"]["b"] == 0.75

    logs = cli("logs", job_id, "--server", url, "--source", "job")
    assert logs.exit_code == 0 and "completed" in logs.stdout

    resumed = cli("resume", job_id, "--server", url)
    assert resumed.exit_code == 2
    assert f"409: job {job_id} is completed; nothing to resume" in resumed.output


def test_cli_cancel_and_resume_on_a_real_server(fake_server, tmp_path):
    url = fake_server.url
    submitted = cli("submit", str(write_spec(tmp_path, "slow-cli")), "--server", url)
    job_id = submitted.stdout.split()[-1]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        wait_for(lambda: client.get(f"/jobs/{job_id}").json(), lambda j: j["state"] == "running")
        cancelled = cli("cancel", job_id, "--server", url)
        assert cancelled.exit_code == 0 and cancelled.stdout.strip() == f"job {job_id}: cancelling"
        done = wait_for(lambda: client.get(f"/jobs/{job_id}").json(), lambda j: j["state"] in FINAL)
        assert done["state"] == "cancelled"
        waited = cli("status", job_id, "--server", url, "--wait")
        assert waited.exit_code == 1  # --wait: not completed
        resumed = cli("resume", job_id, "--server", url)
        assert resumed.exit_code == 0, resumed.output
        assert resumed.stdout.startswith(f"job {job_id}: ")
        wait_for(lambda: client.get(f"/jobs/{job_id}").json(), lambda j: j["state"] == "running")
        client.post(f"/jobs/{job_id}/cancel")
        wait_for(lambda: client.get(f"/jobs/{job_id}").json(), lambda j: j["state"] in FINAL)


def test_cli_reports_server_errors_clearly(fake_server, tmp_path):
    url = fake_server.url
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**spec_dict("bad"), "proxy": {"seq_len": 2}}))
    result = cli("submit", str(bad), "--server", url)
    assert result.exit_code == 2
    assert "422: spec: proxy.seq_len: Input should be greater than or equal to 8" in result.output
    assert "Traceback" not in result.output
    result = cli("status", "jmissing", "--server", url)
    assert result.exit_code == 2 and "404: no job 'jmissing'" in result.output
    wrong = CliRunner().invoke(
        cli_app, ["jobs", "--server", url], env={"MIXOPT_TOKEN": "not-the-token-at-all"}
    )
    assert wrong.exit_code == 2 and "401: missing or invalid bearer token" in wrong.output
    closed = cli("jobs", "--server", f"http://127.0.0.1:{free_port()}")
    assert closed.exit_code == 2 and "cannot reach http://127.0.0.1:" in closed.output
    none = CliRunner().invoke(cli_app, ["jobs", "--server", url], env={"MIXOPT_TOKEN": ""})
    assert none.exit_code == 2 and "no token: set MIXOPT_TOKEN" in none.output


def test_docs_are_served_by_the_real_server(fake_server):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.get(f"{fake_server.url}/openapi.json", headers=headers)
    assert response.status_code == 200 and response.json()["info"]["title"] == "mixopt"
    assert httpx.get(f"{fake_server.url}/openapi.json").status_code == 401


# ----------------------------------------------------------- slow: mixopt serve, real mixopt jobs


def mixopt_serve(tmp_path: Path, port: int) -> Server:
    state = tmp_path / "state"
    command = [sys.executable, "-m", "mixopt.cli.main", "serve", "--port", str(port)]
    command += ["--state-dir", str(state), "--data-root", str(ASSETS), "--runner", "local"]
    command += ["--poll-interval", "0.2", "--log-level", "warning"]
    return Server(command, server_env(state), tmp_path / "server.log", port)


def real_spec(tmp_path: Path, name: str, initial: int = 4) -> Path:
    return write_spec(
        tmp_path,
        name,
        search={
            "initial_trials": initial,
            "rounds": 1,
            "trials_per_round": 2,
            "strategy": "random",
        },
        validate={"seeds": 1, "baselines": ["uniform"]},
    )


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIXOPT_TOKEN": TOKEN}
    command = [sys.executable, "-m", "mixopt.cli.main", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)


def status_json(url: str, job_id: str) -> dict[str, Any]:
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        return dict(client.get(f"{url}/jobs/{job_id}").json())


def check_runs_table(job_dir: Path, expected: int) -> Any:
    import pandas as pd

    runs = pd.read_parquet(job_dir / "runs.parquet")
    assert runs["trial_id"].is_unique, runs["trial_id"].tolist()
    assert len(runs) == expected and set(runs["status"]) == {"completed"}
    return runs


@pytest.mark.slow
def test_real_job_through_mixopt_serve(tmp_path):
    server = mixopt_serve(tmp_path, free_port()).start()
    try:
        submitted = run_cli("submit", str(real_spec(tmp_path, "real")), "--server", server.url)
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip().splitlines()[-1]
        seen_running = []

        def fetch() -> dict[str, Any]:
            job = status_json(server.url, job_id)
            if job["state"] == "running" and job["trials_completed"] > 0:
                seen_running.append(job)
            return job

        done = wait_for(fetch, lambda j: j["state"] in FINAL, timeout=400, interval=0.5)
        assert done["state"] == "completed", done
        assert seen_running and seen_running[-1]["best_objective"] is not None
        assert seen_running[-1]["eta_s"] is not None

        status = run_cli("status", job_id, "--server", server.url, "--json")
        assert status.returncode == 0, status.stderr
        job = json.loads(status.stdout)
        assert job["state"] == "completed" and job["trials_completed"] == 4 + 2 + 3

        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            rec = client.get(f"{server.url}/jobs/{job_id}/recommendation").json()
        assert sum(rec["weights"].values()) == pytest.approx(1.0, abs=1e-6)
        assert set(rec["weights"]) == {"code", "bible", "dictionary"}
        exported = run_cli("export", job_id, "--server", server.url, "--format", "yaml")
        assert exported.returncode == 0, exported.stderr
        mixture = yaml.safe_load(exported.stdout)["mixture"]
        assert mixture == pytest.approx({d: round(w, 6) for d, w in rec["weights"].items()})
        job_dir = tmp_path / "state" / job["job_dir"]  # the API names it relative to the state
        check_runs_table(job_dir, 4 + 2 + 3)  # search; recommended, natural, halfway
        from mixopt.export import FORMATS

        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            for fmt in FORMATS:  # every export format, served from the job directory
                response = client.get(f"{server.url}/jobs/{job_id}/export", params={"format": fmt})
                assert response.status_code == 200, (fmt, response.text)
                assert response.text.strip(), fmt
        local = run_cli("export", str(job_dir), "--format", "json")
        remote = run_cli("export", job_id, "--server", server.url, "--format", "json")
        # the server's export is the local one, without the server's own paths
        assert str(tmp_path) not in remote.stdout
        local_doc, remote_doc = json.loads(local.stdout), json.loads(remote.stdout)
        assert remote_doc["mixture"] == local_doc["mixture"]
        assert remote_doc.keys() == local_doc.keys()
        no_data = run_cli("export", job_id, "--server", server.url, "--data-dir", str(tmp_path))
        assert no_data.returncode == 2 and "use it without --server" in no_data.stderr
    finally:
        server.stop()
        kill_job_processes(tmp_path / "state")


@pytest.mark.slow
@pytest.mark.parametrize("kill_job_too", [False, True], ids=["server-only", "server-and-job"])
def test_server_killed_mid_job_and_restarted(tmp_path, kill_job_too):
    """SIGKILL the server mid-job and start it again on the same state: the job finishes.
    With the server alone killed, the job runs on and the new server adopts it; with the job's
    process killed too, the new server resumes it (`mixopt resume`: finished trials kept)."""
    port = free_port()
    server = mixopt_serve(tmp_path, port).start()
    restarted = None
    try:
        spec = real_spec(tmp_path, "survivor", initial=6)
        submitted = run_cli("submit", str(spec), "--server", server.url)
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip().splitlines()[-1]
        mid = wait_for(
            lambda: status_json(server.url, job_id),
            lambda j: j["trials_completed"] >= 2 or j["state"] in FINAL,
            timeout=300,
            interval=0.2,
        )
        assert mid["state"] == "running", mid
        job_dir = tmp_path / "state" / mid["job_dir"]
        server.kill()
        pid = json.loads((job_dir / "job.json").read_text())["pid"]
        if kill_job_too:
            os.killpg(pid, signal.SIGKILL)
            time.sleep(0.5)
            import pandas as pd

            before = pd.read_parquet(job_dir / "runs.parquet")
            before = before[before["status"] == "completed"].set_index("trial_id")["objective"]
            assert len(before) >= 2
        restarted = mixopt_serve(tmp_path, port).start()
        done = wait_for(
            lambda: status_json(restarted.url, job_id),
            lambda j: j["state"] in FINAL,
            timeout=400,
            interval=0.5,
        )
        assert done["state"] == "completed", done
        assert done["resumes"] == (1 if kill_job_too else 0)
        runs = check_runs_table(job_dir, 6 + 2 + 3)
        if kill_job_too:  # the trials finished before the kill were kept, not retrained
            after = runs.set_index("trial_id")["objective"]
            assert after.loc[before.index].tolist() == before.tolist()
            log = (job_dir.parent / "process.log").read_text()
            assert "mixopt resume" in log
        else:
            assert json.loads((job_dir / "job.json").read_text())["pid"] == pid
    finally:
        for s in (server, restarted):
            if s is not None:
                s.stop()
        kill_job_processes(tmp_path / "state")
