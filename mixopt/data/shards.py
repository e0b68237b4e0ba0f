"""Token shards of one domain: tokenize, split into train and validation, write, cache.

A domain becomes two flat token files (``train.bin``, ``val.bin``; ``uint16`` when the vocabulary
fits, else ``uint32``), each document followed by the end-of-text id, plus ``meta.json``. They live
under ``<cache_dir>/shards/<key>/<domain>/`` where the key covers the domain's content hash, the
tokenizer hash, the split settings and :data:`SHARD_FORMAT`.

Documents are streamed in chunks, encoded in worker processes (:mod:`mixopt.data.encode`) and
appended in order to one token stream, with a per-document index (tokens, bytes, content key)
written to disk next to it, so memory stays bounded whatever the domain size. The split is then
planned on the index (:func:`plan_split_indices`, which only loads the documents that can be
held out) and the stream is cut into the two files with kernel-side copies. Everything is
written into a temporary folder that is renamed into place at the end: a failure never leaves a
half-written entry and never touches existing ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np

from mixopt.data import encode
from mixopt.data.encode import Encoded, EncoderPool, iter_chunks
from mixopt.data.encode import document_key as document_key
from mixopt.data.readers import DomainSources, Skipped
from mixopt.data.tokenizer import TokenizerInfo
from mixopt.errors import DataError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SHARD_FORMAT = "shards-v1"
MIN_VAL_TOKENS = 4096
"""Validation aims for at least this many tokens (if the domain has four times as many)."""

_COPY_BYTES = 1 << 24
_INDEX_CHUNK = 1 << 20


def token_dtype(vocab_size: int) -> str:
    """The narrowest unsigned type that holds every token id."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


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


@dataclass(frozen=True)
class ShardStats:
    """What ``meta.json`` records about a domain's shards."""

    dtype: str
    train_tokens: int
    val_tokens: int
    train_bytes: int
    val_bytes: int
    documents: int
    split: str  # "hash": whole documents chosen by content hash; "tail": the stream's tail
    skipped_records: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardStats:
        return cls(
            **{
                name: data[name]
                for name in cls.__dataclass_fields__
                if name in data or name != "skipped_records"
            }
        )


@dataclass(frozen=True)
class SplitPlan:
    """Which tokens are held out: whole documents (``val_docs``) or the last ``tail_tokens``."""

    method: Literal["hash", "tail"]
    val_docs: np.ndarray | None = None
    tail_tokens: int = 0


