"""The runner contract: ``submit`` a request, ``poll`` for finished ones, ``cancel`` one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from mixopt.trials import TrialRequest


@dataclass(frozen=True)
class RunnerEvent:
    """A request that stopped: with its result, or with an error and whether a retry may cure it."""

    trial_id: str
    result: dict[str, Any] | None = None
    error: str = ""
    retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.result is not None


class Runner(ABC):
    """Executes trial requests. The driver keeps the count of running ones under its cap."""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (connect to a cluster, start workers)."""

    @abstractmethod
    def submit(self, request: TrialRequest) -> None: ...

    def submit_group(self, requests: list[TrialRequest], *, stacking: str, max_stack: int) -> None:
        """Submit trials that may be trained together (stacked); by default one by one."""
        for request in requests:
            self.submit(request)

    @abstractmethod
    def poll(self, timeout: float) -> list[RunnerEvent]:
        """Events of requests that stopped, waiting up to ``timeout`` seconds for the first."""

    @abstractmethod
    def cancel(self, trial_id: str) -> None: ...

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release resources; running requests are cancelled."""

    def describe(self) -> str:
        return type(self).__name__

    def __enter__(self) -> Runner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def is_environmental(error: BaseException) -> bool:
    """Failures of the machine, not of the trial (a full disk, memory): worth a retry."""
    return isinstance(error, OSError | MemoryError)


def group_events(results: list[dict[str, Any]]) -> list[RunnerEvent]:
    """Events from ``mixopt.worker.execute_group`` results (a failed trial carries ``error``)."""
    events = []
    for result in results:
        if "error" in result and "metrics" not in result:
            events.append(RunnerEvent(result["trial_id"], error=str(result["error"])))
        else:
            events.append(RunnerEvent(result["trial_id"], result=result))
    return events
