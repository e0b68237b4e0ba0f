"""Reading a domain's source files: resolving paths, hashing contents, streaming documents.

A domain's ``paths`` are files, directories (read recursively in sorted order, hidden entries
skipped) or glob patterns. Formats: a plain text file is one document; a JSONL line is one
document (its ``text_field``; ``null`` and empty texts are skipped); a Parquet row is one
document (the ``text_field`` column). Text and JSONL files may be gzip- or zstd-compressed
(recognised by their magic bytes, whatever their name). Pre-tokenized domains hold ``.npy``
(1-D integer) or raw ``.bin`` token files (``dtype`` in the spec); their documents are separated
by the tokenizer's end-of-text id and are read by :mod:`mixopt.data.pretokenized`.

Documents stream out as :class:`Piece` s. A long document is cut into pieces of about
:data:`PIECE_CHARS` characters, only after a newline that has non-space characters on both sides:
a byte-level BPE pre-tokenizer splits there anyway, so encoding the pieces one by one gives the
same tokens as encoding the whole document, while memory stays bounded for huge files.

Every problem raises :class:`~mixopt.errors.DataError` naming the domain and the file (and the
line for JSONL). With ``skip_bad_records`` a bad record (a malformed, non-UTF-8 or field-less
JSONL line; a non-UTF-8 text file) is counted and skipped instead; a corrupt or truncated file
(compressed stream, Parquet pages) is always an error, since how much of it is lost is unknown.
The content hash covers file contents and reading settings, never paths, so a moved corpus keeps
its cache entries; :class:`DigestCache` remembers file digests by (size, mtime) so an unchanged
corpus of many GB is not re-read on every run.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import hashlib
import io
import itertools
import json
import os
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from mixopt.errors import DataError

if TYPE_CHECKING:
    from mixopt.spec import DomainSpec

PIECE_CHARS = 1 << 20
"""Documents longer than this (characters) are cut into pieces of about this size."""

_READ_BYTES = 1 << 20
_BOM = "\ufeff"
_GLOB_CHARS = frozenset("*?[")
_HASH_VERSION = b"mixopt-domain-content-v1\0"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_COMPRESSED_SUFFIXES = (".gz", ".gzip", ".zst", ".zstd")
TEXT_FORMATS = ("text", "jsonl", "parquet")
TOKEN_FORMATS = ("npy", "bin")
_MAX_NOTES = 5


class Piece(NamedTuple):
    """A document, or a slice of one: ``starts_doc`` / ``ends_doc`` mark its ends."""

    text: str
    starts_doc: bool
    ends_doc: bool


@dataclass(frozen=True)
class SourceFile:
    """One file of a domain, its format (``text``, ``jsonl``, ``parquet``, ``npy`` or ``bin``)
    and its compression (``""``, ``"gzip"`` or ``"zstd"``; text and JSONL only)."""

    path: Path
    format: str
    compression: str = ""


@dataclass(frozen=True)
class DomainSources:
    """A domain's resolved files and their content hash."""

    name: str
    files: list[SourceFile]
    text_field: str
    content_hash: str
    dtype: str | None = None
    skip_bad_records: bool = False

    @property
    def size_bytes(self) -> int:
        return sum(f.path.stat().st_size for f in self.files)

    @property
    def pretokenized(self) -> bool:
        """True when the domain's files are token ids (``npy``/``bin``), not text."""
        return bool(self.files) and self.files[0].format in TOKEN_FORMATS


@dataclass
class Skipped:
    """Bad records skipped under ``skip_bad_records``: a count and the first few reasons."""

    count: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, note: str, count: int = 1) -> None:
        self.count += count
        if len(self.notes) < _MAX_NOTES:
            self.notes.append(note)

    def merge(self, other: Skipped) -> None:
        self.count += other.count
        self.notes.extend(other.notes[: max(0, _MAX_NOTES - len(self.notes))])


def scan_domain(
    domain: DomainSpec,
    *,
    skip_bad_records: bool = False,
    digests: DigestCache | None = None,
) -> DomainSources:
    """Resolve a domain's paths to files and hash their contents.

    ``skip_bad_records`` is the job-wide default; the domain's own setting wins when given.
    """
    files = resolve_sources(domain)
    skip = domain.skip_bad_records if domain.skip_bad_records is not None else skip_bad_records
    return DomainSources(
        name=domain.name,
        files=files,
        text_field=domain.text_field,
        content_hash=content_hash(files, domain.text_field, digests=digests, dtype=domain.dtype),
        dtype=domain.dtype,
        skip_bad_records=skip,
    )


# ------------------------------------------------------------------------------ resolving


