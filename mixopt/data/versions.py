"""Data versions: which version of each domain a trial trained on, and which trials are stale.

Every trial records, per domain, the short content hash of the domain's files (runs-table
column ``data_hash/<domain>``) and the tokenizer's hash (``tokenizer_hash``). The *current*
state of a job's data is computed from its spec without tokenizing anything
(:func:`current_state`: the domains are resolved and hashed, with the digest cache, and the
tokenizer is looked up); a trial is *stale* when a domain or the tokenizer differs
(:func:`stale_reasons`). :func:`check_versions` is the gate a job applies before it mixes
evidence: trials from another version of a domain are refused unless
``data.allow_mixed_versions`` is set.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.errors import DataError, MixoptError
from mixopt.runs_table import DOMAIN_HASH_PREFIX, TOKENIZER_HASH

if TYPE_CHECKING:
    from mixopt.data.manifest import DataManifest
    from mixopt.spec import JobSpec

SHORT = 16
"""Hex digits of a hash kept in a runs table."""


@dataclass(frozen=True)
class DataState:
    """The data a spec names now: short content hash per domain, and the tokenizer's hash.

    ``domains[d]`` is ``None`` when the domain cannot be read (the reason is in ``notes``);
    ``tokenizer`` is ``None`` when it is unknown without training one (a BPE not in the cache).
    """

    domains: dict[str, str | None]
    tokenizer: str | None
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, manifest: DataManifest) -> DataState:
        domains: dict[str, str | None] = dict(manifest.domain_hashes())
        return cls(domains, manifest.tokenizer_hash[:SHORT])


def current_state(spec: JobSpec) -> DataState:
    """Hash the spec's domains (reusing remembered digests) and find its tokenizer's hash."""
    from mixopt.data.hashing import DigestCache
    from mixopt.data.sources import scan_domain
    from mixopt.data.tokenizer import tokenizer_key

    cache_dir = Path(spec.data.cache_dir).expanduser()
    digests = DigestCache(cache_dir / "digests") if spec.data.trust_mtime else None
    domains: dict[str, str | None] = {}
    notes: dict[str, str] = {}
    sources = []
    if spec.cluster is not None:  # the clusters in the cache, if the data stage made them
        from mixopt.data.clustered import cluster_sources

        try:
            found = cluster_sources(spec, cache_dir.resolve(), digests, build=False)
        except MixoptError as error:
            found, notes["domains.cluster"] = None, str(error)
        if found is None:
            notes.setdefault(
                "domains.cluster", "the clusters are not in the cache (they would be made)"
            )
        sources = found or []
        domains = {s.name: s.content_hash[:SHORT] for s in sources}
        domains |= {n: None for n in spec.domain_names if n not in domains}
    for domain in spec.domains if spec.cluster is None else []:
        try:
            scanned = scan_domain(domain, digests=digests)
        except MixoptError as error:
            domains[domain.name] = None
            notes[domain.name] = str(error)
            continue
        sources.append(scanned)
        domains[domain.name] = scanned.content_hash[:SHORT]
    tokenizer: str | None = None
    if spec.tokenizer.kind == "file":
        assert spec.tokenizer.path is not None
        path = Path(spec.tokenizer.path).expanduser()
        if path.is_file():
            tokenizer = _sha256(path)[:SHORT]
        else:
            notes["tokenizer"] = f"tokenizer {path} not found"
    elif len(sources) == len(spec.domains):
        key = tokenizer_key(
            spec.tokenizer.vocab_size, spec.tokenizer.sample_bytes_per_domain, sources
        )
        trained = cache_dir / "tokenizers" / key / "tokenizer.json"
        if trained.is_file():
            tokenizer = _sha256(trained)[:SHORT]
        else:
            notes["tokenizer"] = "the BPE for this data is not in the cache (it would be trained)"
    return DataState(domains, tokenizer, notes)


def stale_reasons(row: Mapping[str, Any], state: DataState) -> list[str]:
    """Why a runs-table row does not match ``state`` (empty: it is current).

    A row recorded before per-domain hashes existed is compared by nothing and reported as
    unknown. A tokenizer that cannot be known without training is taken as unchanged when no
    domain changed (a trained BPE is a function of the domains' contents and its settings).
    """
    reasons: list[str] = []
    recorded = {
        key.removeprefix(DOMAIN_HASH_PREFIX): value
        for key, value in row.items()
        if key.startswith(DOMAIN_HASH_PREFIX) and _present(value)
    }
    if not recorded:
        return ["unknown: the trial has no per-domain data hashes"]
    for domain, current in state.domains.items():
        before = recorded.get(domain)
        if before is None:
            reasons.append(f"{domain}: not in the trial's data")
        elif current is None:
            reasons.append(f"{domain}: unreadable now")
        elif before != current:
            reasons.append(f"{domain} changed ({before[:8]} -> {current[:8]})")
    for domain in sorted(set(recorded) - set(state.domains)):
        reasons.append(f"{domain}: no longer a domain")
    before_tokenizer = row.get(TOKENIZER_HASH)
    if _present(before_tokenizer):
        if state.tokenizer is not None and before_tokenizer != state.tokenizer:
            reasons.append(
                f"tokenizer changed ({str(before_tokenizer)[:8]} -> {state.tokenizer[:8]})"
            )
        elif state.tokenizer is None and reasons:
            reasons.append("tokenizer would be retrained")
    return reasons


def check_versions(
    rows: Iterable[Mapping[str, Any]],
    manifest: DataManifest,
    *,
    allow_mixed: bool = False,
    source: str = "runs table",
) -> list[str]:
    """The trial ids whose data differs from ``manifest``; a DataError naming them and the
    changed domains unless ``allow_mixed`` (then the caller may warn and go on)."""
    state = DataState.from_manifest(manifest)
    stale: dict[str, list[str]] = {}
    for row in rows:
        reasons = stale_reasons(row, state)
        if reasons:
            stale[str(row.get("trial_id", "?"))] = reasons
    if stale and not allow_mixed:
        shown = "; ".join(f"{t}: {', '.join(r)}" for t, r in list(stale.items())[:5])
        more = f" (and {len(stale) - 5} more)" if len(stale) > 5 else ""
        raise DataError(
            f"{source}: {len(stale)} trial(s) trained on other versions of the data — {shown}"
            f"{more}; their results would be mixed with the current data's. Re-run them, or "
            "set data.allow_mixed_versions: true to use them anyway"
        )
    return sorted(stale)


def _present(value: Any) -> bool:
    if value is None:
        return False
    return not (isinstance(value, float) and math.isnan(value))


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
