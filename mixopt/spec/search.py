"""The search section: sampler, strategy and budget."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator

from mixopt.predictors import available_predictors
from mixopt.proposers import STRATEGIES, get_strategy
from mixopt.spec.errors import format_validation_error
from mixopt.spec.objective import ObjectiveSpec
from mixopt.spec.proxy import ProxySpec
from mixopt.spec.section import Section

if TYPE_CHECKING:
    import numpy as np

    from mixopt.proposers import Proposer
    from mixopt.sampling import DirichletSampler
    from mixopt.space import MixtureSpace


def _names(**needs: bool) -> list[str]:
    from mixopt.proposers import strategy_names

    return strategy_names(**needs)


def _enum(names: Iterable[str]) -> dict[str, Any]:
    """The JSON schema's list of valid names for a string field checked against a registry."""
    return {"enum": list(names)}


class SamplerSpec(Section):
    """RegMix's Dirichlet sampler around the natural token distribution."""

    temperature: float = Field(0.5, gt=0)
    alpha_min: float = Field(0.1, gt=0)
    alpha_max: float = Field(5.0, gt=0)
    n_alphas: int = Field(15, ge=1)
    min_weight: float = Field(2e-4, ge=0, lt=1, description="Smaller weights are set to zero.")

    @model_validator(mode="after")
    def _range(self) -> SamplerSpec:
        if self.alpha_min > self.alpha_max:
            raise ValueError("alpha_min must not exceed alpha_max")
        return self

    def build(self, space: MixtureSpace, natural: np.ndarray) -> DirichletSampler:
        """The sampler over ``space``, centred on the ``natural`` distribution."""
        from mixopt.sampling import DirichletSampler

        return DirichletSampler(
            space,
            natural,
            temperature=self.temperature,
            alpha_min=self.alpha_min,
            alpha_max=self.alpha_max,
            n_alphas=self.n_alphas,
            min_weight=self.min_weight,
        )


RUNG_TOKENS_EXPONENT = 0.5  # a rung's default tokens: the search proxy's x (N_rung / N)^this


def rung_tokens(search: ProxySpec, rung: ProxySpec) -> int:
    """A rung's training tokens when the spec gives none: the search proxy's, scaled by the
    square root of the ratio of their non-embedding parameters. Rungs then differ in tokens as
    well as in size, so the scale-aware laws see the loss move with D across runs (a curve's
    own points under a decaying learning rate are not the losses of shorter runs), at a cost
    that grows as N^1.5 rather than N^2."""
    (n_search, d_search), (n_rung, _) = search.size(), rung.size()
    return max(1, round(d_search * (n_rung / n_search) ** RUNG_TOKENS_EXPONENT))


class FidelitySpec(Section):
    """A rung of the scale ladder besides the search proxy (``proxy``): the search proxy with
    these replacements.

    A multi-fidelity strategy (``mfbo``) chooses per trial between the rungs, which must be
    cheaper than the search proxy (the target fidelity). For every other strategy a rung adds
    ``initial_trials`` mixtures at its own scale to the initial design (smaller or larger than
    the search proxy): the strategy searches at the search proxy, and the scale-aware laws learn
    from every rung how the losses move with model size and tokens (``target.params``).
    """

    preset: str | None = Field(None, description="Its preset (e.g. nano under tiny).")
    train_tokens: int | None = Field(
        None,
        gt=0,
        le=10**13,
        description="Its training tokens (default: the search proxy's x the square root of the "
        "ratio of non-embedding parameters, so tokens grow with size along the ladder).",
    )
    lr: float | None = Field(
        None,
        gt=0,
        description="Its learning rate (default: the search proxy's, carried by the Step Law).",
    )
    initial_trials: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Single-scale strategies: mixtures drawn at this rung in the initial design "
        "(default: search.initial_trials).",
    )

    @model_validator(mode="after")
    def _changes_something(self) -> FidelitySpec:
        if self.preset is None and self.train_tokens is None:
            raise ValueError("give preset and/or train_tokens")
        return self


