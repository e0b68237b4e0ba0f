"""Mixture stages of a proxy run: each stage's share of the training tokens and its mixture.

``TrainConfig.stages`` (``proxies.config``) is an ordered list of ``StageConfig``, each with its
share of the training tokens and its weights (``None``: the run's own mixture, the one passed to
the trainer; the searched stage of a mixture search). The shares are > 0 and sum to 1;
``stage_steps`` turns them into whole optimizer steps. No stages is a single mixture throughout.
``BaseConfig`` is the base proxy of a continual-pretraining run (``TrainConfig.base``: the run
starts from its weights; see ``proxies.branch``). Torch-free, like the configs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def is_finite(value: object) -> bool:
    """A real number (bools are not) that is neither inf nor nan."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok and math.isfinite(value)  # type: ignore[arg-type]


STAGE_SUM_TOL = 1e-6  # stage shares, and a stage's weights, sum to 1 within this


def checked_weights(value: object) -> dict[str, float]:
    """A mixture {domain: weight >= 0} summing to 1, as plain floats; ValueError otherwise."""
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"weights must be a mapping of domain to weight, got {value!r}")
    weights: dict[str, float] = {}
    for domain, weight in value.items():
        if not isinstance(domain, str) or not is_finite(weight) or weight < 0:
            raise ValueError(
                f"weights must map domain names to finite weights >= 0, got {domain!r}: {weight!r}"
            )
        weights[domain] = float(weight)
    total = sum(weights.values())
    if abs(total - 1.0) > STAGE_SUM_TOL:
        raise ValueError(f"weights must sum to 1 (±{STAGE_SUM_TOL}), got {total:.9g}")
    return weights


@dataclass(frozen=True)
class StageConfig:
    """One stage of a run: its ``share`` of the training tokens and its mixture.

    ``weights`` maps domain names to weights >= 0 summing to 1 (a domain left out gets 0);
    ``None`` means the run's own mixture (the one given to ``train_proxy``, per model for
    ``train_stacked``). ``name`` only labels the stage in errors and results. Checks itself:
    a bad value raises ValueError naming the setting.
    """

    share: float
    weights: Mapping[str, float] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not is_finite(self.share) or not 0 < self.share <= 1:
            raise ValueError(f"share must be in (0, 1], got {self.share!r}")
        object.__setattr__(self, "share", float(self.share))
        if not isinstance(self.name, str):
            raise ValueError(f"name must be a string, got {self.name!r}")
        if self.weights is not None:
            object.__setattr__(self, "weights", checked_weights(self.weights))

    @property
    def label(self) -> str:
        return repr(self.name) if self.name else "(unnamed)"

    @classmethod
    def coerce(cls, value: object) -> StageConfig:
        """A StageConfig from itself or a mapping of its fields (configs read from JSON/YAML)."""
        if isinstance(value, StageConfig):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"share", "weights", "name"})
            if unknown:
                raise ValueError(f"unknown stage setting(s) {unknown}")
            if "share" not in value:
                raise ValueError("needs a share")
            return cls(**value)
        raise ValueError(f"must be a StageConfig or a mapping, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        weights = None if self.weights is None else dict(self.weights)
        return {"share": self.share, "weights": weights, "name": self.name}


FORGETTING_PREFIX = "forgetting/"  # forgetting/<loss>: a loss's relative rise over the base's


@dataclass(frozen=True)
class BaseConfig:
    """The base proxy of a continual-pretraining run: trained on ``weights`` for
    ``train_tokens``; the run starts from its final weights. Checks itself (ValueError)."""

    weights: Mapping[str, float]
    train_tokens: int

    def __post_init__(self) -> None:
        tokens = self.train_tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens <= 0:
            raise ValueError(f"train_tokens must be an integer > 0, got {tokens!r}")
        object.__setattr__(self, "weights", checked_weights(self.weights))

    @classmethod
    def coerce(cls, value: object) -> BaseConfig:
        """A BaseConfig from itself or a mapping of its fields (configs read from JSON/YAML)."""
        if isinstance(value, BaseConfig):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"weights", "train_tokens"})
            missing = sorted({"weights", "train_tokens"} - set(value))
            if unknown or missing:
                raise ValueError(f"unknown setting(s) {unknown}, missing {missing}")
            return cls(**value)
        raise ValueError(f"must be a BaseConfig or a mapping, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "train_tokens": self.train_tokens}


def coerce_stages(value: object) -> tuple[StageConfig, ...]:
    """A run's stages from StageConfigs or mappings of their fields, their shares summing to 1;
    ValueError naming the bad stage otherwise."""
    if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
        raise ValueError(f"must be a list of stages, got {value!r}")
    stages = []
    for i, item in enumerate(value):
        try:
            stages.append(StageConfig.coerce(item))
        except (TypeError, ValueError) as error:
            name = item.get("name") if isinstance(item, Mapping) else None
            label = f"stage {i}" + (f" ({name!r})" if name else "")
            raise ValueError(f"{label}: {error}") from None
    total = sum(stage.share for stage in stages)
    if stages and abs(total - 1.0) > STAGE_SUM_TOL:
        shares = [stage.share for stage in stages]
        raise ValueError(f"shares must sum to 1 (±{STAGE_SUM_TOL}), got {shares} = {total:.9g}")
    return tuple(stages)


def stage_steps(shares: Sequence[float], n_steps: int) -> list[int]:
    """Whole steps per stage: ``share * n_steps`` rounded by largest remainder (they sum to
    ``n_steps``), then every stage left with 0 steps takes one from the longest stage. Raises
    ValueError when there are fewer steps than stages."""
    if not shares:
        return [n_steps]
    if n_steps < len(shares):
        raise ValueError(
            f"{len(shares)} stages need at least one optimizer step each, but the run has "
            f"only {n_steps} step(s): train on more tokens or use fewer stages"
        )
    total = sum(shares)
    exact = [share / total * n_steps for share in shares]
    steps = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: (steps[i] - exact[i], i))
    for i in by_remainder[: n_steps - sum(steps)]:
        steps[i] += 1
    for i in range(len(steps)):
        if steps[i] == 0:
            steps[max(range(len(steps)), key=lambda j: steps[j])] -= 1
            steps[i] = 1
    return steps
