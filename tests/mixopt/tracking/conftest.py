"""A real ``mlflow server`` process for the tracking tests (SQLite store, local artifacts)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URI of an ``mlflow server`` started for this test session, stopped at its end."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    exe = Path(sys.executable).parent / "mlflow"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]
    command += [
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        command, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        """Stop the server's own process group (the CLI, uvicorn and its helper): politely,
        then, as uvicorn waits for the test clients' keep-alive connections, by force."""
        for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGKILL also reaps lingering helpers
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=3 if sig == signal.SIGTERM else 15)
        log.close()

    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop()
                tail = (root / "server.log").read_text()[-3000:]
                pytest.fail(f"mlflow server did not come up on {url}:\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        stop()