def resolve_sources(domain: DomainSpec) -> list[SourceFile]:
    """Every file named by the domain's paths, in order, without duplicates.

    A domain is either all text (text/JSONL/Parquet) or all tokens (npy/bin): mixing them is an
    error, as is a raw ``.bin`` file without ``dtype``.
    """
    seen: set[Path] = set()
    files: list[SourceFile] = []
    for entry in domain.paths:
        for path in _expand(domain.name, entry):
            if path not in seen:
                seen.add(path)
                fmt = file_format(path, domain.format)
                compression = detect_compression(path) if fmt in ("text", "jsonl") else ""
                files.append(SourceFile(path, fmt, compression))
    kinds = {f.format in TOKEN_FORMATS for f in files}
    if len(kinds) > 1:
        text = next(f.path for f in files if f.format not in TOKEN_FORMATS)
        tokens = next(f.path for f in files if f.format in TOKEN_FORMATS)
        raise DataError(
            f"domain {domain.name!r}: mixes text files ({text}) and pre-tokenized files "
            f"({tokens}); put them in separate domains"
        )
    if domain.dtype is None:
        raw = [f.path for f in files if f.format == "bin"]
        if raw:
            raise DataError(
                f"domain {domain.name!r}: {raw[0]} holds raw token ids; set the domain's dtype "
                "(uint16 or uint32) in the spec"
            )
    return files


def file_format(path: Path, declared: str) -> str:
    """The format a file is read in: the declared one, or by extension for ``auto``
    (a compression suffix such as ``.gz`` or ``.zst`` is looked through)."""
    if declared != "auto":
        return declared
    name = path.name.lower()
    for suffix in _COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    suffix = Path(name).suffix
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    if suffix == ".npy":
        return "npy"
    if suffix == ".bin":
        return "bin"
    return "text"


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


def _expand(domain: str, entry: str) -> list[Path]:
    path = Path(entry).expanduser()
    if path.is_file():
        return [path.resolve()]
    if path.is_dir():
        files = _walk(path)
        if not files:
            raise DataError(f"domain {domain!r}: directory {entry} contains no files")
        return files
    if _GLOB_CHARS.intersection(entry):
        return _expand_glob(domain, entry)
    raise DataError(f"domain {domain!r}: {entry}: no such file or directory")


def _expand_glob(domain: str, pattern: str) -> list[Path]:
    files: list[Path] = []
    for match in sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True)):
        path = Path(match)
        files.extend([path.resolve()] if path.is_file() else _walk(path))
    if not files:
        raise DataError(f"domain {domain!r}: pattern {pattern!r} matches no files")
    return files


def _walk(directory: Path) -> list[Path]:
    """Files under a directory, recursively, in sorted order, skipping hidden entries."""
    found = [
        p
        for p in directory.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    ]
    return sorted(p.resolve() for p in found)


# -------------------------------------------------------------------------------- hashing


def content_hash(
    files: list[SourceFile],
    text_field: str,
    *,
    digests: DigestCache | None = None,
    dtype: str | None = None,
) -> str:
    """sha256 over the files' contents (in order) and the reading settings, not their paths."""
    digest = hashlib.sha256(_HASH_VERSION)
    settings: dict[str, Any] = {"text_field": text_field}
    if dtype is not None:
        settings["dtype"] = dtype
    digest.update(json.dumps(settings).encode())
    for source in files:
        digest.update(source.format.encode() + b"\0")
        digest.update(digests.digest(source.path) if digests else file_digest(source.path))
    return digest.hexdigest()


def file_digest(path: Path) -> bytes:
    """sha256 of a file's bytes, read in chunks."""
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").digest()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None


