"""What every export is made from: a job's recommendation, its data and the units it converts to.

A :class:`Blend` is read from the job directory through :class:`~mixopt.job.JobDir` only
(``recommendation.json``, ``spec.yaml``, ``data_manifest.json``), never from live state, so an
export can be repeated at any time and gives the same answer. Weights are kept as the exact
6-decimal token shares of the recommendation; :meth:`Blend.shares` gives them in the unit an
export needs (:mod:`mixopt.export.units`).

A job with mixture stages has :attr:`Blend.stages` (from the recommendation's ``stages``: each
stage's name, share, whether it was searched and its exact weights); :meth:`Blend.for_stage` is
the blend of one stage, so a format renders each stage the way it renders a single mixture. The
blend's own weights stay the searched stage's. A single-stage job has no stages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.errors import MixoptError
from mixopt.export.units import (
    DomainMeasure,
    Unit,
    byte_shares,
    document_shares,
    exact_weights,
    manifest_measures,
    token_shares,
)
from mixopt.job import JobDir
from mixopt.job.directory import MANIFEST_FILE

if TYPE_CHECKING:
    from mixopt.data.manifest import DataManifest
    from mixopt.export.retokenize import Measured, TokenizerInfo
    from mixopt.spec import DomainSpec, JobSpec


@dataclass(frozen=True)
class Source:
    """One domain as the exports see it."""

    name: str
    weight: float  # the recommended token share (job's tokenizer), 6 decimals
    token_file: str | None = None  # mixopt's flat train token file (raw ids, EOT after each doc)
    val_file: str | None = None
    dtype: str | None = None
    train_tokens: int | None = None
    files: tuple[str, ...] = ()  # the documents the domain was built from
    format: str = "auto"
    text_field: str = "text"
    max_epochs: float | None = None  # repetition limit, when the job had a target budget

    @property
    def prefix(self) -> str:
        """The token file without its extension (Megatron's dataset prefix)."""
        assert self.token_file is not None
        return str(Path(self.token_file).with_suffix(""))


@dataclass(frozen=True)
class StageBlend:
    """One stage of a staged recommendation (token shares of the job's tokenizer)."""

    index: int
    name: str | None
    share: float  # of the training tokens
    start: float  # where the stage starts, as a fraction of the training run
    searched: bool
    weights: dict[str, float]  # exact 6-decimal token shares over every domain

    @property
    def end(self) -> float:
        return min(1.0, self.start + self.share)

    @property
    def label(self) -> str:
        """E.g. ``stage 1 'anneal' (searched)``."""
        name = f" {self.name!r}" if self.name else ""
        return f"stage {self.index}{name} ({'searched' if self.searched else 'fixed'})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "share": self.share,
            "start": round(self.start, 9),
            "end": round(self.end, 9),
            "searched": self.searched,
            "mixture": self.weights,
        }


def read_stages(rec: Mapping[str, Any], domains: list[str], where: str) -> tuple[StageBlend, ...]:
    """The recommendation's stages (none for a single-stage job); MixoptError when malformed."""
    raw = rec.get("stages")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise MixoptError(f"{where}: stages must be a non-empty list, got {raw!r}")
    stages, start = [], 0.0
    for i, stage in enumerate(raw):
        try:
            share, weights = float(stage["share"]), dict(stage["weights"])
            searched, name = bool(stage.get("searched", False)), stage.get("name")
        except (KeyError, TypeError, ValueError):
            raise MixoptError(
                f"{where}: stages.{i} must have a share and weights, got {stage!r}"
            ) from None
        unknown = sorted(set(weights) - set(domains))
        if unknown:
            raise MixoptError(f"{where}: stages.{i}.weights: unknown domain(s) {unknown}")
        exact = exact_weights({d: float(weights.get(d, 0.0)) for d in domains})
        stages.append(StageBlend(i, name, share, start, searched, exact))
        start += share
    return tuple(stages)


@dataclass(frozen=True)
class Retokenized:
    """The domains re-measured under a team's tokenizer (``--tokenizer``)."""

    tokenizer: TokenizerInfo
    measured: dict[str, Measured]

    @property
    def measures(self) -> dict[str, DomainMeasure]:
        return {name: m.measure for name, m in self.measured.items()}


