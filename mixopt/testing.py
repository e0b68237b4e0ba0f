"""Test doubles, shipped in one place: synthetic trial executors and a scripted runner.

They stand in for proxy training where a test is about the search logic, not the model: the
synthetic executor's losses are a known function of the mixture, so a test can check that the
loop finds its optimum, and the scripted runner injects worker deaths to exercise retries. Every
component they replace also has an integration test with the real part.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from mixopt.runners.base import Runner, RunnerEvent
from mixopt.trials import TrialRequest


def synthetic_losses(weights: dict[str, float]) -> dict[str, float]:
    """A smooth, known mixing law: each domain's loss falls with its own weight (exp form),
    and a little with every other domain's (transfer). The mean-loss optimum is interior."""
    names = sorted(weights)
    w = np.array([weights[n] for n in names])
    losses = {}
    for i, name in enumerate(names):
        transfer = 0.2 * (w.sum() - w[i])
        losses[f"val_loss/{name}"] = float(2.0 + (1.0 + 0.3 * i) * np.exp(-3.0 * w[i] - transfer))
    return losses


def synthetic_execute(request: TrialRequest) -> dict[str, Any]:
    """A stand-in for :func:`mixopt.worker.execute_trial` with the shape of its result."""
    metrics = synthetic_losses(request.weights)
    tokens = int(request.train.get("train_tokens", 1000))
    return {
        "metrics": metrics,
        "curve": [(tokens // 2, 4.0), (tokens, 3.0)],
        "tokens": tokens,
        "flops": 6.0 * tokens,
        "wall_s": 0.01,
        "tokens_per_s": tokens / 0.01,
        "device": "synthetic",
        "n_params": 0,
    }


class ScriptedRunner(Runner):
    """Runs requests with an executor, in order, and fails chosen attempts as a dead worker would.

    ``die`` maps a trial id to how many of its attempts die (retryable) before one succeeds.
    """

    def __init__(self, execute: Any = synthetic_execute, die: dict[str, int] | None = None) -> None:
        self.execute = execute
        self.die = dict(die or {})
        self.submitted: list[str] = []
        self._queue: deque[TrialRequest] = deque()

    def submit(self, request: TrialRequest) -> None:
        self.submitted.append(request.trial_id)
        self._queue.append(request)

    def poll(self, timeout: float) -> list[RunnerEvent]:
        events = []
        while self._queue:
            request = self._queue.popleft()
            if self.die.get(request.trial_id, 0) > 0:
                self.die[request.trial_id] -= 1
                events.append(
                    RunnerEvent(
                        request.trial_id, error="WorkerCrashedError: injected", retryable=True
                    )
                )
            else:
                events.append(RunnerEvent(request.trial_id, result=self.execute(request)))
        return events

    def cancel(self, trial_id: str) -> None:
        self._queue = deque(r for r in self._queue if r.trial_id != trial_id)
