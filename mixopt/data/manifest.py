"""The data manifest: where each domain's (and eval set's) token shards are and what they hold.

It is what the rest of mixopt reads after the data stage: the trainer memory-maps the flat token
files (:meth:`DomainShards.tokens`), the mixture space takes the natural distribution and token
counts (for repetition caps), and every trial records :attr:`DataManifest.data_hash`, which changes
whenever the tokenizer, any domain's or eval set's content or the split settings change. An eval
set's shards hold only validation tokens (:attr:`DataManifest.evals`, never in the mixture).
Each probe task is one tokenized file (:attr:`DataManifest.probes`, ``mixopt.data.probes``).
Saved as JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mixopt.errors import DataError

MANIFEST_VERSION = 1

# Counts a manifest may lack (written before they were recorded): 0 reads as "unknown", and what
# needs them (the exports' unit conversions) says so instead of the whole manifest failing to load.
_OPTIONAL_COUNTS = ("train_bytes", "val_bytes", "documents")

if TYPE_CHECKING:
    from proxies.probe_tasks import ProbeFile
    from proxies.tokens import DomainTokens


@dataclass(frozen=True)
class DomainShards:
    """One domain's train and validation token files."""

    name: str
    train_path: str
    val_path: str
    dtype: str
    train_tokens: int
    val_tokens: int
    train_bytes: int
    val_bytes: int
    documents: int
    content_hash: str
    files: list[str]
    split: str = "hash"  # "hash" (whole documents by content hash), "tail" (stream tail), "all"
    skipped_records: int = 0  # bad records skipped under skip_bad_records

    def tokens(self, split: Literal["train", "val"]) -> np.ndarray:
        """The split's tokens as a read-only memory map."""
        path = self.train_path if split == "train" else self.val_path
        return np.memmap(path, dtype=self.dtype, mode="r")

    @property
    def bytes_per_token(self) -> float:
        return (self.train_bytes + self.val_bytes) / max(self.train_tokens + self.val_tokens, 1)


@dataclass(frozen=True)
class ProbeArtifact:
    """One probe task tokenized with the job's tokenizer (``proxies.probe_tasks`` JSON)."""

    name: str
    path: str
    content_hash: str  # sha256 of the task file's bytes
    items: int  # items kept (at most the probe's max_items)
    source: str  # the task file it was made from


@dataclass(frozen=True)
class DataManifest:
    """The tokenizer and every domain's shards, in the spec's domain order (and every eval
    set's, in the spec's order: validation tokens only)."""

    tokenizer_path: str
    tokenizer_hash: str
    vocab_size: int
    eot_id: int
    domains: dict[str, DomainShards]
    eot_token: str = "<|endoftext|>"
    val_fraction: float = 0.05
    max_val_tokens: int = 262_144
    evals: dict[str, DomainShards] = field(default_factory=dict)
    probes: dict[str, ProbeArtifact] = field(default_factory=dict)

    def natural_distribution(self) -> dict[str, float]:
        """Each domain's share of the train tokens."""
        total = sum(d.train_tokens for d in self.domains.values())
        if total == 0:
            return {name: 1.0 / len(self.domains) for name in self.domains}
        return {name: d.train_tokens / total for name, d in self.domains.items()}

    def domain_hashes(self) -> dict[str, str]:
        """Each domain's content hash, shortened to 16 hex digits (what a trial records)."""
        return {name: d.content_hash[:16] for name, d in self.domains.items()}

    def domain_tokens(self) -> tuple[DomainTokens, ...]:
        """Each domain's token files as a proxy reads them."""
        return _as_tokens(self.domains)

    def eval_tokens(self) -> tuple[DomainTokens, ...]:
        """Each eval set's token files as a proxy reads them (an empty train file)."""
        return _as_tokens(self.evals)

    def probe_files(self) -> tuple[ProbeFile, ...]:
        """Each probe task's tokenized file as a proxy reads it."""
        from proxies.probe_tasks import ProbeFile

        return tuple(ProbeFile(p.name, p.path) for p in self.probes.values())

    def train_tokens(self) -> dict[str, int]:
        """Each domain's train tokens (what repetition caps and epoch counts are made from)."""
        return {name: d.train_tokens for name, d in self.domains.items()}

    @property
    def data_hash(self) -> str:
        """Short hash of the tokenizer, every domain's (and eval set's) content and the split
        settings."""
        parts: dict[str, Any] = {
            "tokenizer": self.tokenizer_hash,
            "domains": [[name, d.content_hash] for name, d in self.domains.items()],
            "val_fraction": self.val_fraction,
            "max_val_tokens": self.max_val_tokens,
        }
        if self.evals:  # absent before eval sets existed: older hashes stay what they were
            parts["evals"] = [
                [name, d.content_hash, d.val_tokens] for name, d in self.evals.items()
            ]
        if self.probes:  # likewise for probe tasks
            parts["probes"] = [[name, p.content_hash, p.items] for name, p in self.probes.items()]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["domains"] = [asdict(d) for d in self.domains.values()]
        data["evals"] = [asdict(d) for d in self.evals.values()]
        data["probes"] = [asdict(p) for p in self.probes.values()]
        return {"version": MANIFEST_VERSION, **data}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataManifest:
        try:
            if d.get("version", MANIFEST_VERSION) != MANIFEST_VERSION:
                raise ValueError(f"version {d['version']}, expected {MANIFEST_VERSION}")
            domains, evals = (
                [
                    _build(DomainShards, {**dict.fromkeys(_OPTIONAL_COUNTS, 0), **item})
                    for item in d.get(key, [])
                ]
                for key in ("domains", "evals")
            )
            if "domains" not in d:
                raise KeyError("domains")
            probes = [_build(ProbeArtifact, item) for item in d.get("probes", [])]
            top = {k: v for k, v in d.items() if k not in ("version", "domains", "evals", "probes")}
            return _build(
                cls,
                {
                    **top,
                    "domains": {s.name: s for s in domains},
                    "evals": {s.name: s for s in evals},
                    "probes": {p.name: p for p in probes},
                },
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"data manifest is malformed: {error}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> DataManifest:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise DataError(f"data manifest {path}: cannot read ({error})") from None
        if not isinstance(data, dict):
            raise DataError(f"data manifest {path}: expected a JSON object")
        return cls.from_dict(data)


def _as_tokens(shards: dict[str, DomainShards]) -> tuple[DomainTokens, ...]:
    from proxies.tokens import DomainTokens

    return tuple(
        DomainTokens(
            name=s.name,
            train_path=s.train_path,
            val_path=s.val_path,
            dtype=s.dtype,  # type: ignore[arg-type]  # uint16 | uint32: what shards write
            train_bytes=s.train_bytes,
            val_bytes=s.val_bytes,
        )
        for s in shards.values()
    )


def _build(cls: Any, data: dict[str, Any]) -> Any:
    """``cls(**data)`` that names unknown keys instead of a generic TypeError."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}")
    return cls(**data)
