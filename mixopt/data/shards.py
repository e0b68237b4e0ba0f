"""Token shards of one domain: tokenize, split into train and validation, write, cache.

A domain becomes two flat token files (``train.bin``, ``val.bin``; ``uint16`` when the vocabulary
fits, else ``uint32``), each document followed by the end-of-text id, plus ``meta.json``. They live
under ``<cache_dir>/shards/<key>/<domain>/`` where the key covers the domain's content hash, the
tokenizer hash, the split settings and :data:`SHARD_FORMAT`.

Documents are streamed, encoded in batches (``tokenizers`` spreads a batch over threads) and
appended to one token stream with a small per-document index (tokens, bytes, content key), so
memory stays bounded. The split is then planned on the index (:func:`plan_split`) and the stream is
cut into the two files. Everything is written into a temporary folder that is renamed into place
at the end: a failure never leaves a half-written entry and never touches existing ones.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np

from mixopt.data.readers import DomainSources, Piece, iter_pieces
from mixopt.data.tokenizer import TokenizerInfo
from mixopt.errors import DataError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SHARD_FORMAT = "shards-v1"
MIN_VAL_TOKENS = 4096
"""Validation aims for at least this many tokens (if the domain has four times as many)."""

_BATCH_CHARS = 2 << 20
_BATCH_PIECES = 1024
_COPY_TOKENS = 1 << 24


def token_dtype(vocab_size: int) -> str:
    """The narrowest unsigned type that holds every token id."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardStats:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class SplitPlan:
    """Which tokens are held out: whole documents (``val_docs``) or the last ``tail_tokens``."""

    method: Literal["hash", "tail"]
    val_docs: np.ndarray | None = None
    tail_tokens: int = 0


@dataclass
class DocIndex:
    """Per-document token count, UTF-8 byte count and 64-bit content key, in stream order."""

    tokens: array[int] = field(default_factory=lambda: array("Q"))
    nbytes: array[int] = field(default_factory=lambda: array("Q"))
    keys: array[int] = field(default_factory=lambda: array("Q"))

    def start(self, key: int) -> None:
        self.tokens.append(0)
        self.nbytes.append(0)
        self.keys.append(key)

    def add(self, tokens: int, nbytes: int) -> None:
        self.tokens[-1] += tokens
        self.nbytes[-1] += nbytes

    def __len__(self) -> int:
        return len(self.tokens)


def shard_key(
    content_hash: str, tokenizer_hash: str, val_fraction: float, max_val_tokens: int
) -> str:
    """Cache key of a domain's shards."""
    settings = {
        "format": SHARD_FORMAT,
        "content": content_hash,
        "tokenizer": tokenizer_hash,
        "val_fraction": val_fraction,
        "max_val_tokens": max_val_tokens,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def build_shards(
    sources: DomainSources,
    tokenizer: TokenizerInfo,
    val_fraction: float,
    max_val_tokens: int,
    cache_dir: Path,
    log: Callable[[str], None],
) -> tuple[Path, ShardStats]:
    """The domain's shard folder and stats: reused from the cache, or written now."""
    key = shard_key(sources.content_hash, tokenizer.hash, val_fraction, max_val_tokens)
    directory = cache_dir / "shards" / key / sources.name
    if (directory / "meta.json").is_file():
        stats = load_stats(directory)
        log(f"data: {sources.name}: shards reused from {directory}")
        return directory, stats
    (cache_dir / "shards").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir / "shards"))
    try:
        started = time.perf_counter()
        work = staging / sources.name
        work.mkdir()
        stats = write_shards(sources, tokenizer, val_fraction, max_val_tokens, work)
        meta = {
            "format": SHARD_FORMAT,
            "domain": sources.name,
            "content_hash": sources.content_hash,
            "tokenizer_hash": tokenizer.hash,
            "val_fraction": val_fraction,
            "max_val_tokens": max_val_tokens,
            **asdict(stats),
        }
        (work / "meta.json").write_text(json.dumps(meta, indent=2))
        _publish(work, directory)
    finally:
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
) -> ShardStats:
    """Tokenize the domain into ``out_dir/{train,val}.bin``."""
    dtype = token_dtype(tokenizer.vocab_size)
    encoder = tokenizer.load()
    stream = out_dir / "stream.bin"
    with stream.open("wb") as handle:
        index = tokenize_to_stream(sources, encoder, tokenizer.eot_id, dtype, handle)
    if len(index) == 0:
        raise DataError(
            f"domain {sources.name!r}: no text in its {len(sources.files)} file(s) "
            f"(first: {sources.files[0].path})"
        )
    tokens = np.frombuffer(index.tokens, dtype=np.uint64).astype(np.int64)
    keys = np.frombuffer(index.keys, dtype=np.uint64)
    nbytes = np.frombuffer(index.nbytes, dtype=np.uint64).astype(np.int64)
    plan = plan_split(tokens, keys, val_fraction, max_val_tokens)
    if plan.method == "hash":
        assert plan.val_docs is not None
        _write_by_documents(stream, dtype, tokens, plan.val_docs, out_dir)
        val_tokens = int(tokens[plan.val_docs].sum())
        val_bytes = int(nbytes[plan.val_docs].sum())
    else:
        val_tokens = plan.tail_tokens
        val_bytes = _tail_bytes(stream, dtype, tokens, nbytes, val_tokens, encoder)
        _write_tail(stream, dtype, val_tokens, out_dir)
    return ShardStats(
        dtype=dtype,
        train_tokens=int(tokens.sum()) - val_tokens,
        val_tokens=val_tokens,
        train_bytes=int(nbytes.sum()) - val_bytes,
        val_bytes=val_bytes,
        documents=len(index),
        split=plan.method,
    )


