"""The whole job spec, and the checks that span its sections.

Each section validates itself and builds its component (``proxy`` its model and training
configs, ``search.sampler`` the sampler, ``resources`` the runner, ``tracking`` the tracker);
what needs two sections is checked here, by asking the section that owns the rule.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ConfigDict, Field, field_validator, model_validator

from mixopt.spec.clusters import ClusterDomainsSpec, expand_cluster_domains
from mixopt.spec.continual import ContinualSpec, forgetting_metrics
from mixopt.spec.data import (
    DataSpec,
    DomainSpec,
    EvalSpec,
    GroupsSpec,
    TargetSpec,
    TokenizerSpec,
)
from mixopt.spec.objective import ObjectiveSpec, SpaceSpec
from mixopt.spec.probes import ProbeSpec, check_probe_names, probe_metrics
from mixopt.spec.proxy import ProxySpec
from mixopt.spec.run import ONLINE_BASELINES, ResourcesSpec, TrackingSpec, ValidateSpec
from mixopt.spec.search import SearchSpec
from mixopt.spec.section import NAME_PATTERN, Section
from mixopt.spec.stages import StageSpec, check_domains, check_stages, check_steps

if TYPE_CHECKING:
    from proxies.config import StageConfig


class JobSpec(Section):
    """A whole mixture-search job."""

    name: str = Field(pattern=NAME_PATTERN)
    output_dir: str = Field("runs", description="Job directories are created under this folder.")
    domains: list[DomainSpec] = Field(
        min_length=2,
        max_length=10_000,
        description="The training domains: a list, or {cluster: {paths, k, ...}} for domains "
        "discovered by clustering unlabeled text (see mixopt.spec.clusters).",
    )
    cluster: ClusterDomainsSpec | None = Field(
        None,
        description="Set from domains: {cluster: ...} (see mixopt.spec.clusters); the domains "
        "are then cluster_00..cluster_{k-1}, made by the data stage.",
    )
    evals: list[EvalSpec] = Field(
        default_factory=list,
        max_length=1_000,
        description="Evaluation sets: text never trained on (held-out target data, an "
        "out-of-distribution set); every proxy reports val_loss/<name> and bpb/<name> on each, "
        "and the objective and guard rails may name them.",
    )
    probes: list[ProbeSpec] = Field(
        default_factory=list,
        max_length=100,
        description="Downstream probe tasks (see mixopt.spec.probes): multiple-choice items "
        "scored by log-likelihood; every proxy reports probe/<name>/accuracy, accuracy_norm and "
        "margin, and the objective and guard rails may name them.",
    )
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
    stages: list[StageSpec] = Field(
        default_factory=list,
        max_length=64,
        description="Mixture stages in training order (see mixopt.spec.stages): each a share of "
        "the tokens with fixed weights, exactly one with search: true; none = one mixture.",
    )

    continual: ContinualSpec | None = Field(
        None,
        description="Continual pretraining (see mixopt.spec.continual): every proxy starts from "
        "a base proxy trained on the base mixture; trials report forgetting/<loss>.",
    )

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, populate_by_name=True, allow_inf_nan=False
    )

    @property
    def domain_names(self) -> list[str]:
        return [d.name for d in self.domains]

    @property
    def eval_names(self) -> list[str]:
        return [e.name for e in self.evals]

    @model_validator(mode="before")
    @classmethod
    def _cluster_domains(cls, data: Any) -> Any:
        return expand_cluster_domains(data)

    @field_validator("stages")
    @classmethod
    def _stages(cls, value: list[StageSpec]) -> list[StageSpec]:
        check_stages(value)
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> JobSpec:
        names = self.domain_names
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"domains: duplicate names {duplicates}")
        self.check_evals()
        taken = {n: f"domain {n!r}" for n in names} | {
            n: f"eval set {n!r}" for n in self.eval_names
        }
        check_probe_names(self.probes, taken)
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
        if self.continual is not None:
            self.continual.check_domains(names)
        online = sorted(set(self.validate_.baselines) & set(ONLINE_BASELINES))
        if online and (self.stages or self.continual):
            raise ValueError(
                f"validate.baselines: {', '.join(online)} train(s) from scratch on their own "
                "schedule; not for a job with stages or continual pretraining"
            )
        self.objective.check_metrics(self.reported_metrics(), self.hook_metrics())
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
        if self.continual is not None and self.continual.init_from is not None:
            self._check_one_model()
        check_domains(self.stages, names)
        for proxy in {
            p.fidelity: p for p in (*self.fidelity_proxies(), self.validation_proxy())
        }.values():
            check_steps(self.stages, proxy.steps, f"proxy {proxy.fidelity}")
        # Feasibility of the space is checked by mixopt.space.MixtureSpace (a clear message there).
        from mixopt.errors import MixoptError
        from mixopt.space import MixtureSpace

        try:
            MixtureSpace.from_spec(self)
        except MixoptError as error:
            raise ValueError(str(error)) from None
        return self

    def _check_one_model(self) -> None:
        """``continual.init_from`` fits one model: the search proxy's, which every trial and
        validation then trains."""
        models = {
            (p.arch, p.preset, tuple(sorted(p.overrides.items())), p.seq_len)
            for p in (*self.fidelity_proxies(), self.validation_proxy())
        }
        if len(models) > 1:
            raise ValueError(
                "continual.init_from: the checkpoint fits one model, but this job trains "
                f"{len(models)} (search.scales or a validation proxy of another size): search "
                "without scales and set validate.scale: search"
            )

    # ---------------------------------------------------------------------------- derived

    def check_evals(self) -> None:
        """Eval sets have their own names and never name a training domain's path (as written;
        the data stage compares the files both resolve to). Raises ValueError."""
        names = self.eval_names
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"evals: duplicate names {duplicates}")
        clash = sorted(set(names) & set(self.domain_names))
        if clash:
            raise ValueError(
                f"evals: {clash} also name training domain(s); an eval set's metrics "
                "(val_loss/<name>) must not be confused with a domain's: rename it"
            )
        entries = {_entry_key(p): (d.name, p) for d in self.domains for p in d.paths}
        for i, evaluation in enumerate(self.evals):
            for j, path in enumerate(evaluation.paths):
                hit = entries.get(_entry_key(path))
                if hit is not None:
                    raise ValueError(
                        f"evals.{i}.paths.{j}: eval set {evaluation.name!r} names {path}, which "
                        f"training domain {hit[0]!r} also names ({hit[1]}): an eval set must "
                        "hold text that is never trained on"
                    )

    def reported_metrics(self) -> list[str]:
        """The metrics every trial reports, which objectives and guard rails may name:
        ``val_loss/`` and ``bpb/`` of every domain and eval set, ``moe/max_load`` and
        ``moe/dropped_tokens`` of an MoE proxy, ``accuracy/<name>`` when the built-in
        ``accuracy`` hook runs (other hooks: :meth:`hook_metrics`) and, in continual
        pretraining, ``forgetting/val_loss/`` and ``forgetting/bpb/`` of each; and
        ``probe/<name>/accuracy``, ``accuracy_norm`` and ``margin`` of every probe task."""
        sets = self.domain_names + self.eval_names
        names = [f"{kind}/{n}" for kind in ("val_loss", "bpb") for n in sets]
        if self.continual is not None:
            names += forgetting_metrics(sets)
        if self.proxy.arch == "moe":
            names += ["moe/max_load", "moe/dropped_tokens"]
        if "accuracy" in self.proxy.metrics:
            names += [f"accuracy/{n}" for n in sets]
        return names + probe_metrics(self.probes)

    def hook_metrics(self) -> list[str]:
        """The metric hooks (``proxy.metrics``, by the name they log under) whose keys are
        only known when they run: an objective may name ``<hook>`` or ``<hook>/<key>``."""
        return [m.rpartition(":")[2] for m in self.proxy.metrics if m != "accuracy"]

    def objective_weights(self) -> dict[str, float]:
        """Metric name → weight of the scalar objective (mean val loss when none are given)."""
        return self.objective.weights(self.domain_names)

    def train_stages(self) -> tuple[StageConfig, ...]:
        """The stages every trial trains through (empty: one mixture throughout)."""
        from mixopt.spec.stages import train_stages

        return train_stages(self.stages)

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
        data = self.model_dump(mode="json", by_alias=True)
        cluster = data.pop("cluster")
        if cluster is not None:  # written as the user wrote it; the stand-ins follow from it
            data["domains"] = {"cluster": cluster}
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _entry_key(path: str) -> str:
    """A path entry as written, normalised without touching the file system (the data stage
    compares the files they resolve to)."""
    return os.path.normpath(os.path.expanduser(path))
