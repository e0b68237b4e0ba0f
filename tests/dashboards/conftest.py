"""The dashboard as a real server process, and a real headless Chromium driven by Playwright.

Chromium is Debian's (``/usr/bin/chromium``; ``$MIXOPT_CHROMIUM`` overrides): the session
installs it with apt when it is missing and this is a root Debian machine (as CI is), and fails
with what to install otherwise. Screenshots go to ``$MIXOPT_TEST_ARTIFACTS/dashboards``
(default ``test-artifacts/dashboards`` in the repository), kept after the run.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.mixopt.reporting.jobs import shared_finished_job
from tests.processes import ServerProcess, apt_install, free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="session")
def finished_job() -> Path:
    """A finished, MLflow-tracked MoE job (shared with tests/mixopt/reporting; read only)."""
    return shared_finished_job()


class Dashboard(ServerProcess):
    """``mixopt dashboard`` in its own process on a free loopback port; ``get`` sends the
    dashboard's token (``$MIXOPT_DASHBOARD_TOKEN`` of ``env``) when it has one."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        port = free_port()
        command = [str(Path(sys.executable).with_name("mixopt")), "dashboard", *args]
        super().__init__([*command, "--port", str(port)], env, log, port, "/health")
        self.token = (env or {}).get("MIXOPT_DASHBOARD_TOKEN")

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=60.0, **kwargs)


@pytest.fixture
def start_dashboard(tmp_path: Path) -> Iterator[Any]:
    started: list[Dashboard] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Dashboard:
        log = tmp_path / f"dashboard-{len(started)}.log"
        dashboard = Dashboard(list(args), log, env)
        started.append(dashboard)
        return dashboard.start()

    yield start
    for dashboard in started:
        dashboard.stop()


# ------------------------------------------------------------------------------- browser


def _find_chromium() -> str | None:
    configured = os.environ.get("MIXOPT_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = _find_chromium()
    if path is None:
        problem = apt_install("chromium")
        path = _find_chromium()
        if path is None:
            pytest.fail(
                "the dashboard's browser tests need Chromium: install Debian's `chromium` "
                f"(apt-get install chromium) or set MIXOPT_CHROMIUM ({problem or 'not found'})"
            )
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            yield launched
        finally:
            launched.close()


class Page:
    """A browser tab that records console errors, page errors and every request it makes."""

    def __init__(self, browser: Any, width: int = 1400, height: int = 900) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    pages: list[Page] = []

    def make(**kwargs: Any) -> Page:
        page = Page(browser, **kwargs)
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    root = Path(os.environ.get("MIXOPT_TEST_ARTIFACTS", REPO / "test-artifacts"))
    folder = root / "dashboards"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
