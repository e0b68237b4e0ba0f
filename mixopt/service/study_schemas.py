"""The study endpoints' request and response models (:mod:`mixopt.service.studies`).

Requests are checked here before a study is touched: unknown fields, non-finite numbers, names
that are too long, a strategy a study cannot run. Each failure is a 422 naming the field (the
app's handler joins pydantic's errors as ``body.strategy: ...``). What only the study can judge
(bounds that leave no mixture, weights outside them, metrics the objective lacks) is checked by
:class:`~mixopt.study.Study` itself and answered with 422 too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from mixopt.proposers.registry import DEFAULT_STRATEGY
from mixopt.study import DEFAULT_LAW, study_strategies
from mixopt.study.records import Observed  # responses reuse the study's own records

MAX_DOMAINS = 256
MAX_METRICS = 256
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MixtureId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
Positive = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ScaleIn(_Strict):
    params: Positive = Field(description="Model size N (non-embedding parameters).")
    tokens: Positive = Field(description="Training tokens D.")


class StudyIn(_Strict):
    """A new study: what :class:`mixopt.study.Study` takes."""

    name: Annotated[str, StringConstraints(pattern=r"^[\w][\w .\-]{0,99}$")] = Field(
        description="A label (letters, digits, spaces, _.-; at most 100 characters)."
    )
    domains: list[Name] = Field(min_length=2, max_length=MAX_DOMAINS)
    objective: Name | dict[Name, float] = Field(
        "objective", description="The metric told, or a weighted sum of metrics."
    )
    direction: Literal["minimize", "maximize"] = "minimize"
    strategy: str = Field(DEFAULT_STRATEGY, description="A strategy a study runs.")
    bounds: dict[Name, tuple[float, float]] | None = Field(
        None, description="Per-domain [lower, upper] weights."
    )
    fixed: dict[Name, float] | None = Field(None, description="Domains with a fixed weight.")
    natural: dict[Name, float] | None = Field(
        None, description="The distribution initial draws centre on (default: uniform)."
    )
    initial: int = Field(8, ge=2, le=1000, description="Random mixtures before the strategy.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    target: ScaleIn | None = Field(None, description="The scale best() answers at by default.")
    law: str = Field(DEFAULT_LAW, max_length=64, description="The scale-aware law (or auto).")

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        valid = study_strategies()
        if value not in valid:
            raise ValueError(f"unknown strategy {value!r}; a study runs {', '.join(valid)}")
        return value

    @field_validator("domains")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        repeated = sorted({d for d in value if value.count(d) > 1})
        if repeated:
            raise ValueError(f"domains named twice: {repeated}")
        return value

    @field_validator("objective")
    @classmethod
    def _some_metric(cls, value: str | dict[str, float]) -> str | dict[str, float]:
        if isinstance(value, dict) and not 1 <= len(value) <= MAX_METRICS:
            raise ValueError(f"give 1 to {MAX_METRICS} metrics")
        return value

    @model_validator(mode="after")
    def _natural(self) -> StudyIn:
        if self.natural is not None:
            unknown = sorted(set(self.natural) - set(self.domains))
            if unknown:
                raise ValueError(f"natural: unknown domain(s) {unknown}")
            values = list(self.natural.values())
            if any(v < 0 for v in values) or not sum(values) > 0:
                raise ValueError("natural: weights must be >= 0 with a positive sum")
        return self


class AskIn(_Strict):
    n: int = Field(1, ge=1, description="How many mixtures (the service caps one ask).")


class TellIn(_Strict):
    """A result: ``value`` (the objective) or ``metrics`` (the objective's metrics), at a scale
    when ``params`` and ``tokens`` are given."""

    mixture_id: MixtureId
    value: float | None = None
    metrics: dict[Name, float] | None = Field(None, max_length=MAX_METRICS)
    params: Positive | None = Field(None, description="Model size N of the result.")
    tokens: Positive | None = Field(None, description="Training tokens D of the result.")

    @model_validator(mode="after")
    def _one_result(self) -> TellIn:
        if (self.value is None) == (self.metrics is None):
            raise ValueError("give exactly one of value and metrics")
        return self


class FailIn(_Strict):
    mixture_id: MixtureId
    reason: str = Field("failed", min_length=1, max_length=500)


class EnqueueIn(_Strict):
    weights: dict[Name, float] = Field(min_length=1, max_length=MAX_DOMAINS)


# ------------------------------------------------------------------------------- responses


class SuggestionOut(BaseModel):
    mixture_id: str
    weights: dict[str, float]
    source: str = Field(description="asked or enqueued (imported: a run added from a table).")


class StudyOut(BaseModel):
    id: str
    name: str
    domains: list[str]
    objective: dict[str, float]
    direction: str
    strategy: str
    initial: int
    target: ScaleIn | None
    mixtures: int = Field(description="Mixtures the study knows (asked, enqueued, imported).")
    told: int = Field(description="Mixtures with a result.")
    pending: int = Field(description="Asked, neither told nor failed: training somewhere.")
    failed: int
    queued: int = Field(description="Enqueued mixtures the next asks return first.")
    best_observed: Observed | None
    updated: str


class StudyList(BaseModel):
    studies: list[StudyOut]
    total: int


class TellOut(BaseModel):
    mixture_id: str
    objective: float
    state: Literal["done"] = "done"


class FailOut(BaseModel):
    mixture_id: str
    state: Literal["failed"] = "failed"
    reason: str


class EnqueueOut(BaseModel):
    weights: dict[str, float] = Field(description="The mixture as queued (renormalised).")
    queued: int = Field(description="Mixtures in the queue now.")
