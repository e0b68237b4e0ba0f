"""Test doubles, shipped in one place: synthetic trial executors and a scripted runner.

They stand in for proxy training where a test is about the search logic, not the model: the
synthetic executor's losses are a known function of the mixture, so a test can check that the
loop finds its optimum, and the scripted runner injects worker deaths to exercise retries; the
flaky tracker fails tracking calls on demand. Every component they replace also has an
integration test with the real part.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.runners.base import Runner, RunnerEvent
from mixopt.tracking.base import Tracker
from mixopt.trials import Trial, TrialRequest


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


def synthetic_eval_losses(weights: dict[str, float], evals: list[str]) -> dict[str, float]:
    """Known losses on eval sets: eval set ``k`` is text like the ``k``-th domain (sorted, cycled),
    so its loss is 0.8 of that domain's loss plus 0.2 of the mean domain loss; ``bpb/<eval>`` is
    its loss in bits at 0.3 tokens per byte."""
    losses = synthetic_losses(weights)
    domains = sorted(weights)
    mean = float(np.mean(list(losses.values())))
    out = {}
    for k, name in enumerate(evals):
        loss = 0.8 * losses[f"val_loss/{domains[k % len(domains)]}"] + 0.2 * mean
        out[f"val_loss/{name}"] = loss
        out[f"bpb/{name}"] = float(loss / np.log(2) * 0.3)
    return out


def consumed_mixture(request: TrialRequest) -> dict[str, float]:
    """What a request's whole run trains on: its mixture, or with stages each domain's
    share-weighted weight over the stages (the searched stage takes the request's mixture)."""
    if not request.train.stages:
        return dict(request.weights)
    out = {d: 0.0 for d in request.weights}
    for stage in request.train.stages:
        weights = request.weights if stage.weights is None else stage.weights
        for domain, weight in weights.items():
            out[domain] = out.get(domain, 0.0) + stage.share * weight
    return out


def synthetic_execute(request: TrialRequest) -> dict[str, Any]:
    """A stand-in for :func:`mixopt.worker.execute_trial` with the shape of its result (eval
    sets' metrics from :func:`synthetic_eval_losses`). A staged request's losses are those of
    the mixture its whole run consumes (:func:`consumed_mixture`), and it reports each stage's
    tokens per domain (nominal: tokens x share x weight)."""
    mixture = consumed_mixture(request)
    metrics = synthetic_losses(mixture)
    metrics.update(synthetic_eval_losses(mixture, [e.name for e in request.evals]))
    tokens = int(request.train.train_tokens)
    staged = {}
    if request.train.stages:
        staged["stage_tokens"] = [
            {
                d: round(tokens * stage.share * w)
                for d, w in (request.weights if stage.weights is None else stage.weights).items()
            }
            for stage in request.train.stages
        ]
    return {
        **staged,
        "metrics": metrics,
        "curve": [(tokens // 2, 4.0), (tokens, 3.0)],
        "tokens": tokens,
        "flops": 6.0 * tokens,
        "wall_s": 0.01,
        "tokens_per_s": tokens / 0.01,
        "device": "synthetic",
        "n_params": 0,
    }


def slow_synthetic_execute(request: TrialRequest, sleep_s: float = 6.0) -> dict[str, Any]:
    """:func:`synthetic_execute` after sleeping ``sleep_s`` seconds, with when and in which
    process it ran (for tests that kill workers or nodes mid-trial)."""
    import os
    import time

    started = time.time()
    markers = os.environ.get("MIXOPT_TEST_MARKERS")  # lets a test see that a trial started
    if markers:
        (Path(markers) / f"{request.trial_id}.{os.getpid()}.started").touch()
    time.sleep(sleep_s)
    result = synthetic_execute(request)
    result.update(started_at=started, finished_at=time.time(), pid=os.getpid())
    return result


def quick_synthetic_execute(request: TrialRequest) -> dict[str, Any]:
    """:func:`slow_synthetic_execute` without the sleep (still reports its process)."""
    return slow_synthetic_execute(request, sleep_s=0.0)


class ScriptedRunner(Runner):
    """Runs requests with an executor, in order, and fails chosen attempts as a dead worker would.

    ``die`` maps a trial id to how many of its attempts die (retryable) before one succeeds;
    ``finished`` lists the trials that completed, in the order they did.
    """

    def __init__(self, execute: Any = synthetic_execute, die: dict[str, int] | None = None) -> None:
        self.execute = execute
        self.die = dict(die or {})
        self.submitted: list[str] = []
        self.finished: list[str] = []
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
                events.append(self._run(request))
        return events

    def _run(self, request: TrialRequest) -> RunnerEvent:
        event = RunnerEvent(request.trial_id, result=self.execute(request))
        self.finished.append(request.trial_id)
        return event

    def cancel(self, trial_id: str) -> None:
        self._queue = deque(r for r in self._queue if r.trial_id != trial_id)


class FlakyTracker(Tracker):
    """A tracker that fails on demand, as a flaky or dead tracking server would.

    Every call first counts an attempt in ``attempts``; it then raises ``ConnectionError`` while
    ``down`` is true or while ``fail_next`` > 0 (which it decrements), and a permanent
    ``ValueError`` for methods named in ``reject``. A call that gets through is recorded in
    ``calls`` as ``(method, args, kwargs)``, so a test sees exactly what was delivered, in order.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.attempts: list[str] = []
        self.down = False
        self.fail_next = 0
        self.reject: set[str] = set()

    def _enter(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.attempts.append(method)
        if self.down:
            raise ConnectionError(f"{method}: connection refused (injected)")
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError(f"{method}: connection reset (injected)")
        if method in self.reject:
            raise ValueError(f"{method}: rejected (injected)")
        self.calls.append((method, args, kwargs))

    def delivered(self, method: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for name, args, kwargs in self.calls if name == method]

    def start_job(
        self, name: str, params: dict[str, Any], tags: dict[str, str], *, run_id: str | None = None
    ) -> None:
        self._enter("start_job", name, params, tags, run_id=run_id)

    def log_trial(
        self,
        trial: Trial,
        *,
        row: Mapping[str, Any] | None = None,
        request: TrialRequest | None = None,
    ) -> None:
        self._enter("log_trial", trial, row=row, request=request)

    def log_predictor_fit(
        self,
        name: str,
        cv_scores: Mapping[str, Any],
        params: Mapping[str, Any],
        *,
        round: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._enter("log_predictor_fit", name, cv_scores, params, round=round, tags=tags)

    def log_job_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        self._enter("log_job_metrics", metrics, step=step)

    def log_artifact(self, path: Path, *, artifact_path: str | None = None) -> None:
        self._enter("log_artifact", path, artifact_path=artifact_path)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self._enter("log_dict", data, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self._enter("log_figure", figure, artifact_file)

    def finish(self, status: str) -> None:
        self._enter("finish", status)

    def describe(self) -> str:
        return "flaky test tracker"
