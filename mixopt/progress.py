"""Progress views of a running job: a live terminal panel, or plain log lines.

The loop reports through :class:`Progress` only (stage messages and trial snapshots), so the same
job runs under a terminal, in CI logs, or inside the service with no display at all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Snapshot:
    """What a progress view shows about the job right now."""

    stage: str = ""
    total: int = 0
    completed: int = 0
    running: list[str] = field(default_factory=list)
    failed: int = 0
    best: float | None = None
    best_trial: str = ""
    last: str = ""


class Progress:
    """Silent progress (the base class): used by tests and the service."""

    def message(self, text: str) -> None: ...

    def update(self, snapshot: Snapshot) -> None: ...

    def close(self) -> None: ...


class LogProgress(Progress):
    """One line per stage message and per finished trial; for logs and non-terminals."""

    def __init__(self, write: Callable[[str], Any] | None = None) -> None:
        self.write = write or (lambda text: print(text, file=sys.stderr, flush=True))
        self._last_done = -1

    def message(self, text: str) -> None:
        self.write(text)

    def update(self, snapshot: Snapshot) -> None:
        done = snapshot.completed + snapshot.failed
        if done == self._last_done:
            return
        self._last_done = done
        best = "-" if snapshot.best is None else f"{snapshot.best:.4f} ({snapshot.best_trial})"
        self.write(
            f"[{snapshot.stage}] {snapshot.completed}/{snapshot.total} done, "
            f"{len(snapshot.running)} running, {snapshot.failed} failed, best {best}"
            + (f" | {snapshot.last}" if snapshot.last else "")
        )


class RichProgress(Progress):
    """A live panel on the terminal: trials done / running / failed and the best so far."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self._live = Live(console=self.console, refresh_per_second=4, transient=False)
        self._live.start()
        self._started = time.monotonic()
        self._snapshot = Snapshot()

    def message(self, text: str) -> None:
        self.console.print(text)

    def update(self, snapshot: Snapshot) -> None:
        from rich.table import Table

        self._snapshot = snapshot
        table = Table.grid(padding=(0, 2))
        elapsed = time.monotonic() - self._started
        best = "-" if snapshot.best is None else f"{snapshot.best:.4f}  ({snapshot.best_trial})"
        table.add_row("[bold]stage", snapshot.stage, "[bold]elapsed", f"{elapsed:,.0f} s")
        table.add_row(
            "[bold]trials",
            f"{snapshot.completed}/{snapshot.total} done",
            "[bold]running",
            ", ".join(snapshot.running) or "-",
        )
        table.add_row("[bold]failed", str(snapshot.failed), "[bold]best", best)
        if snapshot.last:
            table.add_row("[bold]last", snapshot.last, "", "")
        self._live.update(table)

    def close(self) -> None:
        self._live.stop()


def default_progress() -> Progress:
    return RichProgress() if sys.stderr.isatty() else LogProgress()