class DocIndex:
    """Per-document token count, UTF-8 byte count and 64-bit content key, in stream order,
    appended to three ``uint64`` files in ``folder`` (memory stays flat however many)."""

    NAMES = ("tokens", "nbytes", "keys")

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self._handles: dict[str, BinaryIO] | None = {
            name: (folder / f"index.{name}").open("wb") for name in self.NAMES
        }

    def append(self, tokens: np.ndarray, nbytes: np.ndarray, keys: np.ndarray) -> None:
        assert self._handles is not None, "index is closed"
        for name, values in zip(self.NAMES, (tokens, nbytes, keys), strict=True):
            self._handles[name].write(np.asarray(values, dtype=np.uint64).tobytes())
        self.count += len(tokens)

    def close(self) -> None:
        if self._handles is not None:
            for handle in self._handles.values():
                handle.close()
            self._handles = None

    def __len__(self) -> int:
        return self.count

    def array(self, name: str) -> np.ndarray:
        """One column as a read-only memmap (int64 for counts, uint64 for keys)."""
        self.close()
        path = self.folder / f"index.{name}"
        if self.count == 0:
            return np.zeros(0, dtype=np.uint64 if name == "keys" else np.int64)
        return np.memmap(path, dtype=np.uint64 if name == "keys" else np.int64, mode="r")

    def remove(self) -> None:
        self.close()
        for name in self.NAMES:
            (self.folder / f"index.{name}").unlink(missing_ok=True)


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
) -> tuple[Path, ShardStats]:
    """The domain's shard folder and stats: reused from the cache, or written now.

    ``pool`` encodes the chunks (a one-process pool is made when not given); ``dtype`` is the
    spec's ``data.token_dtype``.
    """
    out_dtype = shard_dtype(tokenizer.vocab_size, dtype, tokenizer=str(tokenizer.path))
    key = shard_key(
        sources.content_hash,
        tokenizer.hash,
        val_fraction,
        max_val_tokens,
        dtype=dtype,
        skip_bad_records=sources.skip_bad_records,
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
        )
        meta = {
            "format": SHARD_FORMAT,
            "domain": sources.name,
            "content_hash": sources.content_hash,
            "tokenizer_hash": tokenizer.hash,
            "val_fraction": val_fraction,
            "max_val_tokens": max_val_tokens,
            "skip_bad_records": sources.skip_bad_records,
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


# ----------------------------------------------------------------------------- writing


def write_shards(
    sources: DomainSources,
    tokenizer: TokenizerInfo,
    val_fraction: float,
    max_val_tokens: int,
    out_dir: Path,
    *,
    pool: EncoderPool | None = None,
    dtype: str | None = None,
    log: Callable[[str], None] | None = None,
) -> ShardStats:
    """Tokenize the domain into ``out_dir/{train,val}.bin``."""
    dtype = dtype or token_dtype(tokenizer.vocab_size)
    own_pool = pool is None
    if pool is None:
        pool = EncoderPool(
            str(tokenizer.path), tokenizer.eot_id, tokenizer.vocab_size, dtype, workers=1
        )
    stream = out_dir / "stream.bin"
    index = DocIndex(out_dir)
    try:
        with stream.open("wb") as handle:
            skipped = tokenize_to_stream(sources, pool, tokenizer.eot_id, handle, index)
    finally:
        index.close()
        if own_pool:
            pool.close()
    if skipped.count and log is not None:
        log(
            f"data: {sources.name}: skipped {skipped.count} bad record(s) "
            f"(skip_bad_records); first: " + " | ".join(skipped.notes[:3])
        )
    if len(index) == 0:
        raise DataError(
            f"domain {sources.name!r}: no text in its {len(sources.files)} file(s) "
            f"(first: {sources.files[0].path})"
            + (f"; all {skipped.count} record(s) were bad and skipped" if skipped.count else "")
        )
    tokens, nbytes, keys = (index.array(name) for name in DocIndex.NAMES)
    method, val_docs, tail_tokens = plan_split_indices(tokens, keys, val_fraction, max_val_tokens)
    total_tokens, total_bytes = _sum(tokens), _sum(nbytes)
    if method == "hash":
        _write_by_documents(stream, dtype, tokens, val_docs, out_dir)
        val_tokens = int(tokens[val_docs].sum())
        val_bytes = int(nbytes[val_docs].sum())
    else:
        val_tokens = tail_tokens
        val_bytes = _tail_bytes(stream, dtype, tokens, nbytes, val_tokens, tokenizer)
        _write_tail(stream, dtype, val_tokens, out_dir)
    documents = len(index)
    del tokens, nbytes, keys
    index.remove()
    return ShardStats(
        dtype=dtype,
        train_tokens=total_tokens - val_tokens,
        val_tokens=val_tokens,
        train_bytes=total_bytes - val_bytes,
        val_bytes=val_bytes,
        documents=documents,
        split=method,
        skipped_records=skipped.count,
    )


def tokenize_to_stream(
    sources: DomainSources, pool: EncoderPool, eot_id: int, out: BinaryIO, index: DocIndex
) -> Skipped:
    """Encode every document and append its tokens and end-of-text id to ``out``; complete
    documents go to ``index``. Returns the bad records skipped."""
    skipped = Skipped()
    parallel = sources.size_bytes >= encode.POOL_MIN_BYTES
    pending: list[int] | None = None  # tokens, bytes, key of the document still open
    for encoded in pool.map(iter_chunks(sources, skipped, eot_id), parallel=parallel):
        out.write(encoded.tokens.tobytes())
        skipped.merge(encoded.skipped)
        pending = _merge(encoded, pending, index)
    if pending is not None:
        index.append(*(np.array([v], dtype=np.uint64) for v in pending))
    return skipped


def _merge(encoded: Encoded, pending: list[int] | None, index: DocIndex) -> list[int] | None:
    """Add a chunk's fragments to the index: continue the open document, close it at the next
    start, and keep the chunk's last document open."""
    n = len(encoded.starts)
    begins = np.flatnonzero(encoded.starts)
    k = int(begins[0]) if len(begins) else n
    if k:
        if pending is None:  # pragma: no cover - readers always start a document first
            raise DataError("internal error: a document fragment without a document")
        pending[0] += int(encoded.ntokens[:k].sum())
        pending[1] += int(encoded.nbytes[:k].sum())
    if k == n:
        return pending
    if pending is not None:
        index.append(*(np.array([v], dtype=np.uint64) for v in pending))
    tokens = np.add.reduceat(encoded.ntokens, begins)
    nbytes = np.add.reduceat(encoded.nbytes, begins)
    keys = encoded.keys[begins]
    index.append(tokens[:-1], nbytes[:-1], keys[:-1])
    return [int(tokens[-1]), int(nbytes[-1]), int(keys[-1])]


def _sum(values: np.ndarray) -> int:
    return sum(int(values[a : a + _INDEX_CHUNK].sum()) for a in range(0, len(values), _INDEX_CHUNK))


def _doc_starts(tokens: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """Token offsets of the (sorted) documents ``docs`` in the stream, read chunk by chunk."""
    starts = np.zeros(len(docs), dtype=np.int64)
    base = 0
    for a in range(0, len(tokens), _INDEX_CHUNK):
        chunk = np.asarray(tokens[a : a + _INDEX_CHUNK], dtype=np.int64)
        lo, hi = np.searchsorted(docs, [a, a + len(chunk)])
        if hi > lo:
            exclusive = np.concatenate([[0], np.cumsum(chunk)[:-1]])
            starts[lo:hi] = base + exclusive[docs[lo:hi] - a]
        base += int(chunk.sum())
    return starts


def _write_by_documents(
    stream: Path, dtype: str, tokens: np.ndarray, val_docs: np.ndarray, out_dir: Path
) -> None:
    """Copy the held-out documents into val.bin and everything between them into train.bin."""
    itemsize = np.dtype(dtype).itemsize
    starts = _doc_starts(tokens, val_docs)
    sizes = np.asarray(tokens[val_docs], dtype=np.int64)
    total = stream.stat().st_size // itemsize
    with (
        stream.open("rb") as source,
        (out_dir / "train.bin").open("wb") as train,
        (out_dir / "val.bin").open("wb") as val,
    ):
        position = 0
        for start, size in zip(starts.tolist(), sizes.tolist(), strict=True):
            _copy(source, position * itemsize, start * itemsize, train)
            _copy(source, start * itemsize, (start + size) * itemsize, val)
            position = start + size
        _copy(source, position * itemsize, total * itemsize, train)
    stream.unlink()


def _write_tail(stream: Path, dtype: str, val_tokens: int, out_dir: Path) -> None:
    """Copy the stream's tail into val.bin; the truncated stream becomes train.bin."""
    itemsize = np.dtype(dtype).itemsize
    total = stream.stat().st_size // itemsize
    with stream.open("rb") as source, (out_dir / "val.bin").open("wb") as val:
        _copy(source, (total - val_tokens) * itemsize, total * itemsize, val)
    os.truncate(stream, (total - val_tokens) * itemsize)
    os.rename(stream, out_dir / "train.bin")


def _copy(source: BinaryIO, start: int, stop: int, out: BinaryIO) -> None:
    """Copy bytes [start, stop) of ``source`` to the end of ``out`` (in the kernel if it can)."""
    if stop <= start:
        return
    out.flush()
    done = start
    if hasattr(os, "copy_file_range"):
        try:
            while done < stop:
                n = os.copy_file_range(
                    source.fileno(), out.fileno(), min(_COPY_BYTES, stop - done), done
                )
                if n == 0:
                    break
                done += n
        except OSError:
            pass  # e.g. across file systems on old kernels: copy through user space
    source.seek(done)
    while done < stop:
        block = source.read(min(_COPY_BYTES, stop - done))
        if not block:
            raise DataError(f"token stream ended early at byte {done} of {stop}")
        out.write(block)
        done += len(block)


def _tail_bytes(
    stream: Path,
    dtype: str,
    tokens: np.ndarray,
    nbytes: np.ndarray,
    tail_tokens: int,
    tokenizer: TokenizerInfo,
) -> int:
    """UTF-8 bytes behind the last ``tail_tokens`` tokens; a document cut in two is measured by
    decoding its held-out part."""
    total = _sum(tokens)
    cut = total - tail_tokens
    doc, doc_start = _locate(tokens, cut)
    whole_after = _sum(nbytes[doc + 1 :])
    if cut == doc_start:
        return whole_after + int(nbytes[doc])
    doc_end = doc_start + int(tokens[doc])
    itemsize = np.dtype(dtype).itemsize
    held_out = np.fromfile(stream, dtype=dtype, count=doc_end - 1 - cut, offset=cut * itemsize)
    encoder: Tokenizer = tokenizer.load()  # without the end-of-text id:
    partial = len(encoder.decode(held_out.tolist(), skip_special_tokens=True).encode())
    return whole_after + min(partial, int(nbytes[doc]))


def _locate(tokens: np.ndarray, position: int) -> tuple[int, int]:
    """The document holding token ``position`` of the stream, and that document's start."""
    base = 0
    for a in range(0, len(tokens), _INDEX_CHUNK):
        chunk = np.asarray(tokens[a : a + _INDEX_CHUNK], dtype=np.int64)
        ends = base + np.cumsum(chunk)
        if len(chunk) and ends[-1] > position:
            i = int(np.searchsorted(ends, position, side="right"))
            return a + i, int(ends[i] - chunk[i])
        base = int(ends[-1]) if len(chunk) else base
    raise DataError(f"token position {position} is past the stream's end ({base})")


# ------------------------------------------------------------------------------ splitting


def plan_split(
    tokens: np.ndarray, keys: np.ndarray, val_fraction: float, max_val_tokens: int
) -> SplitPlan:
    """Choose the validation documents by content key, or fall back to the stream's tail.

    The aim is ``want = min(max_val_tokens, max(floor, val_fraction * total))`` tokens, where
    ``floor = min(MIN_VAL_TOKENS, max_val_tokens, total // 4)`` (a few thousand tokens whenever
    the domain has them). Documents are held out in order of their content key (a uniform 64-bit
    hash, so this is a random, deterministic choice spread over the whole domain, and duplicate
    documents land on the same side) until ``want`` is reached; a document that would take the
    held-out tokens past ``min(max_val_tokens, 1.5 * want)`` is passed over. When whole documents
    cannot reach half of ``want`` (a domain of a few big files), or would leave nothing to train
    on, the last ``want`` tokens of the stream are held out instead.

    ``val_docs`` is a boolean mask over the documents; see :func:`plan_split_indices` for the
    same plan as indices, computed in bounded memory.
    """
    method, docs, tail = plan_split_indices(tokens, keys, val_fraction, max_val_tokens)
    if method == "tail":
        return SplitPlan("tail", tail_tokens=tail)
    mask = np.zeros(len(tokens), dtype=bool)
    mask[docs] = True
    return SplitPlan("hash", val_docs=mask)


def plan_split_indices(
    tokens: np.ndarray, keys: np.ndarray, val_fraction: float, max_val_tokens: int
) -> tuple[Literal["hash", "tail"], np.ndarray, int]:
    """:func:`plan_split` as ``(method, sorted held-out document indices, tail tokens)``.

    Only documents whose key falls below a threshold are loaded and sorted: keys are uniform, so
    a threshold ``t`` holds about ``total * t / 2**64`` tokens; it starts at four times the most
    that can be held out and is raised until the greedy choice completes inside it. The result is
    the same as sorting every document (the greedy only ever looks at a prefix of the key order),
    while memory grows with the validation set, not with the domain.
    """
    total = _sum(tokens)
    floor = min(MIN_VAL_TOKENS, max_val_tokens, total // 4)
    want = min(max_val_tokens, max(floor, math.ceil(val_fraction * total)))
    limit = min(max_val_tokens, want + want // 2)
    fraction = min(1.0, 4.0 * limit / max(total, 1))
    while True:
        candidates = _below(keys, fraction)
        order = candidates[np.argsort(np.asarray(keys[candidates]), kind="stable")]
        chosen: list[int] = []
        held = 0
        for i, size in zip(order.tolist(), np.asarray(tokens[order]).tolist(), strict=True):
            if held >= want:
                break
            if held + size <= limit:
                chosen.append(i)
                held += size
        if held >= want or fraction >= 1.0:
            break
        fraction = min(1.0, 4.0 * fraction)
    if held >= max(want // 2, 1) and held < total:
        return "hash", np.sort(np.array(chosen, dtype=np.int64)), 0
    return "tail", np.zeros(0, dtype=np.int64), max(1, min(want, total - 1))


def _below(keys: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the keys below ``fraction * 2**64`` (all of them for 1.0), chunk by chunk."""
    if fraction >= 1.0:
        return np.arange(len(keys), dtype=np.int64)
    threshold = np.uint64(min(int(fraction * 2.0**64), 2**64 - 1))
    parts = [
        a + np.flatnonzero(np.asarray(keys[a : a + _INDEX_CHUNK]) < threshold)
        for a in range(0, len(keys), _INDEX_CHUNK)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
