"""The search spec: one YAML file that says everything about a mixture-search job.

Each section is a typed pydantic model that validates itself (unknown keys are errors, so a
typo never silently falls back to a default). Cross-section checks (constraints naming unknown
domains, bounds that cannot sum to one) live on :class:`JobSpec`. Relative paths are resolved
against the spec file's folder by :func:`load_spec`, so a spec can be run from anywhere.

    spec = load_spec("experiments/demo/search.yaml")   # raises SpecError naming the field
    print(spec.to_yaml())                               # the resolved spec (what gets logged)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mixopt.errors import SpecError

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------- data


class DomainSpec(_Section):
    """One training domain: a name and the files that hold its documents.

    Text formats: plain text (a file is a document), JSONL (a line is a document; gzip/zstd
    compressed files are recognised by their magic bytes) and Parquet (a row is a document).
    Pre-tokenized formats: ``npy`` (a 1-D integer array) and ``bin`` (raw ``dtype`` token ids);
    documents in them are separated by the tokenizer's end-of-text id, and the job's tokenizer
    must be the one they were made with (``tokenizer.kind: file``).
    """

    name: str = Field(pattern=_NAME_PATTERN, description="Domain name (letters, digits, _.-).")
    paths: list[str] = Field(
        min_length=1, description="Files, directories (read recursively) or glob patterns."
    )
    format: Literal["auto", "text", "jsonl", "parquet", "npy", "bin"] = Field(
        "auto",
        description="File format; 'auto' decides by extension (.jsonl/.json[.gz|.zst], "
        ".parquet, .npy, .bin; else text).",
    )
    text_field: str = Field("text", description="JSONL key / Parquet column holding the text.")
    dtype: Literal["uint16", "uint32"] | None = Field(
        None, description="Token type of raw pre-tokenized .bin files (required for them)."
    )
    max_epochs: float | None = Field(
        None, gt=0, description="Repetition limit of this domain (default: target.max_epochs)."
    )
    group: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)*$",
        description="Group path (e.g. 'web' or 'web/en'): groups can be searched as one unit.",
    )
    share: float | None = Field(
        None, gt=0, description="Fixed share within its group (relative; default: natural)."
    )
    skip_bad_records: bool | None = Field(
        None, description="Skip unreadable records instead of failing (default: data's)."
    )

    @model_validator(mode="after")
    def _dtype_matches_format(self) -> DomainSpec:
        if self.dtype is not None and self.format not in ("auto", "bin", "npy"):
            raise ValueError(f"dtype is only used with pre-tokenized formats, not {self.format!r}")
        if self.format == "bin" and self.dtype is None:
            raise ValueError("format 'bin' needs dtype (uint16 or uint32)")
        if self.share is not None and self.group is None:
            raise ValueError("share is the proportion within a group; set group too")
        return self


class TokenizerSpec(_Section):
    """Either train a byte-level BPE on a sample of every domain, or load a tokenizer.json."""

    kind: Literal["bpe", "file"] = "bpe"
    vocab_size: int = Field(4096, ge=256, le=1_000_000)
    sample_bytes_per_domain: int = Field(2_000_000, gt=0)
    path: str | None = Field(None, description="A HF tokenizer.json (kind: file).")

    @model_validator(mode="after")
    def _path_matches_kind(self) -> TokenizerSpec:
        if self.kind == "file" and not self.path:
            raise ValueError("kind 'file' needs 'path' to a tokenizer.json")
        if self.kind == "bpe" and self.path:
            raise ValueError("'path' is only used with kind 'file'")
        return self


class DataSpec(_Section):
    """How domains become token shards."""

    cache_dir: str = Field(
        "~/.cache/mixopt", description="Where tokenizers and token shards are cached."
    )
    val_fraction: float = Field(0.05, gt=0.0, lt=0.5, description="Share of each domain held out.")
    max_val_tokens: int = Field(262_144, gt=0, description="Cap on each domain's held-out tokens.")
    workers: int = Field(
        0, ge=0, description="Tokenizer processes; 0 = one per available CPU core."
    )
    token_dtype: Literal["auto", "uint16", "uint32"] = Field(
        "auto", description="Shard token type; 'auto' is the narrowest that holds the vocab."
    )
    skip_bad_records: bool = Field(
        False, description="Skip unreadable records (counted and reported) instead of failing."
    )
    allow_mixed_versions: bool = Field(
        False, description="Let a job use trials that trained on other versions of a domain."
    )
    trust_mtime: bool = Field(
        True,
        description="Reuse a file's content digest while its size and mtime are unchanged.",
    )


class TargetSpec(_Section):
    """The model the mixture is for: its token budget sets each domain's repetition cap.

    A domain with ``n`` train tokens and a limit of ``e`` epochs can take at most
    ``n * e / tokens`` of the target run (Olmix). Without ``tokens`` there are no caps.
    """

    tokens: float | None = Field(
        None, gt=0, description="Training tokens of the target model (e.g. 1e11)."
    )
    max_epochs: float = Field(4.0, gt=0, description="Default repetition limit per domain.")


class GroupsSpec(_Section):
    """Hierarchical domains (``DomainSpec.group``): search over groups or over leaves.

    ``level: groups`` searches one weight per top-level group (and per ungrouped domain); the
    leaves of a group keep fixed proportions (their ``share``, else their natural token share).
    ``depth`` picks how many levels of the group path form a unit (1: 'web', 2: 'web/en').
    """

    level: Literal["leaves", "groups"] = "leaves"
    depth: int = Field(1, ge=1, le=8)


# ---------------------------------------------------------------------------------- objective


class ConstraintSpec(_Section):
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


class ObjectiveSpec(_Section):
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


# -------------------------------------------------------------------------------------- space


class SpaceSpec(_Section):
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


# -------------------------------------------------------------------------------------- proxy


class ProxySpec(_Section):
    """The proxy model trained on each candidate mixture, and how it is trained.

    ``arch: moe`` swaps every MLP of the preset for 8 experts of half its width, top-2 routed
    (same active FLOPs); MoE settings (``n_experts``, ``top_k``, ``shared_expert_d_ff``,
    ``balance: aux_loss | aux_free | none``, ``aux_scope: micro | global``, ``aux_loss_coef``,
    ``z_loss_coef``, ...) go in ``overrides`` like any other model field (see
    ``proxies.config.MoEConfig``). Preset, arch and overrides are checked here, without torch.
    """

    arch: Literal["dense", "moe"] = Field("dense", description="dense GPT or Mixture-of-Experts.")
    preset: str = Field("tiny", description="A preset in proxies.presets (e.g. tiny, 1m).")
    overrides: dict[str, int | float | bool | str] = Field(
        default_factory=dict, description="Model fields that replace the preset's."
    )
    seq_len: int = Field(128, ge=8, le=65_536)
    batch_size: int = Field(16, ge=1)
    train_tokens: int = Field(500_000, gt=0, description="Tokens each proxy trains on.")
    lr: float = Field(3e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    eval_tokens: int = Field(32_768, gt=0, description="Validation tokens per domain.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    micro_batch_size: int | None = Field(
        None, ge=1, description="Split each step's batch (gradient accumulation); must divide it."
    )
    eval_every: int = Field(
        0, ge=0, description="Also evaluate every this many steps (0 = only at the end)."
    )
    metrics: list[str] = Field(
        default_factory=list,
        description="Metric hooks run at each evaluation: registered names or 'module:function'.",
    )
    checkpoint_every: int = Field(
        0, ge=0, description="Steps between resumable trial checkpoints (0 = no checkpoints)."
    )
    compile: bool = Field(False, description="torch.compile the training step on CUDA.")
    stacking: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Train trials of one shape together as one stacked model: 'auto' where the "
        "benchmark says it is faster (GPU, small proxies), 'on' always, 'off' never.",
    )
    max_stack: int = Field(16, ge=1, le=256, description="Most trials stacked in one process.")

    @model_validator(mode="after")
    def _model_config_builds(self) -> ProxySpec:
        from proxies.presets import get_preset  # torch-free

        fixed = sorted({"vocab_size", "seq_len"} & set(self.overrides))
        if fixed:
            raise ValueError(
                f"overrides cannot set {', '.join(fixed)}: seq_len is proxy.seq_len and "
                "vocab_size comes from the tokenizer"
            )
        try:
            get_preset(
                self.preset, vocab_size=256, seq_len=self.seq_len, arch=self.arch, **self.overrides
            )
        except (TypeError, ValueError) as error:
            raise ValueError(str(error)) from None
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"micro_batch_size ({self.micro_batch_size}) must divide batch_size "
                f"({self.batch_size})"
            )
        return self


# ------------------------------------------------------------------------------------- search


class SamplerSpec(_Section):
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


class FidelitySpec(_Section):
    """A cheaper proxy the ``mfbo`` strategy may train instead of the search proxy (``proxy``,
    the target fidelity): the search proxy with these replacements."""

    preset: str | None = Field(None, description="A smaller preset (e.g. tiny under 1m).")
    train_tokens: int | None = Field(None, gt=0, description="Fewer training tokens.")
    lr: float | None = Field(None, gt=0, description="Its learning rate, if it differs.")

    @model_validator(mode="after")
    def _changes_something(self) -> FidelitySpec:
        if self.preset is None and self.train_tokens is None:
            raise ValueError("give preset and/or train_tokens")
        return self


class SearchSpec(_Section):
    """Budget and strategy: an initial design, then rounds proposed from a fitted predictor."""

    seed: int = 0
    initial_trials: int = Field(16, ge=2, description="Mixtures drawn by the sampler first.")
    rounds: int = Field(1, ge=0, description="Proposal rounds after the initial design.")
    trials_per_round: int = Field(4, ge=1)
    strategy: Literal["bo", "regmix", "law", "pareto", "mfbo", "random"] = Field(
        "bo",
        description="bo: batch Bayesian optimisation (GP, qLogNEI); regmix: simulate and average "
        "the best predicted; law: optimise a fitted mixing law; pareto: the objective under "
        "constraints on other metrics; mfbo: multi-fidelity, cost-aware BO that also picks each "
        "trial's fidelity (search.fidelities); random: Dirichlet draws.",
    )
    fidelities: list[FidelitySpec] = Field(
        default_factory=list,
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
    predictor: str = Field("auto", description="Predictor of the regmix strategy.")
    candidates: int = Field(100_000, ge=100, description="Simulated mixtures per proposal.")
    top_k: int = Field(128, ge=1, description="Best-predicted candidates averaged.")
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)


Baseline = Literal["uniform", "natural", "best_trial"]
DEFAULT_BASELINES: tuple[Baseline, ...] = ("uniform", "natural", "best_trial")


class ValidateSpec(_Section):
    """After the search: train the recommendation next to baselines, at a larger scale.

    ``preset``, ``train_tokens`` and ``overrides`` replace the search proxy's for validation
    trials (a bigger model on more tokens is the evidence a team needs before a large run);
    left unset, validation uses the search proxy.
    """

    enabled: bool = True
    baselines: list[Baseline] = Field(default_factory=lambda: list(DEFAULT_BASELINES))
    current: dict[str, float] | None = Field(
        None, description="The team's current mixture, validated as a baseline too."
    )
    seeds: int = Field(2, ge=1, le=16, description="Seeds per validated mixture (the spread).")
    preset: str | None = Field(None, description="Validation proxy preset (e.g. 1m, 5m).")
    train_tokens: int | None = Field(None, gt=0, description="Validation training tokens.")
    overrides: dict[str, int | float | bool | str] = Field(
        default_factory=dict, description="Model fields of the validation proxy."
    )
    lr: float | None = Field(None, gt=0, description="Validation learning rate.")


class ResourcesSpec(_Section):
    """Where trials run."""

    max_concurrent_trials: int = Field(2, ge=1)
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    ray_address: str | None = Field(None, description="Join this Ray cluster; local if unset.")
    max_retries: int = Field(1, ge=0)


class TrackingSpec(_Section):
    """MLflow: SQLite in the job directory unless a tracking URI is given."""

    enabled: bool = True
    mlflow_uri: str | None = None
    experiment: str = "mixopt"


# ---------------------------------------------------------------------------------------- job


class JobSpec(_Section):
    """A whole mixture-search job."""

    name: str = Field(pattern=_NAME_PATTERN)
    output_dir: str = Field("runs", description="Job directories are created under this folder.")
    domains: list[DomainSpec] = Field(min_length=2)
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

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

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
        metric_names = {f"val_loss/{n}" for n in names}
        unknown_metrics = sorted(set(self.objective.metrics) - metric_names)
        if unknown_metrics:
            raise ValueError(
                f"objective.metrics: unknown metric(s) {unknown_metrics}; "
                f"available: {sorted(metric_names)}"
            )
        for i, constraint in enumerate(self.objective.constraints):
            if constraint.metric not in metric_names:
                raise ValueError(
                    f"objective.constraints.{i}.metric: unknown metric {constraint.metric!r}; "
                    f"available: {sorted(metric_names)}"
                )
            if constraint.relative_to == "current" and self.validate_.current is None:
                raise ValueError(
                    f"objective.constraints.{i}: relative_to 'current' needs validate.current"
                )
        if self.objective.constraints and self.search.strategy != "pareto":
            raise ValueError("objective.constraints are enforced by search.strategy 'pareto'")
        if self.objective.constraints and self.objective.direction != "minimize":
            raise ValueError("objective.constraints work with direction 'minimize'")
        if self.validate_.current is not None:
            total = sum(self.validate_.current.values())
            if abs(total - 1.0) > 1e-6 or any(w < 0 for w in self.validate_.current.values()):
                raise ValueError(
                    f"validate.current: weights must be >= 0 and sum to 1, got {total}"
                )
        if self.validate_.preset or self.validate_.overrides or self.validate_.train_tokens:
            try:
                self.validation_proxy()
            except ValidationError as error:
                raise ValueError(
                    "validate: " + format_validation_error(error, "validation proxy")
                ) from None
        if self.search.strategy == "mfbo" and not self.search.fidelities:
            raise ValueError("search.fidelities: strategy 'mfbo' needs at least one cheaper proxy")
        if (
            self.search.strategy == "mfbo"
            and self.search.initial_at_target >= self.search.initial_trials
        ):
            raise ValueError("search.initial_at_target must be smaller than initial_trials")
        if self.search.fidelities and self.search.strategy != "mfbo":
            raise ValueError("search.fidelities are used by search.strategy 'mfbo' only")
        for i in range(len(self.search.fidelities)):
            try:
                proxy = self.fidelity_proxy(i)
            except ValidationError as error:
                raise ValueError(
                    f"search.fidelities.{i}: " + format_validation_error(error, "fidelity proxy")
                ) from None
            if proxy == self.proxy:
                raise ValueError(f"search.fidelities.{i}: the same proxy as the target (proxy)")
        if self.search.top_k > self.search.candidates:
            raise ValueError("search.top_k must not exceed search.candidates")
        # Feasibility of the space is checked by mixopt.space.MixtureSpace (a clear message there).
        from mixopt.errors import MixoptError
        from mixopt.space import MixtureSpace

        try:
            MixtureSpace.from_spec(self)
        except MixoptError as error:
            raise ValueError(str(error)) from None
        return self

    def fidelity_proxy(self, index: int) -> ProxySpec:
        """The proxy of ``search.fidelities[index]``: the search proxy with its replacements."""
        f = self.search.fidelities[index]
        update = {k: v for k, v in f.model_dump().items() if v is not None}
        return ProxySpec.model_validate({**self.proxy.model_dump(), **update})

    def validation_proxy(self) -> ProxySpec:
        """The proxy validation trials train: the search proxy with validate's replacements."""
        v = self.validate_
        update: dict[str, Any] = {}
        if v.preset is not None:
            update["preset"] = v.preset
        if v.train_tokens is not None:
            update["train_tokens"] = v.train_tokens
        if v.lr is not None:
            update["lr"] = v.lr
        if v.overrides:
            update["overrides"] = {**self.proxy.overrides, **v.overrides}
        if not update:
            return self.proxy
        return ProxySpec.model_validate({**self.proxy.model_dump(), **update})

    def objective_weights(self) -> dict[str, float]:
        """Metric name → weight of the scalar objective (mean val loss when none are given)."""
        if self.objective.metrics:
            return dict(self.objective.metrics)
        return {f"val_loss/{n}": 1.0 / len(self.domains) for n in self.domain_names}

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ------------------------------------------------------------------------------------ loading


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: ``source: field.path: message``."""
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {where}: {message}")
    return "\n".join(lines)


def parse_spec(data: Any, *, source: str = "spec", base_dir: Path | None = None) -> JobSpec:
    """Validate a spec mapping; resolve relative paths against ``base_dir``."""
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: the spec must be a mapping of sections, got {type(data).__name__}"
        )
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(format_validation_error(error, source)) from None
    if base_dir is not None:
        _resolve_paths(spec, base_dir)
    return spec


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a YAML spec file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML: {error}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a UTF-8 text file") from None
    return parse_spec(data, source=str(path), base_dir=path.resolve().parent)


def _absolute(value: str, base_dir: Path) -> str:
    expanded = Path(value).expanduser()
    return str(expanded if expanded.is_absolute() else (base_dir / expanded).resolve())


def _resolve_paths(spec: JobSpec, base_dir: Path) -> None:
    for domain in spec.domains:
        domain.paths = [_absolute(p, base_dir) for p in domain.paths]
    if spec.tokenizer.path:
        spec.tokenizer.path = _absolute(spec.tokenizer.path, base_dir)
    spec.data.cache_dir = _absolute(spec.data.cache_dir, base_dir)
    spec.output_dir = _absolute(spec.output_dir, base_dir)
