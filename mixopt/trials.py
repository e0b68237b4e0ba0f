"""Trials: one proxy training run on one mixture, and its lifecycle.

The driver owns trials; workers only ever see a :class:`TrialRequest` (plain data, so it crosses
process and machine boundaries unchanged) and send back a result dict. A trial moves
``queued → running → completed``, or ``running → failed_retryable → queued`` when its worker died,
and ends ``abandoned`` when retries run out or the failure cannot be cured by retrying.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class TrialStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED_RETRYABLE = "failed_retryable"
    ABANDONED = "abandoned"

    @property
    def finished(self) -> bool:
        return self in (TrialStatus.COMPLETED, TrialStatus.ABANDONED)


class Stage(StrEnum):
    SEARCH = "search"
    VALIDATE = "validate"


@dataclass(frozen=True)
class TrialRequest:
    """Everything a worker needs to train and evaluate one proxy (plain, serialisable data)."""

    trial_id: str
    weights: dict[str, float]
    seed: int
    preset: str
    model_overrides: dict[str, Any]
    train: dict[str, Any]  # proxies.train.TrainConfig fields
    domains: list[dict[str, Any]]  # proxies.data.DomainTokens fields, one per domain
    vocab_size: int
    seq_len: int
    arch: str = "dense"  # proxies.presets arch: dense | moe
    checkpoint_dir: str | None = None  # this trial's own folder for resumable checkpoints

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Trial:
    """The driver's record of a trial."""

    trial_id: str
    round: int
    weights: dict[str, float]
    seed: int
    stage: Stage = Stage.SEARCH
    label: str = ""  # e.g. "uniform", "recommended" for validation trials
    fidelity_level: int | None = None  # mfbo: index into the job's fidelities (None: the proxy)
    status: TrialStatus = TrialStatus.QUEUED
    attempts: int = 0
    error: str = ""
    failures: list[str] = field(default_factory=list)  # every failed attempt, in order
    result: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stage"], data["status"] = self.stage.value, self.status.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        fields = dict(data)
        fields["stage"] = Stage(fields["stage"])
        fields["status"] = TrialStatus(fields["status"])
        return cls(**fields)
