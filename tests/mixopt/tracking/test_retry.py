"""RetryingTracker over a tracker that fails on demand: retries, outages, drops, reports."""

from pathlib import Path

import pytest

from mixopt.testing import FlakyTracker
from mixopt.tracking import NullTracker, Tracker
from mixopt.tracking.retry import RetryingTracker, is_transient
from mixopt.trials import Trial, TrialStatus


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def _wrap(inner, clock, **kwargs):
    reports: list[str] = []
    tracker = RetryingTracker(
        inner,
        attempts=3,
        backoff_s=0.5,
        cooldown_s=30.0,
        report=reports.append,
        sleep=clock.sleep,
        clock=clock,
        **kwargs,
    )
    return tracker, reports


def _trial(i: int) -> Trial:
    return Trial(f"t{i:04d}", 0, {"a": 0.5, "b": 0.5}, 0, status=TrialStatus.COMPLETED)


def _delivered_trials(inner: FlakyTracker) -> list[str]:
    return [args[0].trial_id for args, _ in inner.delivered("log_trial")]


def test_transient_failures_are_retried_with_backoff():
    inner, clock = FlakyTracker(), Clock()
    tracker, reports = _wrap(inner, clock)
    tracker.start_job("job", {}, {})
    inner.fail_next = 2
    tracker.log_trial(_trial(0), row={"fidelity": "f"})
    assert _delivered_trials(inner) == ["t0000"]
    assert inner.delivered("log_trial")[0][1]["row"] == {"fidelity": "f"}
    assert inner.attempts.count("log_trial") == 3
    assert clock.sleeps == [0.5, 1.0]  # exponential backoff between the attempts
    assert reports == []
    assert tracker.health()["failed_attempts"] == 2
    assert tracker.failures == 0  # delivered in the end: not a failure


def test_outage_defers_calls_in_order_and_delivers_them_when_back():
    inner, clock = FlakyTracker(), Clock()
    tracker, reports = _wrap(inner, clock)
    tracker.start_job("job", {}, {})
    inner.down = True
    tracker.log_trial(_trial(0))  # 3 attempts, then tracking is down
    assert inner.attempts.count("log_trial") == 3
    assert len(reports) == 1 and "failed 3 time(s)" in reports[0]
    assert "connection refused" in reports[0] and "the job goes on" in reports[0]
    for i in (1, 2):  # during the cooldown nothing is attempted: the job is not slowed down
        tracker.log_trial(_trial(i))
    assert inner.attempts.count("log_trial") == 3
    assert tracker.health()["pending"] == 3 and tracker.failures == 3

    clock.now += 31.0  # cooldown over, still down: one more round of attempts, no new report
    tracker.log_job_metrics({"x": 1.0})
    assert inner.attempts.count("log_trial") == 6 and len(reports) == 1

    inner.down = False
    clock.now += 31.0
    tracker.log_trial(_trial(3))
    assert _delivered_trials(inner) == ["t0000", "t0001", "t0002", "t0003"]
    assert [name for name, _, _ in inner.calls] == [
        "start_job",
        "log_trial",
        "log_trial",
        "log_trial",
        "log_job_metrics",
        "log_trial",
    ]
    assert "back after an outage" in reports[-1]
    health = tracker.health()
    assert health["pending"] == 0 and health["outages"] == 1
    # t0003 went through at once: only the four calls made while down were deferred
    assert health["deferred"] == 4 and health["delivered_late"] == 4 and health["dropped"] == 0


def test_finish_flushes_the_queue_or_reports_what_is_lost():
    inner, clock = FlakyTracker(), Clock()
    tracker, reports = _wrap(inner, clock)
    tracker.start_job("job", {}, {})
    inner.down = True
    tracker.log_trial(_trial(0))
    tracker.log_trial(_trial(1))
    inner.down = False
    tracker.finish("FINISHED")  # within the cooldown, yet finish tries once more
    assert _delivered_trials(inner) == ["t0000", "t0001"]
    assert inner.calls[-1] == ("finish", ("FINISHED",), {})
    assert "back after an outage" in reports[-1] and tracker.health()["dropped"] == 0

    inner2, clock2 = FlakyTracker(), Clock()
    tracker2, reports2 = _wrap(inner2, clock2)
    tracker2.start_job("job", {}, {})
    inner2.down = True
    tracker2.log_trial(_trial(0))
    tracker2.finish("FAILED")
    assert "2 call(s) could not be delivered" in reports2[-1]
    health = tracker2.health()
    assert health["dropped"] == 2 and health["pending"] == 0 and tracker2.failures == 2