class DigestCache:
    """File digests remembered by (path, device, inode, size, mtime) under ``<cache>/digests``.

    Like git's index: a file whose size and modification time are unchanged is not re-read. A
    digest is only remembered for a file last modified more than :attr:`SETTLE_S` seconds before
    it was read, so a write racing with the read is never trusted. Entries are tiny JSON files
    written atomically; a damaged one is ignored.
    """

    SETTLE_S = 2.0

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.hits = 0
        self.misses = 0

    def digest(self, path: Path) -> bytes:
        try:
            stat = path.stat()
        except OSError as error:
            raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
        ident = f"{path.resolve()}\0{stat.st_dev}\0{stat.st_ino}"
        entry = self.directory / hashlib.sha256(ident.encode()).hexdigest()[:32]
        stamp = [stat.st_size, stat.st_mtime_ns]
        try:
            saved = json.loads(entry.read_text())
            if saved["stamp"] == stamp:
                self.hits += 1
                return bytes.fromhex(saved["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        self.misses += 1
        value = file_digest(path)
        if time.time_ns() - stat.st_mtime_ns > self.SETTLE_S * 1e9:
            self._save(entry, {"stamp": stamp, "sha256": value.hex(), "path": str(path)})
        return value

    def _save(self, entry: Path, data: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, entry)
        except OSError:
            pass  # the cache is an optimisation: a read-only cache folder only costs time


# -------------------------------------------------------------------------------- reading


def iter_pieces(sources: DomainSources) -> Iterator[Piece]:
    """Every document of the domain, file after file, as pieces (bad records skipped silently
    when the domain skips them)."""
    skipped = Skipped() if sources.skip_bad_records else None
    for source in sources.files:
        yield from iter_file_pieces(sources.name, source, sources.text_field, skipped)


def iter_file_pieces(
    domain: str, source: SourceFile, text_field: str, skipped: Skipped | None = None
) -> Iterator[Piece]:
    """The documents of one file, as pieces. ``skipped`` given: bad records are counted there
    instead of raising."""
    if source.format == "text":
        yield from _text_file_pieces(domain, source, skipped)
        return
    if source.format == "jsonl":
        where = f"domain {domain!r}: {source.path}"
        records = 0

        def counted() -> Iterator[tuple[int, bytes]]:
            nonlocal records
            for line_no, raw in iter_lines(domain, source):
                if raw.strip():
                    records += 1
                yield line_no, raw

        for text in jsonl_texts(where, counted(), text_field, skipped):
            yield from split_document(text)
        if records == 0:
            raise DataError(f"{where}: empty file (no JSON records)")
        return
    if source.format == "parquet":
        for text in _parquet_texts(domain, source.path, text_field):
            yield from split_document(text)
        return
    if source.format in TOKEN_FORMATS:
        raise DataError(
            f"domain {domain!r}: {source.path} holds token ids, not text (format {source.format})"
        )
    raise DataError(f"domain {domain!r}: {source.path}: unknown format {source.format!r}")


def split_document(text: str, max_chars: int = PIECE_CHARS) -> Iterator[Piece]:
    """Cut a document into pieces at tokenization-neutral newlines (see module docstring)."""
    start = 0
    while len(text) - start > max_chars:
        cut = find_cut(text, start, start + max_chars)
        if cut is None:
            break
        yield Piece(text[start:cut], start == 0, False)
        start = cut
    yield Piece(text[start:], start == 0, True)


def find_cut(text: str, start: int, limit: int) -> int | None:
    """The index just after a safe newline: the last one before ``limit``, else the first after.

    A newline is safe when the characters on both sides of it are not whitespace.
    """
    i = text.rfind("\n", start + 1, limit)
    while i > start:
        if _safe_newline(text, i):
            return i + 1
        i = text.rfind("\n", start + 1, i)
    i = text.find("\n", limit)
    while i != -1:
        if _safe_newline(text, i):
            return i + 1
        i = text.find("\n", i + 1)
    return None


def _safe_newline(text: str, i: int) -> bool:
    return 0 < i < len(text) - 1 and not text[i - 1].isspace() and not text[i + 1].isspace()


# ------------------------------------------------------------------- bytes and compression


@contextmanager
def open_source(domain: str, source: SourceFile) -> Iterator[BinaryIO]:
    """The file's (decompressed) bytes as a binary stream."""
    try:
        handle = source.path.open("rb")
    except OSError as error:
        raise DataError(
            f"domain {domain!r}: {source.path}: cannot read ({error.strerror or error})"
        ) from None
    try:
        if source.compression == "gzip":
            yield gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[misc]
        elif source.compression == "zstd":
            yield io.BufferedReader(_ZstdReader(handle), _READ_BYTES)
        else:
            yield handle
    finally:
        handle.close()


def iter_blocks(domain: str, source: SourceFile, size: int | None = None) -> Iterator[bytes]:
    """The file's decompressed bytes in blocks; a corrupt or truncated compressed stream raises
    a DataError saying how far it could be read."""
    size = size or _READ_BYTES
    done = 0
    with open_source(domain, source) as stream:
        while True:
            try:
                block = stream.read(size)
            except (EOFError, OSError, zlib.error, ValueError) as error:
                what = source.compression or "file"
                reason = "truncated" if isinstance(error, EOFError) else "corrupt"
                raise DataError(
                    f"domain {domain!r}: {source.path}: {reason} {what} data after "
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
        data = self._raw.read(_READ_BYTES)
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


# ------------------------------------------------------------------------------ text files


def _text_file_pieces(
    domain: str, source: SourceFile, skipped: Skipped | None = None
) -> Iterator[Piece]:
    """A text file as one document, read in blocks and cut into pieces.

    A file that is not UTF-8 is an error; when bad records are skipped it is dropped instead
    (for a file over :data:`PIECE_CHARS` characters, from the piece with the bad byte on).
    """
    path = source.path
    if path.stat().st_size == 0:
        raise DataError(f"domain {domain!r}: {path}: empty file")
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    buffer, offset, first, has_text = "", 0, True, False
    for block in itertools.chain(iter_blocks(domain, source, _READ_BYTES), [b""]):
        try:
            buffer += decoder.decode(block, final=not block)
        except UnicodeDecodeError as error:
            message = (
                f"domain {domain!r}: {path}: not UTF-8 text "
                f"(invalid byte near offset {offset + error.start})"
            )
            if skipped is None:
                raise DataError(message) from None
            skipped.add(message)
            if not first:  # close the document already begun
                yield Piece("", False, True)
            return
        if offset == 0:
            buffer = buffer.removeprefix(_BOM)
        offset += len(block)
        while len(buffer) > PIECE_CHARS:
            cut = find_cut(buffer, 0, PIECE_CHARS)
            if cut is None:
                break
            has_text = has_text or not buffer[:cut].isspace()
            yield Piece(buffer[:cut], first, False)
            buffer, first = buffer[cut:], False
    has_text = has_text or (bool(buffer) and not buffer.isspace())
    if not has_text:
        raise DataError(f"domain {domain!r}: {path}: empty file (only whitespace)")
    yield Piece(buffer, first, True)


# ----------------------------------------------------------------------------------- JSONL


def jsonl_texts(
    where: str,
    lines: Iterator[tuple[int, bytes]] | list[tuple[int, bytes]],
    text_field: str,
    skipped: Skipped | None = None,
) -> Iterator[str]:
    """The ``text_field`` of every record of JSON Lines (``where`` prefixes the messages).

    Blank lines are ignored; ``null`` and empty texts are skipped (not bad). A bad line raises a
    DataError naming ``where:line``, or is counted in ``skipped`` when given.
    """
    for line_no, raw in lines:
        try:
            text = parse_jsonl_line(raw, text_field, f"{where}:{line_no}")
        except DataError as error:
            if skipped is None:
                raise
            skipped.add(str(error))
            continue
        if text:
            yield text


def parse_jsonl_line(raw: bytes, text_field: str, where: str) -> str | None:
    """The text of one JSONL line (``None`` for a blank line, a null or an empty text)."""
    try:
        line = raw.decode("utf-8").removeprefix(_BOM)
    except UnicodeDecodeError:
        raise DataError(f"{where}: not UTF-8 text") from None
    if not line.strip():
        return None
    return _record_text(_parse_json_line(line, where), text_field, where)


def _parse_json_line(line: str, where: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{where}: malformed JSON ({error.msg} at column {error.colno}); "
            "JSONL files hold one JSON object per line"
        ) from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def _record_text(record: dict[str, Any], text_field: str, where: str) -> str | None:
    if text_field not in record:
        fields = ", ".join(sorted(record)[:10]) or "none"
        raise DataError(f"{where}: record has no field {text_field!r} (its fields: {fields})")
    value = record[text_field]
    if value is not None and not isinstance(value, str):
        raise DataError(f"{where}: field {text_field!r} is {type(value).__name__}, not a string")
    return value


def _parquet_texts(domain: str, path: Path, text_field: str) -> Iterator[str]:
    """The ``text_field`` column of a Parquet file, in row order (nulls and empties skipped)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = f"domain {domain!r}: {path}"
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{where}: not a readable Parquet file ({error})") from None
    if text_field not in schema.names:
        columns = ", ".join(schema.names[:10]) or "none"
        raise DataError(f"{where}: no column {text_field!r} (its columns: {columns})")
    column_type = schema.field(text_field).type
    if not (pa.types.is_string(column_type) or pa.types.is_large_string(column_type)):
        raise DataError(f"{where}: column {text_field!r} is {column_type}, not a string column")
    if parquet.metadata.num_rows == 0:
        raise DataError(f"{where}: empty file (no rows)")
    try:
        for batch in parquet.iter_batches(columns=[text_field], batch_size=1024):
            yield from (text for text in batch.column(0).to_pylist() if text)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{where}: corrupt Parquet file ({error})") from None


def estimate_text_bytes(source: SourceFile, text_field: str) -> int:
    """About how many bytes of text a file holds, without reading it (for sampling)."""
    if source.compression:
        return 4 * source.path.stat().st_size  # a typical ratio for text
    if source.format != "parquet":
        return source.path.stat().st_size
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(source.path).metadata
        index = metadata.schema.names.index(text_field)
        return sum(
            metadata.row_group(g).column(index).total_uncompressed_size
            for g in range(metadata.num_row_groups)
        )
    except (pa.ArrowException, OSError, ValueError):
        return source.path.stat().st_size