class SearchSpec(Section):
    """Budget and strategy: an initial design, then rounds proposed from a fitted predictor."""

    seed: int = 0
    initial_trials: int = Field(
        16, ge=2, le=100_000, description="Mixtures drawn by the sampler first."
    )
    rounds: int = Field(1, ge=0, le=10_000, description="Proposal rounds after the initial design.")
    trials_per_round: int = Field(4, ge=1, le=10_000)
    strategy: str = Field(
        "bo",
        description="A search strategy: "
        + "; ".join(f"{s.name}: {s.description}" for s in STRATEGIES.values())
        + ".",
        json_schema_extra=_enum(STRATEGIES),
    )
    fidelities: list[FidelitySpec] = Field(
        default_factory=list,
        validation_alias=AliasChoices("fidelities", "scales"),
        description="mfbo: cheaper proxies; the initial design runs at the cheapest (but "
        "initial_at_target trials), then mfbo chooses per trial; the recommendation is for the "
        "search proxy (the target).",
    )
    initial_at_target: int = Field(
        2,
        ge=0,
        description="mfbo: initial-design trials run at the target fidelity, so the model "
        "learns how the cheap proxies relate to it.",
    )
    predictor: str = Field(
        "auto",
        description="Predictor of the regmix strategy (see mixopt.predictors).",
        json_schema_extra=_enum(available_predictors()),
    )
    candidates: int = Field(
        100_000, ge=100, le=10_000_000, description="Simulated mixtures per proposal."
    )
    top_k: int = Field(128, ge=1, description="Best-predicted candidates averaged.")
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        get_strategy(value)
        return value

    @field_validator("predictor")
    @classmethod
    def _known_predictor(cls, value: str) -> str:
        if value not in available_predictors():
            raise ValueError(
                f"unknown predictor {value!r}; available: {', '.join(available_predictors())}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SearchSpec:
        strategy = get_strategy(self.strategy)
        if strategy.needs_fidelities and not self.fidelities:
            raise ValueError(
                f"search.fidelities: strategy {self.strategy!r} needs at least one cheaper proxy"
            )
        too_many = [
            i
            for i, f in enumerate(self.fidelities)
            if (f.initial_trials or 0) > self.initial_trials
        ]
        if too_many:
            raise ValueError(
                f"search.fidelities.{too_many[0]}.initial_trials: at most initial_trials "
                f"({self.initial_trials}); a rung trains the first mixtures of the initial design"
            )
        if strategy.needs_fidelities and any(f.initial_trials for f in self.fidelities):
            raise ValueError(
                f"search.fidelities: strategy {self.strategy!r} places the initial design "
                "itself (initial_at_target); a rung's initial_trials is for single-scale "
                "strategies"
            )
        if (
            strategy.needs_fidelities
            and self.fidelities
            and self.initial_at_target >= self.initial_trials
        ):
            raise ValueError("initial_at_target must be smaller than initial_trials")
        if self.top_k > self.candidates:
            raise ValueError("top_k must not exceed candidates")
        return self

    @property
    def multi_fidelity(self) -> bool:
        """The strategy chooses each trial's rung (else it searches at the search proxy)."""
        return get_strategy(self.strategy).needs_fidelities

    def rung_trials(self) -> list[int]:
        """Initial-design trials at each rung of ``fidelities`` (single-scale strategies; a
        multi-fidelity strategy places its initial design itself)."""
        if self.multi_fidelity:
            return [0] * len(self.fidelities)
        return [f.initial_trials or self.initial_trials for f in self.fidelities]

    def build_proposer(
        self,
        sampler: DirichletSampler,
        *,
        target_weights: Sequence[float],
        levels: Sequence[float] = (),
        constraints: Sequence[Any] = (),
    ) -> Proposer:
        """The strategy's proposer with every option it takes: the objective's target weights,
        the predictor (strategies that take one), the fidelity levels' compute (multi-fidelity
        strategies), the guard rails (strategies that enforce them) and RegMix's simulation."""
        from dataclasses import fields

        strategy = get_strategy(self.strategy)
        values: dict[str, Any] = {"seed": self.seed, "target_weights": tuple(target_weights)}
        if strategy.takes_predictor:
            values["predictor"] = self.predictor
        if strategy.needs_fidelities:
            values["levels"] = tuple(levels)
        if strategy.needs_constraints:
            values["constraints"] = tuple(constraints)
        if "top_k" in {f.name for f in fields(strategy.options_class)}:
            values.update(candidates=self.candidates, top_k=min(self.top_k, self.candidates))
        return strategy.build(sampler, values)

    def check_objective(self, objective: ObjectiveSpec) -> None:
        """Guard rails need a strategy that enforces them (on a minimised objective)."""
        if objective.constraints:
            if not get_strategy(self.strategy).needs_constraints:
                enforced = ", ".join(f"'{s}'" for s in _names(constraints=True))
                raise ValueError(
                    f"objective.constraints are enforced by search.strategy {enforced}"
                )
            if objective.direction != "minimize":
                raise ValueError("objective.constraints work with direction 'minimize'")

    def fidelity_proxies(self, target: ProxySpec) -> list[ProxySpec]:
        """The proxies trials may train: the ladder's rungs, then ``target`` last."""
        proxies = []
        for i, f in enumerate(self.fidelities):
            try:
                proxy = target.replace(
                    **f.model_dump(exclude_none=True, exclude={"initial_trials"})
                )
                if f.train_tokens is None:  # tokens grow with the rung's size
                    proxy = proxy.replace(train_tokens=rung_tokens(target, proxy))
                if f.lr is None:  # the search proxy's lr, carried to this rung's size
                    proxy = proxy.with_lr_from(target)
            except ValidationError as error:
                raise ValueError(
                    f"search.fidelities.{i}: " + format_validation_error(error, "fidelity proxy")
                ) from None
            if proxy == target:
                raise ValueError(f"search.fidelities.{i}: the same proxy as the target (proxy)")
            proxies.append(proxy)
        return [*proxies, target]
