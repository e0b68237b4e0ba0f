"""The API load benchmark runs end to end (a small run: a real server, a second process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "experiments" / "bench" / "api_load.py"


def test_api_load_benchmark_reports_latencies_without_errors():
    command = [sys.executable, str(SCRIPT), "--requests", "120", "--concurrency", "4"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["requests"] == 120 and summary["errors"] == 0, summary
    assert 0 < summary["p50_ms"] <= summary["p99_ms"]
    assert set(summary["by_kind"]) == {"status", "list", "dry_run", "invalid"}
    assert sum(k["requests"] for k in summary["by_kind"].values()) == 120
