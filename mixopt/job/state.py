"""A job's resumable state: every trial so far, the recommendation once made, tracking ids.

Written atomically after every change of a trial (by :class:`~mixopt.job.JobDir`), so a driver
killed at any moment (SIGKILL included) leaves a state from which ``mixopt resume`` continues:
finished trials are kept, unfinished ones run again (from their checkpoints when the proxy saves
them), and rounds already proposed are not proposed again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixopt.errors import MixoptError
from mixopt.proposers.base import Recommendation
from mixopt.trials import Trial, TrialStatus

FORMAT_VERSION = 1


@dataclass
class JobState:
    trials: list[Trial] = field(default_factory=list)
    recommendation: dict[str, Any] | None = None
    parent_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "trials": [t.to_dict() for t in self.trials],
            "recommendation": self.recommendation,
            "parent_run_id": self.parent_run_id,
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> JobState:
        """The state in ``data`` (read from ``source``); unfinished trials are queued again."""
        if not isinstance(data, dict):
            raise MixoptError(
                f"{source}: unreadable job state (a mapping was expected, not "
                f"{type(data).__name__})"
            )
        if data.get("version") != FORMAT_VERSION:
            raise MixoptError(f"{source}: unknown state version {data.get('version')!r}")
        try:
            trials = [Trial.from_dict(t) for t in data["trials"]]
        except (KeyError, TypeError, ValueError) as error:
            raise MixoptError(f"{source}: unreadable job state ({error})") from None
        for trial in trials:  # whatever was in flight when the driver died runs again
            if not trial.status.finished:
                trial.status = TrialStatus.QUEUED
        recommendation = data.get("recommendation")
        if recommendation is not None and not isinstance(recommendation, dict):
            raise MixoptError(f"{source}: unreadable job state (recommendation is not a mapping)")
        return cls(trials, recommendation, data.get("parent_run_id"))


def recommendation_to_dict(rec: Recommendation) -> dict[str, Any]:
    return {
        "weights": rec.weights.tolist(),
        "predicted": rec.predicted,
        "predicted_std": rec.predicted_std,
        "evidence": rec.evidence,
        "nearest": rec.nearest,
        "method": rec.method,
    }


def recommendation_from_dict(data: dict[str, Any]) -> Recommendation:
    return Recommendation(
        weights=np.asarray(data["weights"], dtype=float),
        predicted=float(data["predicted"]),
        predicted_std=data["predicted_std"],
        evidence=list(data["evidence"]),
        nearest=list(data["nearest"]),
        method=data["method"],
    )
