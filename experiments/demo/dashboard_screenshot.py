"""Screenshot the dashboard on a job for the README (docs/dashboard.png).

    .venv/bin/python experiments/demo/dashboard_screenshot.py [JOB_DIR] [--out docs/dashboard.png]

Starts ``mixopt dashboard`` on the job (default: the newest under runs/), opens it in headless
Chromium (Debian's, or $MIXOPT_CHROMIUM) and saves the top of the job's page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job_dir", nargs="?", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.png")
    parser.add_argument("--height", type=int, default=1500, help="Pixels of the page to keep.")
    args = parser.parse_args()
    from mixopt.reporting.jobdata import find_job_dirs

    job_dir = (args.job_dir or find_job_dirs(REPO / "runs")[0]).resolve()
    chromium = os.environ.get("MIXOPT_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        print(
            "error: needs Chromium (apt-get install chromium) or $MIXOPT_CHROMIUM", file=sys.stderr
        )
        return 2
    port = free_port()
    mixopt = str(Path(sys.executable).with_name("mixopt"))
    command = [mixopt, "dashboard", "--job-dir", str(job_dir), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/api/config", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": args.height})
            page.goto(f"{url}/#/job/{job_dir.name}")
            page.wait_for_selector("#page[data-rendered]", timeout=120_000)
            page.wait_for_timeout(1000)  # Plotly's transitions
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        server.terminate()
        server.wait(15)
    print(f"wrote {args.out} ({job_dir.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
