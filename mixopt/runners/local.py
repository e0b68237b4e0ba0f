"""In-process runner: runs one request per ``poll`` in the calling process (tests, debugging)."""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from mixopt.runners.base import Runner, RunnerEvent, group_events, is_environmental
from mixopt.trials import TrialRequest
from mixopt.worker import execute_group, execute_trial


class InProcessRunner(Runner):
    def __init__(self, execute: Callable[[TrialRequest], dict[str, Any]] = execute_trial) -> None:
        self.execute = execute
        self._queue: deque[TrialRequest | tuple[list[TrialRequest], str, int]] = deque()

    def submit(self, request: TrialRequest) -> None:
        self._queue.append(request)

    def submit_group(self, requests: list[TrialRequest], *, stacking: str, max_stack: int) -> None:
        self._queue.append((requests, stacking, max_stack))

    def poll(self, timeout: float) -> list[RunnerEvent]:
        if not self._queue:
            return []
        request = self._queue.popleft()
        if isinstance(request, tuple):
            requests, stacking, max_stack = request
            return group_events(execute_group(requests, stacking=stacking, max_stack=max_stack))
        try:
            return [RunnerEvent(request.trial_id, result=self.execute(request))]
        except Exception as error:  # a trial's failure must not stop the job
            detail = "".join(traceback.format_exception_only(error)).strip()
            retryable = is_environmental(error)
            return [RunnerEvent(request.trial_id, error=detail, retryable=retryable)]

    def cancel(self, trial_id: str) -> None:
        self._queue = deque(
            r for r in self._queue if isinstance(r, tuple) or r.trial_id != trial_id
        )
