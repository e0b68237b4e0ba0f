"""Opening a source file's bytes: gzip and zstd recognised by their magic bytes, read in blocks.

Compression is found by a file's first bytes, whatever its name (``.gz``/``.zst`` suffixes are
only looked through when the format is chosen by extension). A corrupt or truncated compressed
stream is a :class:`~mixopt.errors.DataError` saying how far it could be read. ``zstandard`` is
imported only when a zstd file is read.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mixopt.errors import DataError

if TYPE_CHECKING:
    from mixopt.data.sources import SourceFile

READ_BYTES = 1 << 20
"""Bytes read from a file at a time (decompressed bytes for compressed files)."""

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_COMPRESSED_SUFFIXES = (".gz", ".gzip", ".zst", ".zstd")


def strip_compression_suffix(name: str) -> str:
    """``name`` without a trailing compression suffix (``a.jsonl.gz`` → ``a.jsonl``)."""
    for suffix in _COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def detect_compression(path: Path) -> str:
    """``gzip`` or ``zstd`` by the file's magic bytes, else ``""``."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return ""


@contextmanager
def open_source(domain: str, source: SourceFile) -> Iterator[BinaryIO]:
    """The file's (decompressed) bytes as a binary stream."""
    try:
        handle = source.path.open("rb")
    except OSError as error:
        raise DataError(
            f"{domain}: {source.path}: cannot read ({error.strerror or error})"
        ) from None
    try:
        if source.compression == "gzip":
            yield gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[misc]
        elif source.compression == "zstd":
            yield io.BufferedReader(_ZstdReader(handle), READ_BYTES)
        else:
            yield handle
    finally:
        handle.close()


def iter_blocks(domain: str, source: SourceFile, size: int | None = None) -> Iterator[bytes]:
    """The file's decompressed bytes in blocks; a corrupt or truncated compressed stream raises
    a DataError saying how far it could be read."""
    size = size or READ_BYTES
    done = 0
    with open_source(domain, source) as stream:
        while True:
            try:
                block = stream.read(size)
            except (EOFError, OSError, zlib.error, ValueError) as error:
                what = source.compression or "file"
                reason = "truncated" if isinstance(error, EOFError) else "corrupt"
                raise DataError(
                    f"{domain}: {source.path}: {reason} {what} data after "
                    f"{done} decompressed bytes ({error}); re-create or remove the file"
                ) from None
            if not block:
                return
            done += len(block)
            yield block


def iter_lines(domain: str, source: SourceFile) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw line without its newline)`` of a (compressed) text file."""
    rest = b""
    line_no = 0
    for block in iter_blocks(domain, source):
        lines = (rest + block).split(b"\n") if rest else block.split(b"\n")
        rest = lines.pop()
        for line in lines:
            line_no += 1
            yield line_no, line
    if rest:
        yield line_no + 1, rest


class _ZstdReader(io.RawIOBase):
    """A zstd stream (any number of frames) that raises EOFError when the last frame is cut.

    ``zstandard``'s own stream reader ends silently at a truncated frame; a truncated file must
    be an error, not a shorter domain.
    """

    def __init__(self, raw: BinaryIO) -> None:
        import zstandard

        self._raw = raw
        self._zstd = zstandard
        self._decompressor = zstandard.ZstdDecompressor()
        self._obj = self._decompressor.decompressobj()
        self._in_frame = False
        self._pending = b""
        self._offset = 0  # bytes of _pending already handed out
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._offset >= len(self._pending) and not self._eof:
            self._pending, self._offset = self._feed(), 0
        n = min(len(view), len(self._pending) - self._offset)
        view[:n] = self._pending[self._offset : self._offset + n]
        self._offset += n
        return n

    def _feed(self) -> bytes:
        data = self._raw.read(READ_BYTES)
        if not data:
            self._eof = True
            if self._in_frame:
                raise EOFError("the zstd stream ends inside a frame")
            return b""
        out = []
        try:
            while data:
                self._in_frame = True
                out.append(self._obj.decompress(data))
                if self._obj.eof:
                    data = self._obj.unused_data
                    self._obj = self._decompressor.decompressobj()
                    self._in_frame = False
                else:
                    data = b""
        except self._zstd.ZstdError as error:
            raise ValueError(f"zstd: {error}") from None
        return b"".join(out)
