"""Trials: one proxy training run on one mixture, and its lifecycle.

The driver owns trials; workers only ever see a :class:`TrialRequest` (plain data, so it crosses
process and machine boundaries unchanged) and send back a result dict. A trial moves
``queued → running → completed``, or ``running → failed_retryable → queued`` when its worker died,
and ends ``abandoned`` when retries run out or the failure cannot be cured by retrying.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mixopt.spec import ProxySpec
    from proxies.config import BaseConfig, GPTConfig, StageConfig, TrainConfig
    from proxies.probe_tasks import ProbeFile
    from proxies.tokens import DomainTokens


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
    """Everything a worker needs to train and evaluate one proxy: plain, picklable data built
    by the spec's proxy section (:meth:`build`), so it crosses process and machine boundaries
    unchanged and the worker never re-reads the spec."""

    trial_id: str
    weights: dict[str, float]
    proxy: ProxySpec  # what the trial trains, as the spec says it (for provenance and tracking)
    model: GPTConfig  # proxy.gpt_config(vocab size)
    train: TrainConfig  # proxy.train_config(seed, threads, checkpoint folder, stages)
    domains: tuple[DomainTokens, ...]
    evals: tuple[DomainTokens, ...] = ()  # eval sets: evaluated, never trained on
    probes: tuple[ProbeFile, ...] = ()  # tokenized probe tasks, scored after training

    @classmethod
    def build(
        cls,
        trial_id: str,
        weights: dict[str, float],
        *,
        seed: int,
        proxy: ProxySpec,
        vocab_size: int,
        domains: Sequence[DomainTokens],
        threads: int | None = None,
        checkpoint_dir: str | None = None,
        evals: Sequence[DomainTokens] = (),
        stages: Sequence[StageConfig] = (),
        trunk_dir: str | None = None,
        base: BaseConfig | None = None,
        init_from: str | None = None,
        probes: Sequence[ProbeFile] = (),
    ) -> TrialRequest:
        """``weights`` is the trial's mixture: the searched stage's when ``stages`` are given."""
        return cls(
            trial_id=trial_id,
            weights=dict(weights),
            proxy=proxy,
            model=proxy.gpt_config(vocab_size),
            train=proxy.train_config(
                seed=seed,
                threads=threads,
                checkpoint_dir=checkpoint_dir,
                stages=stages,
                trunk_dir=trunk_dir,
                base=base,
                init_from=init_from,
            ),
            domains=tuple(domains),
            evals=tuple(evals),
            probes=tuple(probes),
        )

    @property
    def seed(self) -> int:
        return self.train.seed

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "weights": self.weights,
            "proxy": self.proxy.model_dump(mode="json"),
            "model": asdict(self.model),
            "train": self.train.to_dict(),
            "domains": [asdict(d) for d in self.domains],
            "evals": [asdict(d) for d in self.evals],
            "probes": [asdict(p) for p in self.probes],
        }


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
