"""Turning a domain into one token stream: chunks of documents, encoded in worker processes.

The main process reads the domain's files in order and cuts them into *chunks*
(:mod:`mixopt.data.chunks`) of about :data:`CHUNK_BYTES`, each file by its format's encoder hook
(:mod:`mixopt.data.formats`): raw JSONL lines (parsed by the worker), text pieces (text files,
Parquet) or slices of a pre-tokenized file. Workers turn a chunk into an ``Encoded``: the chunk's
token ids (each finished document followed by the end-of-text id) and, per document *fragment*,
whether it starts a document, its tokens, UTF-8 bytes and content key. The main process writes
results in chunk order, so the stream is byte-identical whatever the number of workers, and keeps at
most ``2 * workers + 2`` chunks in flight, so memory stays bounded whatever the domain size.

With one worker (or a small domain) chunks are encoded in this process, where ``tokenizers``
spreads each batch over its own threads; a pool uses processes with one thread each, forked where
the platform can (so scripts without an ``if __name__ == "__main__"`` guard work; the workers
load their own tokenizer and never touch the parent's), else spawned.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.data.chunks import Chunk, Encoded, TokensChunk
from mixopt.data.documents import Piece, Skipped
from mixopt.data.formats import get_format
from mixopt.errors import DataError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from mixopt.data.sources import DomainSources

CHUNK_BYTES = 1 << 20
"""Text bytes (or tokens × 4) per chunk handed to a worker."""
POOL_MIN_BYTES = 16 << 20
"""Domains smaller than this are encoded in-process (starting workers costs about a second)."""


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def document_key(data: bytes) -> int:
    """A document's 64-bit content key (of its first piece), uniform over [0, 2**64)."""
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def iter_chunks(
    sources: DomainSources, skipped: Skipped, eot_id: int, chunk_bytes: int | None = None
) -> Iterator[Chunk]:
    """The domain's documents as chunks, file after file, each by its format's encoder hook.
    Bad text files are counted in ``skipped`` (when the domain skips bad records); bad JSONL
    lines are counted by workers."""
    size = chunk_bytes or CHUNK_BYTES
    for source in sources.files:
        yield from get_format(source.format).chunks(sources, source, skipped, eot_id, size)


# --------------------------------------------------------------------------------- encoding