@dataclass(frozen=True)
class Blend:
    """Everything an export needs: the exact weights, where each domain's data is, the units."""

    job: str
    job_dir: Path
    recommendation: dict[str, Any]
    sources: tuple[Source, ...]
    target_tokens: float | None = None
    eot_id: int | None = None
    seed: int = 0
    data_dir: Path | None = None
    batch_tokens: int | None = None  # the trainer's global batch in tokens (--batch-tokens)
    manifest: DataManifest | None = None
    retokenized: Retokenized | None = None
    _cache: dict[str, dict[str, float]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @property
    def has_data(self) -> bool:
        return self.manifest is not None

    @property
    def stages(self) -> tuple[StageBlend, ...]:
        """The mixture stages in training order (empty for a single-stage job)."""
        where = f"{self.job_dir}: recommendation"
        return read_stages(self.recommendation, [s.name for s in self.sources], where)

    def for_stage(self, stage: StageBlend) -> Blend:
        """This blend with ``stage``'s weights (everything else the same)."""
        sources = tuple(dataclasses.replace(s, weight=stage.weights[s.name]) for s in self.sources)
        return dataclasses.replace(self, sources=sources)

    def any_stage(self) -> Blend:
        """This blend with each domain's largest weight over the stages (what a schedule's
        header lists as left out is what no stage trains on); itself without stages."""
        stages = self.stages
        if not stages:
            return self
        sources = tuple(
            dataclasses.replace(s, weight=max(st.weights[s.name] for st in stages))
            for s in self.sources
        )
        return dataclasses.replace(self, sources=sources)

    def stage_tokens(self, stage: StageBlend) -> tuple[float, float] | None:
        """The stage's range of the target run's tokens (None without ``target.tokens``)."""
        if self.target_tokens is None:
            return None
        return stage.start * self.target_tokens, stage.end * self.target_tokens

    @property
    def weights(self) -> dict[str, float]:
        """The recommended token shares (the job's tokenizer)."""
        return {s.name: s.weight for s in self.sources}

    @property
    def data_hash(self) -> str | None:
        if self.manifest is not None:
            return self.manifest.data_hash
        value = self.recommendation.get("data_hash")
        return str(value) if value else None

    @property
    def measures(self) -> dict[str, DomainMeasure]:
        """Each domain's whole data under the job's tokenizer (empty without a manifest)."""
        return manifest_measures(self.manifest) if self.manifest is not None else {}

    def proxy_tokenizer(self) -> TokenizerInfo | None:
        from mixopt.export.retokenize import TokenizerInfo

        m = self.manifest
        return (
            None if m is None else TokenizerInfo(m.tokenizer_path, m.tokenizer_hash, m.vocab_size)
        )

    def token_tokenizer(self) -> TokenizerInfo | None:
        """The tokenizer that token-unit exports' shares are measured with."""
        return self.retokenized.tokenizer if self.retokenized else self.proxy_tokenizer()

    def shares(self, unit: Unit) -> dict[str, float]:
        """Every domain's weight in ``unit``: token shares (under ``--tokenizer`` when given,
        else the job's tokenizer) or per-example (document) probabilities."""
        if unit == "all":
            return self.weights
        if unit not in self._cache:
            if unit == "examples":
                self.require_data("per-example probabilities")
                self._cache[unit] = document_shares(self.weights, self.measures)
            elif self.retokenized is not None:
                bytes_ = byte_shares(self.weights, self.measures)
                self._cache[unit] = token_shares(bytes_, self.retokenized.measures)
            else:
                self._cache[unit] = self.weights
        return self._cache[unit]

    def active(self, unit: Unit) -> list[tuple[Source, float]]:
        """The domains with a weight above 0 in ``unit`` (what framework blends list)."""
        shares = self.shares(unit)
        return [(s, shares[s.name]) for s in self.sources if shares[s.name] > 0]

    def dropped(self) -> list[str]:
        return [s.name for s in self.sources if s.weight <= 0]

    def require_data(self, what: str) -> None:
        if self.manifest is None:
            raise MixoptError(
                f"{self.job_dir}: {what} needs the job's {MANIFEST_FILE} (where each domain's "
                "data is and how large it is), which is missing"
            )


def load_blend(
    job_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    tokenizer: str | None = None,
    batch_tokens: int | None = None,
) -> Blend:
    """The blend of the finished job in ``job_dir``; ``tokenizer`` re-measures every domain
    under that tokenizer (:mod:`mixopt.export.retokenize`); ``batch_tokens`` is the trainer's
    global batch in tokens (formats that state stages in steps use it)."""
    job = JobDir(job_dir)
    rec = job.load_recommendation()
    weights = exact_weights(rec["weights"])
    spec = job.load_spec() if job.spec_path.is_file() else None
    manifest = job.load_manifest()
    target_tokens = spec.target.tokens if spec is not None else None
    sources = []
    for name, weight in weights.items():
        domain = _domain(spec, name)
        fields: dict[str, Any] = {
            "format": domain.format if domain is not None else "auto",
            "text_field": domain.text_field if domain is not None else "text",
            "max_epochs": spec.max_epochs(name) if spec is not None and target_tokens else None,
        }
        if manifest is not None:
            shards = manifest.domains.get(name)
            if shards is None:
                raise MixoptError(f"{job.path}: the data manifest has no domain {name!r}")
            fields.update(
                token_file=shards.train_path,
                val_file=shards.val_path,
                dtype=shards.dtype,
                train_tokens=shards.train_tokens,
                files=tuple(shards.files),
            )
        sources.append(Source(name, weight, **fields))
    retokenized = None
    if tokenizer is not None:
        if manifest is None:
            raise MixoptError(
                f"{job.path}: --tokenizer re-measures the domains' text, which needs the job's "
                f"{MANIFEST_FILE} (missing)"
            )
        from mixopt.export.retokenize import load_tokenizer, remeasure

        info, encode = load_tokenizer(tokenizer)
        retokenized = Retokenized(info, remeasure(manifest, encode))
    return Blend(
        job=str(rec.get("job") or (spec.name if spec is not None else job.path.name)),
        job_dir=job.path.resolve(),
        recommendation=rec,
        sources=tuple(sources),
        target_tokens=float(target_tokens) if target_tokens else None,
        eot_id=manifest.eot_id if manifest is not None else None,
        seed=spec.search.seed if spec is not None else 0,
        data_dir=Path(data_dir) if data_dir is not None else None,
        batch_tokens=batch_tokens,
        manifest=manifest,
        retokenized=retokenized,
    )


def _domain(spec: JobSpec | None, name: str) -> DomainSpec | None:
    if spec is None:
        return None
    return next((d for d in spec.domains if d.name == name), None)
