"""Reading a domain's documents: every file through its format's reader, as :class:`Piece` s.

Formats and their readers live in :mod:`mixopt.data.formats`; resolving and hashing a domain's
files in :mod:`mixopt.data.sources`. Every problem raises :class:`~mixopt.errors.DataError` naming
the domain and the file (and the line for JSONL). With ``skip_bad_records`` a bad record (a
malformed, non-UTF-8 or field-less JSONL line; a non-UTF-8 text file) is counted and skipped
instead; a corrupt or truncated file (compressed stream, Parquet pages) is always an error,
since how much of it is lost is unknown.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mixopt.data.documents import Piece, Skipped
from mixopt.data.formats import get_format

if TYPE_CHECKING:
    from mixopt.data.sources import DomainSources, SourceFile


def iter_pieces(sources: DomainSources) -> Iterator[Piece]:
    """Every document of the domain, file after file, as pieces (bad records skipped silently
    when the domain skips them)."""
    skipped = Skipped() if sources.skip_bad_records else None
    for source in sources.files:
        yield from iter_file_pieces(sources.label, source, sources.text_field, skipped)


def iter_file_pieces(
    domain: str, source: SourceFile, text_field: str, skipped: Skipped | None = None
) -> Iterator[Piece]:
    """The documents of one file, as pieces. ``domain`` is how errors name the source (its
    label: ``domain 'web'``, ``eval set 'held'``). ``skipped`` given: bad records are counted
    there instead of raising."""
    yield from get_format(source.format).pieces(domain, source, text_field, skipped)


def estimate_text_bytes(source: SourceFile, text_field: str) -> int:
    """About how many bytes of text a file holds, without reading it (for sampling)."""
    return get_format(source.format).text_bytes(source, text_field)
