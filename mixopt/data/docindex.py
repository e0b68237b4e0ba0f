"""The per-document index of a token stream on disk, and chunked scans over its columns.

While a domain is tokenized, each finished document's token count, UTF-8 byte count and 64-bit
content key are appended to three ``uint64`` files, so memory stays flat however many documents
there are. The scans below read those columns (memmaps) :data:`_INDEX_CHUNK` values at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from mixopt.errors import DataError

_INDEX_CHUNK = 1 << 20


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


def column_sum(values: np.ndarray) -> int:
    return sum(int(values[a : a + _INDEX_CHUNK].sum()) for a in range(0, len(values), _INDEX_CHUNK))


def doc_starts(tokens: np.ndarray, docs: np.ndarray) -> np.ndarray:
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


def locate(tokens: np.ndarray, position: int) -> tuple[int, int]:
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


def keys_below(keys: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the keys below ``fraction * 2**64`` (all of them for 1.0), chunk by chunk."""
    if fraction >= 1.0:
        return np.arange(len(keys), dtype=np.int64)
    threshold = np.uint64(min(int(fraction * 2.0**64), 2**64 - 1))
    parts = [
        a + np.flatnonzero(np.asarray(keys[a : a + _INDEX_CHUNK]) < threshold)
        for a in range(0, len(keys), _INDEX_CHUNK)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
