"""A job's process, as a user or the service runs it: ``mixopt run`` / ``mixopt resume`` in real
processes that train real (tiny) proxies.

- Cancelling (SIGTERM) stops the job promptly on every runner: the trial in progress does not
  train on, the CLI exits 3, ``job.json`` says cancelled, MLflow's job run is KILLED, and a
  later ``mixopt resume`` finishes the job.
- One process owns a job directory: a second ``run`` or ``resume`` of a running job is refused;
  once its owner is killed, the kernel's lock is gone and ``resume`` goes on. Directory names
  are unique even for jobs started at the same instant.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.conftest import corpus_domains
from tests.mixopt.service.conftest import wait_for

REPO = Path(__file__).resolve().parents[3]


def write_spec(tmp_path: Path, train_tokens: int, trials: int = 2) -> Path:
    spec = {
        "name": "lifecycle",
        "output_dir": str(tmp_path / "runs"),
        "domains": corpus_domains(),
        "data": {"cache_dir": str(tmp_path / "cache")},
        "tokenizer": {"vocab_size": 300, "sample_bytes_per_domain": 20_000},
        "proxy": {"preset": "tiny", "seq_len": 32, "batch_size": 4, "train_tokens": train_tokens},
        "search": {"initial_trials": trials, "rounds": 0, "strategy": "random"},
        "validate": {"enabled": False},
        "resources": {"max_concurrent_trials": 1},
        "tracking": {"enabled": True},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def start(*args: str | Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXOPT_")}
    command = [sys.executable, "-m", "mixopt.cli.main", *[str(a) for a in args]]
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def status(job_dir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((job_dir / "job.json").read_text()))
    except (OSError, ValueError):
        return {}


def training(job_dir: Path, pid: int) -> dict[str, Any]:
    """Wait until process ``pid`` owns the job and trains a trial."""
    return wait_for(
        lambda: status(job_dir),
        lambda s: s.get("pid") == pid and s.get("status") == "running" and bool(s.get("running")),
        timeout=300,
        interval=0.2,
    )


def mlflow_job_status(job_dir: Path) -> str:
    with sqlite3.connect(job_dir / "mlflow.db") as db:
        rows = db.execute(
            "SELECT runs.status FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
            "WHERE tags.key = 'mixopt.kind' AND tags.value = 'job'"
        ).fetchall()
    assert len(rows) == 1, rows
    return str(rows[0][0])


def completed_trials(job_dir: Path) -> set[str]:
    if not (job_dir / "runs.parquet").exists():
        return set()
    runs = pd.read_parquet(job_dir / "runs.parquet")
    return set(runs.loc[runs["status"] == "completed", "trial_id"])


def kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["local", "ray"])
def test_sigterm_cancels_the_job_on_every_runner_and_resume_finishes_it(tmp_path, runner):
    job_dir, log = tmp_path / "job", tmp_path / "run.log"
    spec = write_spec(tmp_path, train_tokens=60_000)
    process = start("run", spec, "--job-dir", job_dir, "--runner", runner, log=log)
    try:
        running = training(job_dir, process.pid)
        interrupted = set(running["running"])
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=180)
    finally:
        kill_group(process)
    output = log.read_text()
    assert code == 3, output
    assert "error: cancelled (SIGTERM)" in output and "Traceback" not in output
    final = status(job_dir)
    assert final["status"] == "cancelled", final
    assert not interrupted & completed_trials(job_dir)  # the trial in progress did not go on
    assert mlflow_job_status(job_dir) == "KILLED"

    resumed = start("resume", job_dir, "--runner", runner, log=log)
    try:
        assert resumed.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        kill_group(resumed)
    assert status(job_dir)["status"] == "completed"
    assert completed_trials(job_dir) == {"t0000", "t0001"}
    assert mlflow_job_status(job_dir) == "FINISHED"


@pytest.mark.slow
def test_one_process_owns_a_job_directory(tmp_path):
    job_dir, log = tmp_path / "job", tmp_path / "run.log"
    spec = write_spec(tmp_path, train_tokens=400_000)
    owner = start("run", spec, "--job-dir", job_dir, "--runner", "local", log=log)
    second = None
    try:
        training(job_dir, owner.pid)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIXOPT_")}
        again = subprocess.run(
            [sys.executable, "-m", "mixopt.cli.main", "resume", str(job_dir), "--runner", "local"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 2, again.stderr
        assert f"the job is running (pid {owner.pid} on" in again.stderr
        rerun = subprocess.run(
            [sys.executable, "-m", "mixopt.cli.main", "run", str(spec), "--job-dir", str(job_dir)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rerun.returncode == 2 and "already exists and is not empty" in rerun.stderr
        assert status(job_dir)["pid"] == owner.pid  # neither touched the owner's job

        kill_group(owner)  # no cleanup at all: the kernel drops the lock with the process
        second = start("resume", job_dir, "--runner", "local", log=log)
        training(job_dir, second.pid)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=180) == 3, log.read_text()[-3000:]
    finally:
        kill_group(owner)
        if second is not None:
            kill_group(second)


def test_job_directories_started_at_the_same_instant_are_distinct(tmp_path):
    go = tmp_path / "go"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from mixopt.job import JobDir\n"
        "while not Path(sys.argv[1]).exists(): time.sleep(0.001)\n"
        "print(JobDir.create(sys.argv[2], 'same').path)\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(go), str(tmp_path / "runs")],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    time.sleep(2.0)  # let them all reach the start line
    go.touch()
    paths = [p.communicate(timeout=120)[0].strip() for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert len(set(paths)) == 8 and all(Path(p).is_dir() for p in paths)
