"""Spec sections about what is optimised: the objective, its guard rails, the mixture space."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mixopt.spec.section import Section


class ConstraintSpec(Section):
    """A guard rail: ``metric`` must stay below a limit (``strategy: pareto`` enforces it).

    ``max_increase: 0.01, relative_to: natural`` reads "at most 1% above what the natural mixture
    measures" (the baseline is trained in the initial design); ``max_value`` is an absolute limit.
    """

    metric: str
    max_increase: float | None = Field(None, ge=0, description="Relative to the baseline.")
    relative_to: Literal["natural", "uniform", "current"] = "natural"
    max_value: float | None = Field(None, description="An absolute upper limit.")

    @model_validator(mode="after")
    def _one_limit(self) -> ConstraintSpec:
        if (self.max_increase is None) == (self.max_value is None):
            raise ValueError("give exactly one of max_increase and max_value")
        return self


class ObjectiveSpec(Section):
    """The scalar the search optimises: a weighted sum of trial metrics (minimised by default),
    and optional constraints on other metrics.

    An empty ``metrics`` means the mean of ``val_loss/<domain>`` over every domain.
    """

    metrics: dict[str, float] = Field(default_factory=dict)
    direction: Literal["minimize", "maximize"] = "minimize"
    constraints: list[ConstraintSpec] = Field(default_factory=list)

    @field_validator("metrics")
    @classmethod
    def _nonzero(cls, value: dict[str, float]) -> dict[str, float]:
        for name, weight in value.items():
            if not math.isfinite(weight) or weight == 0:
                raise ValueError(f"weight of metric {name!r} must be finite and non-zero")
        return value

    def weights(self, domains: list[str]) -> dict[str, float]:
        """Metric name → weight of the scalar objective (mean val loss when none are given)."""
        if self.metrics:
            return dict(self.metrics)
        return {f"val_loss/{n}": 1.0 / len(domains) for n in domains}

    def targets(self, domains: list[str]) -> list[str]:
        """What each trial reports to the proposer: the objective's metrics, then the ones
        only guard rails name."""
        weights = self.weights(domains)
        return list(weights) + [c.metric for c in self.constraints if c.metric not in weights]

    def relative_baselines(self) -> list[str]:
        """The baselines guard rails are relative to (trained in the initial design)."""
        return sorted({c.relative_to for c in self.constraints if c.max_value is None})

    def check_metrics(self, available: Sequence[str], hooks: Sequence[str] = ()) -> None:
        """Every metric named must be one the trials report: a name in ``available``, or a
        metric hook's (``<hook>`` or ``<hook>/<key>`` for a hook in ``hooks``)."""
        known = set(available)

        def reported(metric: str) -> bool:
            return metric in known or metric.partition("/")[0] in hooks

        def listing() -> str:
            names = ", ".join(sorted(known))
            extra = "".join(f", {h} or {h}/<key>" for h in hooks)
            return f"trials report {names}{extra}"

        unknown = sorted(m for m in self.metrics if not reported(m))
        if unknown:
            raise ValueError(f"objective.metrics: unknown metric(s) {unknown}; {listing()}")
        for i, constraint in enumerate(self.constraints):
            if not reported(constraint.metric):
                raise ValueError(
                    f"objective.constraints.{i}.metric: unknown metric {constraint.metric!r}; "
                    f"{listing()}"
                )

    def check_baselines(self, *, current: bool) -> None:
        for i, constraint in enumerate(self.constraints):
            if constraint.relative_to == "current" and not current:
                raise ValueError(
                    f"objective.constraints.{i}: relative_to 'current' needs validate.current"
                )


class SpaceSpec(Section):
    """Constraints on the mixture: per-domain [min, max] and fixed weights."""

    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)
    fixed: dict[str, float] = Field(default_factory=dict)

    @field_validator("bounds")
    @classmethod
    def _bounds_ordered(
        cls, value: dict[str, tuple[float, float]]
    ) -> dict[str, tuple[float, float]]:
        for name, (lo, hi) in value.items():
            if not (0.0 <= lo <= hi <= 1.0):
                raise ValueError(
                    f"bounds of {name!r} must satisfy 0 <= min <= max <= 1, got {lo, hi}"
                )
        return value

    @field_validator("fixed")
    @classmethod
    def _fixed_in_unit(cls, value: dict[str, float]) -> dict[str, float]:
        for name, w in value.items():
            if not (0.0 <= w <= 1.0):
                raise ValueError(f"fixed weight of {name!r} must be in [0, 1], got {w}")
        return value
