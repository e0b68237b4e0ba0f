"""A domain's shards in the cache: looked up by key, or written and published atomically.

A domain becomes two flat token files (``train.bin``, ``val.bin``; ``uint16`` when the vocabulary
fits, else ``uint32``), each document followed by the end-of-text id, plus ``meta.json``. They live
under ``<cache_dir>/shards/<key>/<domain>/`` where the key covers the domain's content hash, the
tokenizer hash, the split settings and :data:`SHARD_FORMAT`. The files are written
(:mod:`mixopt.data.shard_writer`) into a temporary folder that is renamed into place at the end:
a failure never leaves a half-written entry and never touches existing ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.data.encode import EncoderPool
from mixopt.data.shard_writer import ShardStats, token_dtype, write_shards
from mixopt.errors import DataError

if TYPE_CHECKING:
    from mixopt.data.sources import DomainSources
    from mixopt.data.tokenizer import TokenizerInfo

SHARD_FORMAT = "shards-v1"


def shard_dtype(vocab_size: int, requested: str = "auto", *, tokenizer: str = "") -> str:
    """The shards' token type: ``requested``, checked to hold the vocabulary, or the narrowest."""
    if requested == "auto":
        return token_dtype(vocab_size)
    limit = int(np.iinfo(np.dtype(requested)).max) + 1
    if vocab_size > limit:
        raise DataError(
            f"tokenizer {tokenizer}: its {vocab_size} token ids do not fit data.token_dtype "
            f"{requested} (at most {limit} ids); use uint32 or auto"
        )
    return requested


def shard_key(
    content_hash: str,
    tokenizer_hash: str,
    val_fraction: float,
    max_val_tokens: int,
    **extra: Any,
) -> str:
    """Cache key of a domain's shards. ``extra`` settings (dtype, skipping) enter the key only
    when they differ from the defaults, so existing entries stay valid."""
    settings: dict[str, Any] = {
        "format": SHARD_FORMAT,
        "content": content_hash,
        "tokenizer": tokenizer_hash,
        "val_fraction": val_fraction,
        "max_val_tokens": max_val_tokens,
    }
    settings.update({k: v for k, v in extra.items() if v not in (None, False, "auto")})
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def build_shards(
    sources: DomainSources,
    tokenizer: TokenizerInfo,
    val_fraction: float,
    max_val_tokens: int,
    cache_dir: Path,
    log: Callable[[str], None],
    *,
    pool: EncoderPool | None = None,
    dtype: str = "auto",
    eval_set: bool = False,
) -> tuple[Path, ShardStats]:
    """The domain's shard folder and stats: reused from the cache, or written now.

    ``pool`` encodes the chunks (a one-process pool is made when not given); ``dtype`` is the
    spec's ``data.token_dtype``; ``eval_set``: every token (up to ``max_val_tokens``) is a
    validation token, none a train token (see :func:`~mixopt.data.shard_writer.write_shards`).
    """
    out_dtype = shard_dtype(tokenizer.vocab_size, dtype, tokenizer=str(tokenizer.path))
    key = shard_key(
        sources.content_hash,
        tokenizer.hash,
        val_fraction,
        max_val_tokens,
        dtype=dtype,
        skip_bad_records=sources.skip_bad_records,
        eval_set=eval_set,
    )
    directory = cache_dir / "shards" / key / sources.name
    if (directory / "meta.json").is_file():
        stats = load_stats(directory)
        log(f"data: {sources.name}: shards reused from {directory}")
        return directory, stats
    (cache_dir / "shards").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir / "shards"))
    own_pool = pool is None
    if pool is None:
        pool = EncoderPool(
            str(tokenizer.path), tokenizer.eot_id, tokenizer.vocab_size, out_dtype, workers=1
        )
    try:
        started = time.perf_counter()
        work = staging / sources.name
        work.mkdir()
        stats = write_shards(
            sources,
            tokenizer,
            val_fraction,
            max_val_tokens,
            work,
            pool=pool,
            dtype=out_dtype,
            log=log,
            eval_set=eval_set,
        )
        meta = {
            "format": SHARD_FORMAT,
            "domain": sources.name,
            "content_hash": sources.content_hash,
            "tokenizer_hash": tokenizer.hash,
            "val_fraction": val_fraction,
            "max_val_tokens": max_val_tokens,
            "skip_bad_records": sources.skip_bad_records,
            "eval_set": eval_set,
            **asdict(stats),
        }
        (work / "meta.json").write_text(json.dumps(meta, indent=2))
        _publish(work, directory)
    finally:
        if own_pool:
            pool.close()
        shutil.rmtree(staging, ignore_errors=True)
    _log_built(sources.name, stats, time.perf_counter() - started, log)
    return directory, stats


def load_stats(directory: Path) -> ShardStats:
    """Stats of a cached shard folder, checked against its files' sizes."""
    try:
        stats = ShardStats.from_dict(json.loads((directory / "meta.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"cache entry {directory} is damaged ({error}); delete it") from None
    itemsize = np.dtype(stats.dtype).itemsize
    for name, tokens in (("train.bin", stats.train_tokens), ("val.bin", stats.val_tokens)):
        path = directory / name
        if not path.is_file() or path.stat().st_size != tokens * itemsize:
            raise DataError(f"cache entry {directory} is damaged ({name} size); delete it")
    return stats


def _publish(work: Path, directory: Path) -> None:
    """Rename the finished folder into place; if another run got there first, keep theirs."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(work, directory)
    except OSError:
        if not (directory / "meta.json").is_file():
            raise


def _log_built(name: str, stats: ShardStats, seconds: float, log: Callable[[str], None]) -> None:
    tokens = stats.train_tokens + stats.val_tokens
    nbytes = stats.train_bytes + stats.val_bytes
    log(
        f"data: {name}: {stats.documents} docs, {stats.train_tokens} train + {stats.val_tokens} "
        f"val tokens ({stats.split} split), {nbytes / max(tokens, 1):.2f} bytes/token, "
        f"tokenized in {seconds:.1f}s ({nbytes / 1e6 / max(seconds, 1e-9):.1f} MB/s)"
    )
