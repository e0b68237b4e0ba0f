"""A job's resumable state: every trial so far, the recommendation once made, tracking ids.

Written atomically (temporary file, then rename) after every change of a trial, so a driver
killed at any moment (SIGKILL included) leaves a state from which ``mixopt resume`` continues:
finished trials are kept, unfinished ones run again (from their checkpoints when the proxy
saves them), and rounds already proposed are not proposed again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.errors import MixoptError
from mixopt.proposers import Recommendation
from mixopt.trials import Trial, TrialStatus

STATE_FILE = "state.json"
FORMAT_VERSION = 1


@dataclass
class JobState:
    trials: list[Trial] = field(default_factory=list)
    recommendation: dict[str, Any] | None = None
    parent_run_id: str | None = None

    def save(self, job_dir: Path) -> None:
        data = {
            "version": FORMAT_VERSION,
            "trials": [t.to_dict() for t in self.trials],
            "recommendation": self.recommendation,
            "parent_run_id": self.parent_run_id,
        }
        path = job_dir / STATE_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    @classmethod
    def load(cls, job_dir: Path) -> JobState:
        path = job_dir / STATE_FILE
        if not path.is_file():
            raise MixoptError(f"{job_dir}: no {STATE_FILE}, nothing to resume")
        try:
            data = json.loads(path.read_text())
            if data.get("version") != FORMAT_VERSION:
                raise MixoptError(f"{path}: unknown state version {data.get('version')!r}")
            trials = [Trial.from_dict(t) for t in data["trials"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise MixoptError(f"{path}: unreadable job state ({error})") from None
        for trial in trials:  # whatever was in flight when the driver died runs again
            if not trial.status.finished:
                trial.status = TrialStatus.QUEUED
        return cls(trials, data.get("recommendation"), data.get("parent_run_id"))


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