def tokenize_to_stream(
    sources: DomainSources, encoder: Tokenizer, eot_id: int, dtype: str, out: BinaryIO
) -> DocIndex:
    """Encode every document (in batches) and append its tokens and end-of-text id to ``out``."""
    index = DocIndex()
    batch: list[Piece] = []
    chars = 0
    for piece in iter_pieces(sources):
        batch.append(piece)
        chars += len(piece.text)
        if chars >= _BATCH_CHARS or len(batch) >= _BATCH_PIECES:
            _encode_batch(batch, encoder, eot_id, dtype, index, out)
            batch, chars = [], 0
    if batch:
        _encode_batch(batch, encoder, eot_id, dtype, index, out)
    return index


def _encode_batch(
    batch: Sequence[Piece],
    encoder: Tokenizer,
    eot_id: int,
    dtype: str,
    index: DocIndex,
    out: BinaryIO,
) -> None:
    encode = getattr(encoder, "encode_batch_fast", encoder.encode_batch)
    encodings = encode([piece.text for piece in batch], add_special_tokens=False)
    flat: list[int] = []
    for piece, encoding in zip(batch, encodings, strict=True):
        data = piece.text.encode()
        if piece.starts_doc:
            index.start(document_key(data))
        ids = encoding.ids
        flat.extend(ids)
        if piece.ends_doc:
            flat.append(eot_id)
        index.add(len(ids) + int(piece.ends_doc), len(data))
    np.asarray(flat, dtype=dtype).tofile(out)


def document_key(data: bytes) -> int:
    """A document's 64-bit content key (of its first piece), uniform over [0, 2**64)."""
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def _write_by_documents(
    stream: Path, dtype: str, tokens: np.ndarray, val_docs: np.ndarray, out_dir: Path
) -> None:
    """Copy runs of consecutive documents from the stream into train.bin / val.bin."""
    offsets = np.concatenate([[0], np.cumsum(tokens)])
    bounds = np.concatenate(
        [[0], np.flatnonzero(np.diff(val_docs.astype(np.int8))) + 1, [len(tokens)]]
    )
    source = np.memmap(stream, dtype=dtype, mode="r")
    with (out_dir / "train.bin").open("wb") as train, (out_dir / "val.bin").open("wb") as val:
        for a, b in itertools.pairwise(bounds.tolist()):
            _copy(source, int(offsets[a]), int(offsets[b]), val if val_docs[a] else train)
    del source
    stream.unlink()


def _write_tail(stream: Path, dtype: str, val_tokens: int, out_dir: Path) -> None:
    """Copy the stream's tail into val.bin; the truncated stream becomes train.bin."""
    itemsize = np.dtype(dtype).itemsize
    total = stream.stat().st_size // itemsize
    source = np.memmap(stream, dtype=dtype, mode="r")
    with (out_dir / "val.bin").open("wb") as val:
        _copy(source, total - val_tokens, total, val)
    del source
    os.truncate(stream, (total - val_tokens) * itemsize)
    os.rename(stream, out_dir / "train.bin")


def _copy(source: np.ndarray, start: int, stop: int, out: BinaryIO) -> None:
    for a in range(start, stop, _COPY_TOKENS):
        out.write(source[a : min(stop, a + _COPY_TOKENS)].tobytes())


def _tail_bytes(
    stream: Path,
    dtype: str,
    tokens: np.ndarray,
    nbytes: np.ndarray,
    tail_tokens: int,
    encoder: Tokenizer,
) -> int:
    """UTF-8 bytes behind the last ``tail_tokens`` tokens; a document cut in two is measured by
    decoding its held-out part."""
    offsets = np.concatenate([[0], np.cumsum(tokens)])
    cut = int(offsets[-1]) - tail_tokens
    doc = int(np.searchsorted(offsets, cut, side="right")) - 1
    whole_after = int(nbytes[doc + 1 :].sum())
    if cut == offsets[doc]:
        return whole_after + int(nbytes[doc])
    source = np.memmap(stream, dtype=dtype, mode="r")
    held_out = source[cut : int(offsets[doc + 1]) - 1].tolist()  # without the end-of-text id
    del source
    partial = len(encoder.decode(held_out, skip_special_tokens=True).encode())
    return whole_after + min(partial, int(nbytes[doc]))


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
    """
    total = int(tokens.sum())
    floor = min(MIN_VAL_TOKENS, max_val_tokens, total // 4)
    want = min(max_val_tokens, max(floor, math.ceil(val_fraction * total)))
    limit = min(max_val_tokens, want + want // 2)
    order = np.argsort(keys, kind="stable")
    val_docs = np.zeros(len(tokens), dtype=bool)
    held = 0
    for i, size in zip(order.tolist(), tokens[order].tolist(), strict=True):
        if held >= want:
            break
        if held + size <= limit:
            val_docs[i] = True
            held += size
    if held >= max(want // 2, 1) and held < total:
        return SplitPlan("hash", val_docs=val_docs)
    return SplitPlan("tail", tail_tokens=max(1, min(want, total - 1)))
