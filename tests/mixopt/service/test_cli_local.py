"""The client commands without a server: they work on local job directories."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from mixopt.cli.main import app
from tests.mixopt.service.conftest import spec_dict

cli = CliRunner()


def job_dir_with(tmp_path, **status):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    state = {"job": "local", "host": platform.node(), "trials_total": 9, **status}
    (job_dir / "job.json").write_text(json.dumps(state))
    (job_dir / "job.log").write_text("".join(f"line {i}\n" for i in range(10)))
    return job_dir


def test_status_of_a_running_local_job(tmp_path):
    job_dir = job_dir_with(
        tmp_path,
        status="running",
        pid=os.getpid(),
        trials_completed=3,
        best_objective=4.5,
        eta_s=12.0,
    )
    result = cli.invoke(app, ["status", str(job_dir), "--json"], env={"MIXOPT_SERVER": ""})
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["state"] == "running" and info["trials_completed"] == 3
    assert info["trials_total"] == 9 and info["best_objective"] == 4.5 and info["eta_s"] == 12.0
    human = cli.invoke(app, ["status", str(job_dir)], env={"MIXOPT_SERVER": ""})
    assert human.stdout.startswith(
        f"job {job_dir} (local): running, 3/9 trials, best 4.5000, ETA 0m12s"
    )


def test_status_of_a_local_job_whose_process_died(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job_dir = job_dir_with(tmp_path, status="running", pid=dead.pid, trials_completed=1)
    result = cli.invoke(app, ["status", str(job_dir), "--json"], env={"MIXOPT_SERVER": ""})
    info = json.loads(result.stdout)
    assert info["state"] == "failed"
    assert info["error"] == f"the job's process is gone; continue it with: mixopt resume {job_dir}"


@pytest.mark.parametrize(
    ("status", "state"),
    [("completed", "completed"), ("interrupted", "cancelled"), ("failed", "failed")],
)
def test_local_states_map_to_service_states(tmp_path, status, state):
    job_dir = job_dir_with(tmp_path, status=status)
    result = cli.invoke(app, ["status", str(job_dir), "--json"], env={"MIXOPT_SERVER": ""})
    assert json.loads(result.stdout)["state"] == state


def test_local_logs_and_errors(tmp_path):
    job_dir = job_dir_with(tmp_path, status="completed")
    result = cli.invoke(app, ["logs", str(job_dir), "--tail", "2"], env={"MIXOPT_SERVER": ""})
    assert result.exit_code == 0 and result.stdout == "line 8\nline 9\n"
    missing = cli.invoke(app, ["status", str(tmp_path / "nope")], env={"MIXOPT_SERVER": ""})
    assert missing.exit_code == 2
    assert "not a job directory (no readable job.json)" in missing.output
    for command in (["cancel", "j1"], ["jobs"]):
        result = cli.invoke(app, command, env={"MIXOPT_SERVER": ""})
        assert result.exit_code == 2 and "needs --server" in result.output


def test_server_env_applies_to_client_commands_but_not_to_local_export(tmp_path):
    job_dir = job_dir_with(tmp_path, status="completed")
    (job_dir / "recommendation.json").write_text(json.dumps({"job": "x", "weights": {"a": 1.0}}))
    env = {"MIXOPT_SERVER": "http://127.0.0.1:9", "MIXOPT_TOKEN": "t" * 20}
    exported = cli.invoke(app, ["export", str(job_dir), "--format", "yaml"], env=env)
    assert exported.exit_code == 0, exported.output
    assert yaml.safe_load(exported.stdout)["mixture"] == {"a": 1.0}
    remote = cli.invoke(app, ["status", "j1"], env=env)
    assert remote.exit_code == 2 and "cannot reach http://127.0.0.1:9" in remote.output


@pytest.mark.slow
def test_local_submit_runs_in_the_background(tmp_path, assets):
    spec = spec_dict(
        "bg",
        output_dir=str(tmp_path / "runs"),
        data={"cache_dir": str(tmp_path / "cache")},
        search={"initial_trials": 3, "rounds": 0},
        validate={"enabled": False},
    )
    path = assets / "corpus"
    spec["domains"][0]["paths"] = [str(path / "code")]
    spec["domains"][1]["paths"] = [str(path / "bible" / "*.txt")]
    spec_file = tmp_path / "bg.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    env = {"MIXOPT_SERVER": ""}
    submitted = cli.invoke(app, ["submit", str(spec_file), "--runner", "local"], env=env)
    assert submitted.exit_code == 0, submitted.output
    job_dir = submitted.stdout.strip().splitlines()[-1]
    assert job_dir.startswith(str(tmp_path / "runs" / "bg-"))
    waited = cli.invoke(app, ["status", job_dir, "--wait", "--interval", "0.5", "--json"], env=env)
    info = json.loads(waited.stdout)
    assert waited.exit_code == 0 and info["state"] == "completed", info
    assert info["trials_completed"] == 3
