"""The tracker contract. Code never branches on "is tracking on": it calls a NullTracker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixopt.trials import Trial


class Tracker:
    """Base class and null implementation: every call does nothing."""

    def start_job(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> None: ...

    def log_trial(self, trial: Trial) -> None: ...

    def log_job_metrics(self, metrics: dict[str, float]) -> None: ...

    def log_artifact(self, path: Path) -> None: ...

    def finish(self, status: str) -> None: ...

    def describe(self) -> str:
        return "no tracking"


NullTracker = Tracker
