"""The whole job spec, and the checks that span its sections.

Each section validates itself and builds its component (``proxy`` its model and training
configs, ``search.sampler`` the sampler, ``resources`` the runner, ``tracking`` the tracker);
what needs two sections is checked here, by asking the section that owns the rule.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ConfigDict, Field, model_validator

from mixopt.spec.data import DataSpec, DomainSpec, GroupsSpec, TargetSpec, TokenizerSpec
from mixopt.spec.objective import ObjectiveSpec, SpaceSpec
from mixopt.spec.proxy import ProxySpec
from mixopt.spec.run import ResourcesSpec, TrackingSpec, ValidateSpec
from mixopt.spec.search import SearchSpec
from mixopt.spec.section import NAME_PATTERN, Section


class JobSpec(Section):
    """A whole mixture-search job."""

    name: str = Field(pattern=NAME_PATTERN)
    output_dir: str = Field("runs", description="Job directories are created under this folder.")
    domains: list[DomainSpec] = Field(min_length=2, max_length=10_000)
    data: DataSpec = Field(default_factory=DataSpec)
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    space: SpaceSpec = Field(default_factory=SpaceSpec)
    proxy: ProxySpec = Field(default_factory=ProxySpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    validate_: ValidateSpec = Field(default_factory=ValidateSpec, alias="validate")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    target: TargetSpec = Field(default_factory=TargetSpec)
    groups: GroupsSpec = Field(default_factory=GroupsSpec)

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, populate_by_name=True, allow_inf_nan=False
    )

    @property
    def domain_names(self) -> list[str]:
        return [d.name for d in self.domains]

    @model_validator(mode="after")
    def _cross_checks(self) -> JobSpec:
        names = self.domain_names
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"domains: duplicate names {duplicates}")
        known = set(names)
        for section, mapping in (
            ("space.bounds", self.space.bounds),
            ("space.fixed", self.space.fixed),
            ("validate.current", self.validate_.current or {}),
        ):
            unknown = sorted(set(mapping) - known)
            if unknown:
                raise ValueError(f"{section}: unknown domain(s) {unknown}; domains are {names}")
        both = sorted(set(self.space.bounds) & set(self.space.fixed))
        if both:
            raise ValueError(f"space: {both} both bounded and fixed; give one or the other")
        self.objective.check_metrics(self.reported_metrics())
        self.objective.check_baselines(current=self.validate_.current is not None)
        self.search.check_objective(self.objective)
        if self.validate_.current is not None:
            total = sum(self.validate_.current.values())
            if abs(total - 1.0) > 1e-6 or any(w < 0 for w in self.validate_.current.values()):
                raise ValueError(
                    f"validate.current: weights must be >= 0 and sum to 1, got {total}"
                )
        try:
            self.validation_proxy()
        except ValueError as error:
            raise ValueError(f"validate: validation proxy: {error}") from None
        self.search.fidelity_proxies(self.proxy)
        # Feasibility of the space is checked by mixopt.space.MixtureSpace (a clear message there).
        from mixopt.errors import MixoptError
        from mixopt.space import MixtureSpace

        try:
            MixtureSpace.from_spec(self)
        except MixoptError as error:
            raise ValueError(str(error)) from None
        return self

    # ---------------------------------------------------------------------------- derived

    def reported_metrics(self) -> list[str]:
        """The metrics every trial reports, which objectives and guard rails may name."""
        return [f"{kind}/{n}" for kind in ("val_loss", "bpb") for n in self.domain_names]

    def objective_weights(self) -> dict[str, float]:
        """Metric name → weight of the scalar objective (mean val loss when none are given)."""
        return self.objective.weights(self.domain_names)

    def max_epochs(self, domain: str) -> float:
        """The repetition limit of ``domain`` (its own, else the target's default)."""
        own = next(d.max_epochs for d in self.domains if d.name == domain)
        return float(own if own is not None else self.target.max_epochs)

    def validation_proxy(self) -> ProxySpec:
        """The proxy validation trials train (see :class:`~mixopt.spec.run.ValidateSpec`)."""
        top = max(self.fidelity_proxies(), key=lambda p: p.size())
        return self.validate_.proxy(self.proxy, ladder_top=top)

    def fidelity_proxies(self) -> list[ProxySpec]:
        """The proxies search trials may train, cheapest first, the search proxy (target) last."""
        return self.search.fidelity_proxies(self.proxy)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
