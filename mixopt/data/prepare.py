"""The data stage of a job: every domain read, hashed, tokenized, split and sharded; every eval
set read, hashed and tokenized into validation tokens only (never trained on, and never a
training domain's file); every probe task read, checked and tokenized into a small cached file
(``mixopt.data.probes``).

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

import numpy as np

from mixopt.data.encode import EncoderPool, available_cores
from mixopt.data.hashing import DigestCache
from mixopt.data.manifest import DataManifest, DomainShards
from mixopt.data.probes import prepare_probe, read_probe_file
from mixopt.data.shards import build_shards, shard_dtype
from mixopt.data.sources import DomainSources, scan_domain
from mixopt.data.tokenizer import TokenizerInfo, prepare_tokenizer
from mixopt.errors import DataError, SpecError

if TYPE_CHECKING:
    from mixopt.spec import JobSpec
    from mixopt.spec.data import SourceSpec


def prepare_data(spec: JobSpec, *, log: Callable[[str], None] = print) -> DataManifest:
    """Tokenize and shard every domain of the job (reusing the cache) and describe the result.

    Every domain is resolved and hashed first, so a missing file or a bad setting fails before
    any tokenizing; a bad record fails when its domain is tokenized, leaving the cache as it was
    (the domains finished before it stay cached).
    """
    cache_dir = Path(spec.data.cache_dir).expanduser().resolve()
    started = time.perf_counter()
    digests = DigestCache(cache_dir / "digests") if spec.data.trust_mtime else None
    if spec.cluster is not None:  # domains discovered by clustering (mixopt.data.clustered)
        from mixopt.data.clustered import cluster_sources

        domains = cluster_sources(spec, cache_dir, digests, log) or []
    else:
        domains = [_scan(domain_spec, spec, digests, log) for domain_spec in spec.domains]
    evals = [_scan(eval_spec, spec, digests, log) for eval_spec in spec.evals]
    _check_never_trained(domains, evals)
    for probe in spec.probes:  # a bad task file fails before any tokenizing
        read_probe_file(probe.path)
    _check_pretokenized(spec, domains + evals)
    tokenizer = prepare_tokenizer(spec.tokenizer, domains, cache_dir, log)
    dtype = shard_dtype(tokenizer.vocab_size, spec.data.token_dtype, tokenizer=str(tokenizer.path))
    _check_token_files_fit(domains + evals, tokenizer)
    workers = spec.data.workers or available_cores()
    caps = {e.name: e.max_tokens or spec.data.max_val_tokens for e in spec.evals}
    with EncoderPool(
        str(tokenizer.path), tokenizer.eot_id, tokenizer.vocab_size, dtype, workers
    ) as pool:
        shards = {d.name: _shard(d, tokenizer, spec, cache_dir, pool, log) for d in domains}
        eval_shards = {
            e.name: _shard(e, tokenizer, spec, cache_dir, pool, log, eval_cap=caps[e.name])
            for e in evals
        }
    probes = {
        p.name: prepare_probe(p.name, p.path, tokenizer, cache_dir, max_items=p.max_items, log=log)
        for p in spec.probes
    }
    manifest = DataManifest(
        tokenizer_path=str(tokenizer.path),
        tokenizer_hash=tokenizer.hash,
        vocab_size=tokenizer.vocab_size,
        eot_id=tokenizer.eot_id,
        domains=shards,
        eot_token=tokenizer.eot_token,
        val_fraction=spec.data.val_fraction,
        max_val_tokens=spec.data.max_val_tokens,
        evals=eval_shards,
        probes=probes,
    )
    total = sum(d.train_tokens + d.val_tokens for d in shards.values())
    held = f", {len(eval_shards)} eval set(s)" if eval_shards else ""
    held += f", {len(probes)} probe task(s)" if probes else ""
    log(
        f"data: ready in {time.perf_counter() - started:.1f}s: {len(shards)} domains{held}, "
        f"{total} tokens, data hash {manifest.data_hash}"
    )
    return manifest


def _scan(
    domain_spec: SourceSpec,
    spec: JobSpec,
    digests: DigestCache | None,
    log: Callable[[str], None],
) -> DomainSources:
    sources = scan_domain(domain_spec, skip_bad_records=spec.data.skip_bad_records, digests=digests)
    compressed = sum(bool(f.compression) for f in sources.files)
    kinds = f", {compressed} compressed" if compressed else ""
    if sources.pretokenized:
        kinds += ", pre-tokenized"
    log(
        f"data: {sources.name}{' (eval set)' if sources.kind != 'domain' else ''}: "
        f"{len(sources.files)} file(s){kinds}, "
        f"{sources.size_bytes / 1e6:.2f} MB, content {sources.content_hash[:12]}"
    )
    return sources


def _check_never_trained(domains: list[DomainSources], evals: list[DomainSources]) -> None:
    """No eval set file is a training domain's file (resolved paths: links and globs included)."""
    owners = {f.path: d.name for d in domains for f in d.files}
    for evaluation in evals:
        for source in evaluation.files:
            if source.path in owners:
                raise SpecError(
                    f"evals: eval set {evaluation.name!r} reads {source.path}, a file of training "
                    f"domain {owners[source.path]!r}: an eval set must hold text that is never "
                    "trained on"
                )


def _check_pretokenized(spec: JobSpec, domains: list[DomainSources]) -> None:
    """Pre-tokenized domains (and eval sets) need the tokenizer they were made with."""
    tokenized = [d.name for d in domains if d.pretokenized]
    if tokenized and spec.tokenizer.kind != "file":
        raise DataError(
            f"domain(s) {tokenized} are pre-tokenized (.npy/.bin): set tokenizer.kind to 'file' "
            "and tokenizer.path to the tokenizer.json they were made with (a BPE trained here "
            "would not match their token ids)"
        )


def _check_token_files_fit(domains: list[DomainSources], tokenizer: TokenizerInfo) -> None:
    """A pre-tokenized domain's dtype must be able to hold the tokenizer's ids."""
    for domain in domains:
        if domain.pretokenized and domain.dtype is not None:
            limit = int(np.iinfo(np.dtype(domain.dtype)).max) + 1
            if tokenizer.vocab_size > limit:
                raise DataError(
                    f"{domain.label}: its token files are {domain.dtype} (ids below "
                    f"{limit}) but tokenizer {tokenizer.path} has {tokenizer.vocab_size} ids; "
                    "they cannot have been made with it (or were cut to a too-narrow dtype)"
                )


def _shard(
    sources: DomainSources,
    tokenizer: TokenizerInfo,
    spec: JobSpec,
    cache_dir: Path,
    pool: EncoderPool,
    log: Callable[[str], None],
    *,
    eval_cap: int | None = None,
) -> DomainShards:
    """A domain's shards, or (``eval_cap`` given) an eval set's: up to that many tokens, all
    validation tokens."""
    eval_set = eval_cap is not None
    directory, stats = build_shards(
        sources,
        tokenizer,
        1.0 if eval_set else spec.data.val_fraction,
        spec.data.max_val_tokens if eval_cap is None else eval_cap,
        cache_dir,
        log,
        pool=pool,
        dtype=spec.data.token_dtype,
        eval_set=eval_set,
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
        skipped_records=stats.skipped_records,
    )
