"""Writing a domain's shard files: its token stream encoded, split, and cut into two files.

Documents are streamed in chunks, encoded (:mod:`mixopt.data.encode`) and appended in order to
one token stream, with the per-document index (:mod:`mixopt.data.docindex`) written next to it,
so memory stays bounded whatever the domain size. The split is then planned on the index
(:mod:`mixopt.data.split`) and the stream is cut into ``train.bin`` and ``val.bin`` with
kernel-side copies.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from mixopt.data import encode
from mixopt.data.chunks import Encoded
from mixopt.data.docindex import DocIndex, column_sum, doc_starts, locate
from mixopt.data.documents import Skipped
from mixopt.data.encode import EncoderPool, iter_chunks
from mixopt.data.split import plan_split_indices
from mixopt.errors import DataError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from mixopt.data.sources import DomainSources
    from mixopt.data.tokenizer import TokenizerInfo

_COPY_BYTES = 1 << 24


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
    split: str  # "hash": whole documents chosen by content hash; "tail": the stream's tail;
    # "all": every token (an eval set within its cap)
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
    eval_set: bool = False,
) -> ShardStats:
    """Tokenize the domain into ``out_dir/{train,val}.bin``.

    ``eval_set``: the source is never trained on: every token goes to ``val.bin`` (``train.bin``
    stays empty), or, past ``max_val_tokens``, whole documents chosen by content key up to it
    (``val_fraction`` is then unused).
    """
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
            f"{sources.label}: no text in its {len(sources.files)} file(s) "
            f"(first: {sources.files[0].path})"
            + (f"; all {skipped.count} record(s) were bad and skipped" if skipped.count else "")
        )
    tokens, nbytes, keys = (index.array(name) for name in DocIndex.NAMES)
    total_tokens, total_bytes = column_sum(tokens), column_sum(nbytes)
    if eval_set and total_tokens <= max_val_tokens:
        method, val_docs, tail_tokens = "all", np.zeros(0, dtype=np.int64), 0
    elif eval_set:  # the plan of a domain that may hold out up to the cap
        method, val_docs, tail_tokens = plan_split_indices(tokens, keys, 1.0, max_val_tokens)
    else:
        method, val_docs, tail_tokens = plan_split_indices(
            tokens, keys, val_fraction, max_val_tokens
        )
    if method == "all":
        val_tokens, val_bytes = total_tokens, total_bytes
        os.rename(stream, out_dir / "val.bin")
        (out_dir / "train.bin").touch()
    elif method == "hash":
        _write_by_documents(stream, dtype, tokens, val_docs, out_dir, keep_train=not eval_set)
        val_tokens = int(tokens[val_docs].sum())
        val_bytes = int(nbytes[val_docs].sum())
    else:
        val_tokens = tail_tokens
        val_bytes = _tail_bytes(stream, dtype, tokens, nbytes, val_tokens, tokenizer)
        _write_tail(stream, dtype, val_tokens, out_dir)
        if eval_set:
            os.truncate(out_dir / "train.bin", 0)
    documents = len(index)
    del tokens, nbytes, keys
    index.remove()
    trained = not eval_set
    return ShardStats(
        dtype=dtype,
        train_tokens=(total_tokens - val_tokens) * trained,
        val_tokens=val_tokens,
        train_bytes=(total_bytes - val_bytes) * trained,
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


def _write_by_documents(
    stream: Path,
    dtype: str,
    tokens: np.ndarray,
    val_docs: np.ndarray,
    out_dir: Path,
    *,
    keep_train: bool = True,
) -> None:
    """Copy the held-out documents into val.bin and everything between them into train.bin
    (which stays empty without ``keep_train``: an eval set's other documents are dropped)."""
    itemsize = np.dtype(dtype).itemsize
    starts = doc_starts(tokens, val_docs)
    sizes = np.asarray(tokens[val_docs], dtype=np.int64)
    total = stream.stat().st_size // itemsize
    with (
        stream.open("rb") as source,
        (out_dir / "train.bin").open("wb") as train,
        (out_dir / "val.bin").open("wb") as val,
    ):
        position = 0
        for start, size in zip(starts.tolist(), sizes.tolist(), strict=True):
            if keep_train:
                _copy(source, position * itemsize, start * itemsize, train)
            _copy(source, start * itemsize, (start + size) * itemsize, val)
            position = start + size
        if keep_train:
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
    total = column_sum(tokens)
    cut = total - tail_tokens
    doc, doc_start = locate(tokens, cut)
    whole_after = column_sum(nbytes[doc + 1 :])
    if cut == doc_start:
        return whole_after + int(nbytes[doc])
    doc_end = doc_start + int(tokens[doc])
    itemsize = np.dtype(dtype).itemsize
    held_out = np.fromfile(stream, dtype=dtype, count=doc_end - 1 - cut, offset=cut * itemsize)
    encoder: Tokenizer = tokenizer.load()  # without the end-of-text id:
    partial = len(encoder.decode(held_out.tolist(), skip_special_tokens=True).encode())
    return whole_after + min(partial, int(nbytes[doc]))
