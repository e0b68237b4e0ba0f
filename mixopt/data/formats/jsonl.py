"""JSON Lines: a line is one document, the record's ``text_field`` (gzip/zstd ok).

Blank lines are ignored; ``null`` and empty texts are skipped (not bad). A bad line (malformed
JSON, not an object, no such field, not a string, not UTF-8) raises a DataError naming
``file:line``, or is counted when the domain skips bad records. For encoding, the main process
only cuts raw lines into :class:`JsonlChunk` s: parsing happens in the worker processes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mixopt.data.chunks import Chunk, Encoded
from mixopt.data.compression import iter_lines
from mixopt.data.documents import BOM, Piece, Skipped, split_document
from mixopt.data.formats.base import TextFormat
from mixopt.errors import DataError

if TYPE_CHECKING:
    from mixopt.data.encode import ChunkEncoder
    from mixopt.data.sources import DomainSources, SourceFile


class JsonLines(TextFormat):
    """A JSONL line is one document."""

    name = "jsonl"
    extensions = (".jsonl", ".json", ".ndjson")
    compressible = True
    hf_builder = "json"

    def pieces(
        self, domain: str, source: SourceFile, text_field: str, skipped: Skipped | None
    ) -> Iterator[Piece]:
        where = f"{domain}: {source.path}"
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

    def chunks(
        self, sources: DomainSources, source: SourceFile, skipped: Skipped, eot_id: int, size: int
    ) -> Iterator[Chunk]:
        """Raw lines of about ``size`` bytes; bad lines are found (and counted) by workers."""
        where = f"{sources.label}: {source.path}"
        lines: list[tuple[int, bytes]] = []
        nbytes = records = 0
        for line_no, raw in iter_lines(sources.label, source):
            if not raw.strip():
                continue
            records += 1
            lines.append((line_no, raw))
            nbytes += len(raw)
            if nbytes >= size:
                yield JsonlChunk(where, lines, sources.text_field, sources.skip_bad_records)
                lines, nbytes = [], 0
        if records == 0:
            raise DataError(f"{where}: empty file (no JSON records)")
        if lines:
            yield JsonlChunk(where, lines, sources.text_field, sources.skip_bad_records)


@dataclass
class JsonlChunk(Chunk):
    """Raw JSONL lines of one file; ``skip`` counts bad lines instead of failing."""

    where: str
    lines: list[tuple[int, bytes]]
    text_field: str
    skip: bool

    def encode(self, encoder: ChunkEncoder) -> Encoded:
        skipped = Skipped()
        texts = jsonl_texts(self.where, self.lines, self.text_field, skipped if self.skip else None)
        pieces = [piece for text in texts for piece in split_document(text)]
        return encoder.encode_pieces(pieces, skipped)


def jsonl_texts(
    where: str,
    lines: Iterable[tuple[int, bytes]],
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
        line = raw.decode("utf-8").removeprefix(BOM)
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