def test_permanent_errors_are_dropped_without_retries():
    inner, clock = FlakyTracker(), Clock()
    tracker, reports = _wrap(inner, clock)
    tracker.start_job("job", {}, {})
    inner.reject = {"log_predictor_fit"}
    tracker.log_predictor_fit("lgbm", {"spearman": 0.9}, {}, round=1)
    tracker.log_trial(_trial(0))
    assert inner.attempts.count("log_predictor_fit") == 1 and clock.sleeps == []
    assert _delivered_trials(inner) == ["t0000"]  # the next call is not held up
    assert "log_predictor_fit(lgbm, round=1) failed and was dropped: ValueError" in reports[0]
    assert tracker.health()["dropped"] == 1 and tracker.failures == 1


def test_a_failed_start_turns_tracking_off_with_one_report():
    inner, clock = FlakyTracker(), Clock()
    tracker, reports = _wrap(inner, clock)
    inner.reject = {"start_job"}
    tracker.start_job("job", {}, {})
    for i in range(5):
        tracker.log_trial(_trial(i))
    tracker.finish("FINISHED")
    assert inner.attempts == ["start_job"]  # nothing else is even tried
    assert len(reports) == 1 and "tracking is off for the rest of this job" in reports[0]
    assert tracker.health()["disabled"].startswith("start_job(job) failed")
    assert tracker.failures == 7


def test_keyboard_interrupt_is_not_swallowed():
    class Interrupting(Tracker):
        def log_trial(self, trial, *, row=None, request=None):
            raise KeyboardInterrupt

    tracker = RetryingTracker(Interrupting(), sleep=lambda s: None)
    with pytest.raises(KeyboardInterrupt):
        tracker.log_trial(_trial(0))


def test_queue_is_bounded():
    inner, clock = FlakyTracker(), Clock()
    tracker, reports = _wrap(inner, clock, max_pending=3)
    tracker.start_job("job", {}, {})
    inner.down = True
    for i in range(5):
        tracker.log_trial(_trial(i))
    assert tracker.health()["pending"] == 3 and tracker.health()["dropped"] == 2
    assert sum("queue full" in r for r in reports) == 2
    inner.down = False
    clock.now += 31.0
    tracker.log_job_metrics({})  # a fourth call in a full queue: t0002 goes too
    assert _delivered_trials(inner) == ["t0003", "t0004"]  # the oldest are dropped first
    assert tracker.health()["dropped"] == 3 and inner.calls[-1][0] == "log_job_metrics"


def test_error_classification():
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2 as codes

    assert is_transient(ConnectionRefusedError()) and is_transient(TimeoutError())
    assert is_transient(MlflowException("API request failed", error_code=codes.INTERNAL_ERROR))
    assert is_transient(MlflowException("busy", error_code=codes.TEMPORARILY_UNAVAILABLE))
    assert not is_transient(MlflowException("bad", error_code=codes.INVALID_PARAMETER_VALUE))
    assert not is_transient(MlflowException("gone", error_code=codes.RESOURCE_DOES_NOT_EXIST))
    assert not is_transient(ValueError("bug")) and not is_transient(KeyError("bug"))


def test_null_tracker_accepts_every_call(tmp_path):
    tracker = NullTracker()
    tracker.start_job("job", {"a": 1}, {"t": "v"}, run_id="x")
    tracker.log_trial(_trial(0), row={}, request=None)
    tracker.log_predictor_fit("lgbm", {"r": 1.0}, {}, round=0)
    tracker.log_job_metrics({"m": 1.0}, step=2)
    tracker.log_artifact(Path(tmp_path / "missing"), artifact_path="x")
    tracker.log_dict({"a": 1}, "a.json")
    tracker.log_figure(object(), "f.png")
    tracker.finish("FINISHED")
    assert tracker.parent_run_id is None and tracker.health() == {}
    assert tracker.describe() == "no tracking"
