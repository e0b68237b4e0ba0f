"""Chunks: a domain's documents cut into units of work for the encoder, and what encoding gives.

A data format turns each file into chunks (its encoder hook): text pieces, raw records a worker
parses (JSONL), or slices of a pre-tokenized file. A chunk knows which encoder method handles it
(:meth:`Chunk.encode`), so the encoder never branches on chunk types, and chunks pickle to worker
processes. :class:`Encoded` is the chunk's token ids plus, per document *fragment*, whether it
starts a document, its tokens, UTF-8 bytes and content key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mixopt.data.documents import Piece, Skipped

if TYPE_CHECKING:
    import numpy as np

    from mixopt.data.encode import ChunkEncoder


@dataclass
class Encoded:
    """A chunk's tokens and per-fragment statistics (see module docstring)."""

    tokens: np.ndarray
    starts: np.ndarray  # bool
    ntokens: np.ndarray  # int64, end-of-text included
    nbytes: np.ndarray  # int64
    keys: np.ndarray  # uint64, meaningful where ``starts``
    skipped: Skipped = field(default_factory=Skipped)


class Chunk(ABC):
    """A unit of encoding work; picklable, so it can be encoded in a worker process."""

    @abstractmethod
    def encode(self, encoder: ChunkEncoder) -> Encoded:
        """The chunk encoded by ``encoder``."""


@dataclass
class PiecesChunk(Chunk):
    """Text pieces ready to encode."""

    pieces: list[Piece]

    def encode(self, encoder: ChunkEncoder) -> Encoded:
        return encoder.encode_pieces(self.pieces, Skipped())


@dataclass
class TokensChunk(Chunk):
    """A slice of a pre-tokenized file, starting at token ``offset``."""

    where: str
    offset: int
    tokens: np.ndarray
    starts_doc: bool  # the slice begins a document (file start, or follows an end-of-text)
    final: bool  # the slice ends the file (an unterminated last document is closed)

    def encode(self, encoder: ChunkEncoder) -> Encoded:
        return encoder.encode_tokens(self)


def piece_chunks(pieces: Iterable[Piece], size: int) -> Iterator[PiecesChunk]:
    """Pieces batched into chunks of about ``size`` characters."""
    batch: list[Piece] = []
    chars = 0
    for piece in pieces:
        batch.append(piece)
        chars += len(piece.text)
        if chars >= size:
            yield PiecesChunk(batch)
            batch, chars = [], 0
    if batch:
        yield PiecesChunk(batch)


def token_chunks(where: str, tokens: np.ndarray, eot_id: int, size: int) -> Iterator[TokensChunk]:
    """Slices of about ``size`` tokens, each ending just after an end-of-text id where there
    is one."""
    import numpy as np

    total = len(tokens)
    start = 0
    while start < total:
        stop = min(total, start + max(size, 1))
        if stop < total:
            window = np.asarray(tokens[start:stop])
            ends = np.flatnonzero(window == eot_id)
            if len(ends):
                stop = start + int(ends[-1]) + 1
        starts_doc = start == 0 or int(tokens[start - 1]) == eot_id
        yield TokensChunk(where, start, np.array(tokens[start:stop]), starts_doc, stop == total)
        start = stop
