"""The data stage of a job: every domain read, hashed, tokenized, split and sharded.

:func:`prepare_data` is the one entry point. It is idempotent and cheap to re-run: domains are
hashed by content (a read of the raw files), the tokenizer and each domain's shards are looked up
in the cache by those hashes, and only what changed is rebuilt. Progress goes to ``log`` (one line
per step, "reused" for cache hits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mixopt.data.manifest import DataManifest, DomainShards
from mixopt.data.readers import DomainSources, scan_domain
from mixopt.data.shards import build_shards
from mixopt.data.tokenizer import TokenizerInfo, prepare_tokenizer

if TYPE_CHECKING:
    from mixopt.spec import DomainSpec, JobSpec


def prepare_data(spec: JobSpec, *, log: Callable[[str], None] = print) -> DataManifest:
    """Tokenize and shard every domain of the job (reusing the cache) and describe the result."""
    cache_dir = Path(spec.data.cache_dir).expanduser().resolve()
    started = time.perf_counter()
    domains = [_scan(domain_spec, log) for domain_spec in spec.domains]
    tokenizer = prepare_tokenizer(spec.tokenizer, domains, cache_dir, log)
    shards = {d.name: _shard(d, tokenizer, spec, cache_dir, log) for d in domains}
    manifest = DataManifest(
        tokenizer_path=str(tokenizer.path),
        tokenizer_hash=tokenizer.hash,
        vocab_size=tokenizer.vocab_size,
        eot_id=tokenizer.eot_id,
        domains=shards,
        eot_token=tokenizer.eot_token,
        val_fraction=spec.data.val_fraction,
        max_val_tokens=spec.data.max_val_tokens,
    )
    total = sum(d.train_tokens + d.val_tokens for d in shards.values())
    log(
        f"data: ready in {time.perf_counter() - started:.1f}s: {len(shards)} domains, "
        f"{total} tokens, data hash {manifest.data_hash}"
    )
    return manifest


def _scan(domain_spec: DomainSpec, log: Callable[[str], None]) -> DomainSources:
    sources = scan_domain(domain_spec)
    log(
        f"data: {sources.name}: {len(sources.files)} file(s), {sources.size_bytes / 1e6:.2f} MB, "
        f"content {sources.content_hash[:12]}"
    )
    return sources


def _shard(
    sources: DomainSources,
    tokenizer: TokenizerInfo,
    spec: JobSpec,
    cache_dir: Path,
    log: Callable[[str], None],
) -> DomainShards:
    directory, stats = build_shards(
        sources, tokenizer, spec.data.val_fraction, spec.data.max_val_tokens, cache_dir, log
    )
    return DomainShards(
        name=sources.name,
        train_path=str(directory / "train.bin"),
        val_path=str(directory / "val.bin"),
        dtype=stats.dtype,
        train_tokens=stats.train_tokens,
        val_tokens=stats.val_tokens,
        train_bytes=stats.train_bytes,
        val_bytes=stats.val_bytes,
        documents=stats.documents,
        content_hash=sources.content_hash,
        files=[str(f.path) for f in sources.files],
        split=stats.split,
    )