class ChunkEncoder:
    """Encodes chunks with one tokenizer (in this process or inside a worker)."""

    def __init__(self, tokenizer_path: str, eot_id: int, vocab_size: int, dtype: str) -> None:
        from mixopt.data.tokenizer import read_tokenizer

        self.tokenizer: Tokenizer = read_tokenizer(Path(tokenizer_path))
        self.tokenizer.encode_special_tokens = True
        self.eot_id = eot_id
        self.vocab_size = vocab_size
        self.dtype = dtype

    def encode(self, chunk: Chunk) -> Encoded:
        return chunk.encode(self)

    def encode_pieces(self, pieces: list[Piece], skipped: Skipped) -> Encoded:
        """Text pieces: each finished document followed by the end-of-text id."""
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        encodings = encode([piece.text for piece in pieces], add_special_tokens=False)
        n = len(pieces)
        starts = np.zeros(n, dtype=bool)
        ntokens = np.zeros(n, dtype=np.int64)
        nbytes = np.zeros(n, dtype=np.int64)
        keys = np.zeros(n, dtype=np.uint64)
        parts: list[list[int]] = []
        eot = [self.eot_id]
        for i, (piece, encoding) in enumerate(zip(pieces, encodings, strict=True)):
            data = piece.text.encode()
            ids = encoding.ids
            parts.append(ids)
            if piece.ends_doc:
                parts.append(eot)
            if piece.starts_doc:
                starts[i] = True
                keys[i] = document_key(data)
            ntokens[i] = len(ids) + int(piece.ends_doc)
            nbytes[i] = len(data)
        count = int(ntokens.sum())
        flat = np.fromiter(itertools.chain.from_iterable(parts), dtype=self.dtype, count=count)
        return Encoded(flat, starts, ntokens, nbytes, keys, skipped)

    def encode_tokens(self, chunk: TokensChunk) -> Encoded:
        """A slice of token ids, checked against the vocabulary; fragments measured by decoding."""
        tokens = chunk.tokens
        if len(tokens):
            low, high = int(tokens.min()), int(tokens.max())
            if low < 0 or high >= self.vocab_size:
                bad = int(np.flatnonzero((tokens < 0) | (tokens >= self.vocab_size))[0])
                raise DataError(
                    f"{chunk.where}: token id {int(tokens[bad])} at position "
                    f"{chunk.offset + bad} is outside the tokenizer's vocabulary "
                    f"(0..{self.vocab_size - 1}); was it made with another tokenizer?"
                )
        ends = np.flatnonzero(tokens == self.eot_id)
        bounds = [0, *(ends + 1).tolist()]
        if bounds[-1] < len(tokens):
            bounds.append(len(tokens))
        fragments = [tokens[a:b] for a, b in itertools.pairwise(bounds)]
        close = chunk.final and (not len(tokens) or int(tokens[-1]) != self.eot_id)
        n = len(fragments)
        starts = np.zeros(n, dtype=bool)
        ntokens = np.array([len(f) for f in fragments], dtype=np.int64)
        keys = np.zeros(n, dtype=np.uint64)
        texts = self.tokenizer.decode_batch(
            [f[:-1].tolist() if int(f[-1]) == self.eot_id else f.tolist() for f in fragments],
            skip_special_tokens=False,
        )
        nbytes = np.array([len(t.encode()) for t in texts], dtype=np.int64)
        for i, fragment in enumerate(fragments):
            begins = chunk.starts_doc if i == 0 else True
            if begins:
                starts[i] = True
                keys[i] = document_key(np.asarray(fragment, dtype="<u4").tobytes())
        out = tokens.astype(self.dtype)
        if close:
            out = np.concatenate([out, np.array([self.eot_id], dtype=self.dtype)])
            if n:
                ntokens[-1] += 1
            else:  # pragma: no cover - a final chunk always has tokens
                raise DataError(f"{chunk.where}: empty chunk")
        return Encoded(out, starts, ntokens, nbytes, keys)


_WORKER: ChunkEncoder | None = None
_START_METHOD = os.environ.get("MIXOPT_START_METHOD") or (
    "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
)
"""How worker processes start (``MIXOPT_START_METHOD=spawn`` or ``forkserver`` to override)."""


def _init_worker(tokenizer_path: str, eot_id: int, vocab_size: int, dtype: str) -> None:
    global _WORKER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker process
    _WORKER = ChunkEncoder(tokenizer_path, eot_id, vocab_size, dtype)


def _encode_in_worker(chunk: Chunk) -> Encoded:
    assert _WORKER is not None
    return _WORKER.encode(chunk)


class EncoderPool:
    """Encodes chunks in order, in this process or in ``workers`` spawned processes.

    The process pool starts on first use and is shared by every domain of a job; close it
    (or use the pool as a context manager) when done.
    """

    def __init__(
        self, tokenizer_path: str, eot_id: int, vocab_size: int, dtype: str, workers: int
    ) -> None:
        self.args: tuple[Any, ...] = (str(tokenizer_path), eot_id, vocab_size, dtype)
        self.workers = max(1, workers)
        self._local: ChunkEncoder | None = None
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> EncoderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def map(self, chunks: Iterable[Chunk], *, parallel: bool = True) -> Iterator[Encoded]:
        """Encoded chunks in input order; ``parallel=False`` encodes in this process."""
        if not parallel or self.workers == 1:
            if self._local is None:
                self._local = ChunkEncoder(*self.args)
            yield from map(self._local.encode, chunks)
            return
        executor = self._start()
        window: deque[Future[Encoded]] = deque()
        try:
            for chunk in chunks:
                window.append(executor.submit(_encode_in_worker, chunk))
                if len(window) >= 2 * self.workers + 2:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context(_START_METHOD),
                initializer=_init_worker,
                initargs=self.args,
            )
        return self._executor
