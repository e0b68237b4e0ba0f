"""The stages section: a mixture that changes over training (e.g. a long main stage on a fixed
mixture, then a short anneal whose mixture is searched).

    stages:
      - {name: main, share: 0.8, weights: {web: 0.7, code: 0.2, math: 0.1}}
      - {name: anneal, share: 0.2, search: true}

Each stage takes its ``share`` of every proxy's ``train_tokens`` (and of ``target.tokens``);
exactly one stage is searched (its mixture is what the search proposes, tries and recommends);
the others train on their fixed ``weights``. No stages (the default) is one searched mixture
throughout. Pair it with ``proxy.schedule: wsd`` for a learning rate that decays over the last
stage. The stages build the trainer's stage list (:func:`train_stages`); the search's mixture
becomes the searched stage's at training time. Fixed stages before the searched one form a trunk
that every trial of a seed shares (``proxies.branch``, under the job's ``trunks/``): it trains
once, and each trial trains only from the searched stage on, with the same result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from mixopt.spec.section import NAME_PATTERN, Section

if TYPE_CHECKING:
    from proxies.config import StageConfig

SUM_TOLERANCE = 1e-6  # shares, and a fixed stage's weights, sum to 1 within this


class StageSpec(Section):
    """One stage: its share of the training tokens and either fixed ``weights`` or
    ``search: true`` (the stage whose mixture the search chooses)."""

    name: str | None = Field(None, pattern=NAME_PATTERN, description="A label (e.g. anneal).")
    share: float = Field(gt=0, le=1, description="Share of the training tokens in this stage.")
    weights: dict[str, float] | None = Field(
        None, description="The stage's fixed mixture {domain: weight} (weights sum to 1)."
    )
    search: bool = Field(False, description="This stage's mixture is the one searched.")

    @model_validator(mode="after")
    def _weights_or_search(self) -> StageSpec:
        if self.search == (self.weights is not None):
            raise ValueError("give either weights (a fixed mixture) or search: true, not both")
        if self.weights is not None:
            bad = sorted(d for d, w in self.weights.items() if not math.isfinite(w) or w < 0)
            if bad:
                raise ValueError(f"weights must be finite and >= 0; bad for {bad}")
            total = sum(self.weights.values())
            if abs(total - 1.0) > SUM_TOLERANCE:
                raise ValueError(f"weights must sum to 1, got {total:.9g}")
        return self

    def stage_config(self) -> StageConfig:
        """The trainer's stage (a searched stage has no weights: it takes the trial's mixture)."""
        from proxies.config import StageConfig  # torch-free

        return StageConfig(self.share, None if self.search else self.weights, self.name or "")


def check_stages(stages: Sequence[StageSpec]) -> None:
    """Shares sum to 1 and exactly one stage is searched (no stages: nothing to check).
    Raises ValueError."""
    if not stages:
        return
    total = sum(s.share for s in stages)
    if abs(total - 1.0) > SUM_TOLERANCE:
        shares = [s.share for s in stages]
        raise ValueError(f"shares must sum to 1, got {shares} = {total:.9g}")
    searched = [i for i, s in enumerate(stages) if s.search]
    if len(searched) != 1:
        where = f"stages {searched}" if searched else "none"
        raise ValueError(
            f"exactly one stage must have search: true (the mixture the search chooses), "
            f"got {where}"
        )


def check_domains(stages: Sequence[StageSpec], domains: Sequence[str]) -> None:
    """Fixed weights name only known domains. Raises ValueError naming the field path."""
    for i, stage in enumerate(stages):
        unknown = sorted(set(stage.weights or {}) - set(domains))
        if unknown:
            raise ValueError(
                f"stages.{i}.weights: unknown domain(s) {unknown}; domains are {list(domains)}"
            )


def check_steps(stages: Sequence[StageSpec], steps: int, where: str) -> None:
    """Every stage gets at least one of a proxy's ``steps`` optimizer steps. ValueError."""
    from proxies.config import stage_steps

    if stages:
        try:
            stage_steps([s.share for s in stages], steps)
        except ValueError as error:
            raise ValueError(f"stages: {where}: {error}") from None


def train_stages(stages: Sequence[StageSpec]) -> tuple[StageConfig, ...]:
    """The trainer's stage list (empty without stages)."""
    return tuple(s.stage_config() for s in stages)


def searched_share(stages: Sequence[StageSpec]) -> float:
    """The searched stage's share of the tokens (1 without stages)."""
    return next((s.share for s in stages if s.search), 1.0)


def fixed_tokens(stages: Sequence[StageSpec], tokens: float) -> dict[str, float]:
    """Tokens each domain takes in the fixed stages of a run of ``tokens`` tokens."""
    out: dict[str, float] = {}
    for stage in stages:
        for domain, weight in (stage.weights or {}).items():
            out[domain] = out.get(domain, 0.0) + tokens * stage.share * weight
    return out


def stage_list(stages: Sequence[StageSpec], searched: Mapping[str, float]) -> list[dict[str, Any]]:
    """The whole schedule as plain data: each stage's name, share, weights (``searched``'s in
    the searched stage) and whether it was searched; one searched stage without stages."""
    if not stages:
        return [{"name": None, "share": 1.0, "weights": dict(searched), "searched": True}]
    return [
        {
            "name": s.name,
            "share": s.share,
            "weights": dict(searched) if s.search else dict(s.weights or {}),
            "searched": s.search,
        }
        for s in stages
    ]


def overall(stages: Sequence[StageSpec], searched: Mapping[str, float]) -> dict[str, float]:
    """What a whole run consumes: each domain's share-weighted weight over every stage."""
    out: dict[str, float] = {}
    for stage in stage_list(stages, searched):
        for domain, weight in stage["weights"].items():
            out[domain] = out.get(domain, 0.0) + stage["share"] * weight
    return out
