"""In-process runner: runs one request per ``poll`` in the calling process (tests, debugging)."""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from mixopt.runners.base import Runner, RunnerEvent
from mixopt.trials import TrialRequest
from mixopt.worker import execute_trial


class InProcessRunner(Runner):
    def __init__(self, execute: Callable[[TrialRequest], dict[str, Any]] = execute_trial) -> None:
        self.execute = execute
        self._queue: deque[TrialRequest] = deque()

    def submit(self, request: TrialRequest) -> None:
        self._queue.append(request)

    def poll(self, timeout: float) -> list[RunnerEvent]:
        if not self._queue:
            return []
        request = self._queue.popleft()
        try:
            return [RunnerEvent(request.trial_id, result=self.execute(request))]
        except Exception as error:  # a trial's failure must not stop the job
            detail = "".join(traceback.format_exception_only(error)).strip()
            return [RunnerEvent(request.trial_id, error=detail, retryable=False)]

    def cancel(self, trial_id: str) -> None:
        self._queue = deque(r for r in self._queue if r.trial_id != trial_id)
