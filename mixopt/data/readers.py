"""Reading a domain's source files: resolving paths, hashing contents, streaming documents.

A domain's ``paths`` are files, directories (read recursively in sorted order, hidden entries
skipped) or glob patterns. Formats: a plain text file is one document; a JSONL line is one
document (its ``text_field``; ``null`` and empty texts are skipped); a Parquet row is one
document (the ``text_field`` column).

Documents stream out as :class:`Piece` s. A long document is cut into pieces of about
:data:`PIECE_CHARS` characters, only after a newline that has non-space characters on both sides:
a byte-level BPE pre-tokenizer splits there anyway, so encoding the pieces one by one gives the
same tokens as encoding the whole document, while memory stays bounded for huge files.

Every problem raises :class:`~mixopt.errors.DataError` naming the domain and the file (and the
line for JSONL). The content hash covers file contents and reading settings, never paths, so a
moved corpus keeps its cache entries.
"""

from __future__ import annotations

import codecs
import glob
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mixopt.errors import DataError

if TYPE_CHECKING:
    from mixopt.spec import DomainSpec

PIECE_CHARS = 1 << 20
"""Documents longer than this (characters) are cut into pieces of about this size."""

_READ_BYTES = 1 << 20
_BOM = "\ufeff"
_GLOB_CHARS = frozenset("*?[")
_HASH_VERSION = b"mixopt-domain-content-v1\0"


class Piece(NamedTuple):
    """A document, or a slice of one: ``starts_doc`` / ``ends_doc`` mark its ends."""

    text: str
    starts_doc: bool
    ends_doc: bool


@dataclass(frozen=True)
class SourceFile:
    """One file of a domain and the format it is read in (``text``, ``jsonl`` or ``parquet``)."""

    path: Path
    format: str


@dataclass(frozen=True)
class DomainSources:
    """A domain's resolved files and their content hash."""

    name: str
    files: list[SourceFile]
    text_field: str
    content_hash: str

    @property
    def size_bytes(self) -> int:
        return sum(f.path.stat().st_size for f in self.files)


def scan_domain(domain: DomainSpec) -> DomainSources:
    """Resolve a domain's paths to files and hash their contents."""
    files = resolve_sources(domain)
    return DomainSources(
        name=domain.name,
        files=files,
        text_field=domain.text_field,
        content_hash=content_hash(files, domain.text_field),
    )


# ------------------------------------------------------------------------------ resolving


def resolve_sources(domain: DomainSpec) -> list[SourceFile]:
    """Every file named by the domain's paths, in order, without duplicates."""
    seen: set[Path] = set()
    files: list[SourceFile] = []
    for entry in domain.paths:
        for path in _expand(domain.name, entry):
            if path not in seen:
                seen.add(path)
                files.append(SourceFile(path, file_format(path, domain.format)))
    return files


def file_format(path: Path, declared: str) -> str:
    """The format a file is read in: the declared one, or by extension for ``auto``."""
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    return "text"


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


def content_hash(files: list[SourceFile], text_field: str) -> str:
    """sha256 over the files' contents (in order) and the reading settings, not their paths."""
    digest = hashlib.sha256(_HASH_VERSION)
    digest.update(json.dumps({"text_field": text_field}).encode())
    for source in files:
        digest.update(source.format.encode() + b"\0")
        digest.update(file_digest(source.path))
    return digest.hexdigest()


def file_digest(path: Path) -> bytes:
    """sha256 of a file's bytes, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


# -------------------------------------------------------------------------------- reading


def iter_pieces(sources: DomainSources) -> Iterator[Piece]:
    """Every document of the domain, file after file, as pieces."""
    for source in sources.files:
        yield from iter_file_pieces(sources.name, source, sources.text_field)


def iter_file_pieces(domain: str, source: SourceFile, text_field: str) -> Iterator[Piece]:
    """The documents of one file, as pieces."""
    if source.format == "text":
        yield from _text_file_pieces(domain, source.path)
        return
    if source.format == "jsonl":
        texts = _jsonl_texts(domain, source.path, text_field)
    elif source.format == "parquet":
        texts = _parquet_texts(domain, source.path, text_field)
    else:
        raise DataError(f"domain {domain!r}: {source.path}: unknown format {source.format!r}")
    for text in texts:
        yield from split_document(text)


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


def _text_file_pieces(domain: str, path: Path) -> Iterator[Piece]:
    """A text file as one document, read in blocks and cut into pieces."""
    if path.stat().st_size == 0:
        raise DataError(f"domain {domain!r}: {path}: empty file")
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    buffer, offset, first, has_text = "", 0, True, False
    with path.open("rb") as handle:
        while True:
            block = handle.read(_READ_BYTES)
            try:
                buffer += decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                raise DataError(
                    f"domain {domain!r}: {path}: not UTF-8 text "
                    f"(invalid byte near offset {offset + error.start})"
                ) from None
            if offset == 0:
                buffer = buffer.removeprefix(_BOM)
            offset += len(block)
            if not block:
                break
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


def _jsonl_texts(domain: str, path: Path, text_field: str) -> Iterator[str]:
    """The ``text_field`` of every record of a JSON Lines file."""
    records = 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            where = f"domain {domain!r}: {path}:{line_no}"
            try:
                line = raw.decode("utf-8").removeprefix(_BOM)
            except UnicodeDecodeError:
                raise DataError(f"{where}: not UTF-8 text") from None
            if not line.strip():
                continue
            records += 1
            text = _record_text(_parse_json_line(line, where), text_field, where)
            if text:
                yield text
    if records == 0:
        raise DataError(f"domain {domain!r}: {path}: empty file (no JSON records)")


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
