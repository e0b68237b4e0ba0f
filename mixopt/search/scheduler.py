"""Running a batch of trials on a runner: submit, poll, retry, and group same-shape trials.

At most ``max_concurrent`` submissions run at once; a submission is one trial, or a group of
trials of one proxy trained stacked on one GPU (``proxy.stacking``). A trial whose worker died
(a retryable failure) is queued again until ``max_retries`` are spent, then abandoned; a trial
that failed for a reason retrying cannot cure is abandoned at once. After every change the
scheduler calls ``changed()`` (the driver saves its state there), and each finished trial goes
to ``finished(trial)`` exactly once per outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mixopt.progress import Snapshot
from mixopt.runners.base import Runner, RunnerEvent
from mixopt.trials import Trial, TrialRequest, TrialStatus

if TYPE_CHECKING:
    from mixopt.spec import JobSpec


@dataclass(frozen=True)
class SchedulerHooks:
    request: Callable[[Trial], TrialRequest]
    shape: Callable[[Trial], Any]  # trials with equal shapes may be grouped
    objective: Callable[[dict[str, Any]], float]  # a completed trial's objective from its result
    finished: Callable[[Trial], None]  # record a finished trial (completed or abandoned)
    changed: Callable[[], None]  # save state
    show: Callable[[Snapshot], None]  # progress
    say: Callable[[str], None]  # a log line


class Scheduler:
    def __init__(
        self,
        runner: Runner,
        hooks: SchedulerHooks,
        *,
        max_concurrent: int,
        max_retries: int,
        group_size: int = 1,
        stacking: str = "auto",
    ) -> None:
        self.runner = runner
        self.hooks = hooks
        self.max_concurrent = max_concurrent
        self.max_retries = max_retries
        self.group_size = group_size
        self.stacking = stacking

    @classmethod
    def for_spec(cls, runner: Runner, hooks: SchedulerHooks, spec: JobSpec) -> Scheduler:
        """Concurrency, retries and stacking as the spec's resources and proxy say: trials of
        one shape are grouped (stacked) only where that can pay (GPU trials) or when asked."""
        p, r = spec.proxy, spec.resources
        stacked = p.stacking == "on" or (p.stacking == "auto" and r.gpus_per_trial > 0)
        return cls(
            runner,
            hooks,
            max_concurrent=r.max_concurrent_trials,
            max_retries=r.max_retries,
            group_size=p.max_stack if stacked else 1,
            stacking=p.stacking,
        )

    def run(self, trials: list[Trial], stage: str, best: Callable[[], Trial | None]) -> None:
        """Run the unfinished ``trials``; trials finished before a resume are recorded only."""
        for trial in trials:
            if trial.status.finished:
                self.hooks.finished(trial)
        pending = [t for t in trials if not t.status.finished]
        running: dict[str, Trial] = {}
        group_of: dict[str, int] = {}  # trial id -> submission number
        submissions = 0
        snapshot = Snapshot(stage=stage, total=len(trials))
        self._show(snapshot, running, trials, best)
        while pending or running:
            while pending and len(set(group_of.values())) < self.max_concurrent:
                shape = self.hooks.shape(pending[0])
                group = [t for t in pending if self.hooks.shape(t) == shape][: self.group_size]
                pending = [t for t in pending if t not in group]
                for trial in group:
                    trial.status = TrialStatus.RUNNING
                    trial.attempts += 1
                    running[trial.trial_id] = trial
                    group_of[trial.trial_id] = submissions
                submissions += 1
                self._submit([self.hooks.request(t) for t in group])
                self.hooks.changed()
            self._show(snapshot, running, trials, best)
            for event in self.runner.poll(timeout=1.0):
                trial = running.pop(event.trial_id)
                group_of.pop(event.trial_id)
                if self._finish(trial, event):
                    pending.append(trial)
                snapshot.last = describe(trial)
                self.hooks.changed()
            self._show(snapshot, running, trials, best)

    def _submit(self, requests: list[TrialRequest]) -> None:
        if len(requests) == 1:
            self.runner.submit(requests[0])
        else:
            self.runner.submit_group(requests, stacking=self.stacking, max_stack=self.group_size)

    def _finish(self, trial: Trial, event: RunnerEvent) -> bool:
        """Record an event; True when the trial should be retried."""
        if event.ok:
            assert event.result is not None
            result = dict(event.result)
            result["objective"] = self.hooks.objective(result)
            trial.result = result
            trial.status = TrialStatus.COMPLETED
            trial.error = ""
        else:
            trial.error = event.error
            trial.failures.append(event.error)
            retry = event.retryable and trial.attempts <= self.max_retries
            self.hooks.say(
                f"trial {trial.trial_id} failed (attempt {trial.attempts}): {event.error}"
            )
            if retry:
                trial.status = TrialStatus.QUEUED
                return True
            trial.status = TrialStatus.ABANDONED
        self.hooks.finished(trial)
        return False

    def _show(
        self,
        snapshot: Snapshot,
        running: dict[str, Trial],
        trials: list[Trial],
        best: Callable[[], Trial | None],
    ) -> None:
        snapshot.completed = sum(t.status is TrialStatus.COMPLETED for t in trials)
        snapshot.failed = sum(t.status is TrialStatus.ABANDONED for t in trials)
        snapshot.running = sorted(running)
        top = best()
        if top is not None:
            snapshot.best = top.result["objective"]
            snapshot.best_trial = top.trial_id
        self.hooks.show(snapshot)


def describe(trial: Trial) -> str:
    """One line about a finished trial, for the progress view."""
    if trial.status is not TrialStatus.COMPLETED:
        return f"{trial.trial_id} {trial.status.value}"
    r = trial.result
    return (
        f"{trial.trial_id} objective {r['objective']:.4f} "
        f"({r.get('tokens_per_s', 0):,.0f} tok/s, {r.get('wall_s', 0):.0f} s)"
    )
