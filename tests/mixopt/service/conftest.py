"""Fixtures of the service tests: settings over a temporary state directory, an API client,
tiny specs over the asset corpus, and a stand-in job process (``fake_job.py``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ASSETS, CORPUS
from tests.processes import apt_install, free_port

FAKE_JOB = Path(__file__).with_name("fake_job.py")
TOKENS = {"alice": "alice-token-0123456789abcdef", "bob": "bob-token-0123456789abcdef00"}
ALICE = {"Authorization": f"Bearer {TOKENS['alice']}"}
BOB = {"Authorization": f"Bearer {TOKENS['bob']}"}
TINY_PROXY = {
    "preset": "tiny",
    "seq_len": 32,
    "batch_size": 4,
    "train_tokens": 12000,
    "eval_tokens": 2048,
}


def spec_dict(name: str = "tiny", **sections: Any) -> dict[str, Any]:
    """A tiny real spec over the asset corpus (relative paths resolve against ASSETS)."""
    spec: dict[str, Any] = {
        "name": name,
        "domains": [
            {"name": "code", "paths": ["corpus/code"]},
            {"name": "bible", "paths": ["corpus/bible/*.txt"]},
            {"name": "dictionary", "paths": [str(CORPUS / "dictionary")]},
        ],
        "tokenizer": {"vocab_size": 300, "sample_bytes_per_domain": 20000},
        "proxy": dict(TINY_PROXY),
        "search": {"initial_trials": 4, "rounds": 1, "trials_per_round": 2},
        "validate": {"seeds": 1, "baselines": ["uniform", "natural"]},
        "tracking": {"enabled": False},
    }
    spec.update(sections)
    return spec


def spec_yaml(name: str = "tiny", **sections: Any) -> str:
    return yaml.safe_dump(spec_dict(name, **sections), sort_keys=False)


def wait_for(
    fetch: Callable[[], dict[str, Any]],
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 30.0,
    interval: float = 0.05,
) -> dict[str, Any]:
    """Poll ``fetch`` until ``done`` holds; fail with the last answer after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = fetch()
    while not done(last):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s; last: {last}")
        time.sleep(interval)
        last = fetch()
    return last


@pytest.fixture
def service_settings(tmp_path: Path) -> Callable[..., Any]:
    """ServiceSettings over tmp_path (data roots: the test assets); fake jobs unless told."""
    from mixopt.service.settings import ServiceSettings

    def make(**overrides: Any) -> ServiceSettings:
        values: dict[str, Any] = {
            "tokens": dict(TOKENS),
            "state_dir": tmp_path / "state",
            "data_roots": [ASSETS],
            "runner": "local",
            "poll_interval_s": 0.05,
            "cancel_grace_s": 1.0,
            "job_command": (sys.executable, str(FAKE_JOB)),
        }
        values.update(overrides)
        return ServiceSettings(**values)

    return make


@pytest.fixture
def api(service_settings: Callable[..., Any]) -> Iterator[Any]:
    """A TestClient of the service (supervisor running, fake jobs)."""
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app

    app = create_app(service_settings())
    with TestClient(app) as client:
        yield client
    _kill_jobs(app.state.store)


def _kill_jobs(store: Any) -> None:
    """End job processes a test left running (by the pids the store recorded)."""
    import signal

    jobs, _ = store.list_jobs(limit=1000)
    for job in jobs:
        if job.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGKILL)


@pytest.fixture
def kill_jobs() -> Callable[[Any], None]:
    return _kill_jobs


# ------------------------------------------------------------------------------- PostgreSQL


def _postgres_bindir() -> Path | None:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server in a temporary folder on a free loopback port (installed with
    apt if missing); yields its admin URL (no database)."""
    bindir = _postgres_bindir()
    if bindir is None:
        problem = apt_install("postgresql")
        bindir = _postgres_bindir()
        if bindir is None:
            pytest.skip(problem or "PostgreSQL's initdb not found after installing it")
    base = Path(tempfile.mkdtemp(prefix="mixopt-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as 'postgres'
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
            account = pwd.getpwnam("postgres")
        os.chown(base, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()

    def run(*command: str) -> None:
        result = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
            raise RuntimeError(f"{command[0]} failed: {result.stdout}{result.stderr}{log}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(base / "server.log"),
        "-w",
        "-o",
        options,
        "start",
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the test server."""
    import sqlalchemy as sa

    name = f"mixopt_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{postgres_server}/{name}"
