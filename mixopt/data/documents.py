"""What a document is as it streams out of a file: :class:`Piece` s, and the bad records skipped.

A long document is cut into pieces of about :data:`PIECE_CHARS` characters, only after a newline
that has non-space characters on both sides: a byte-level BPE pre-tokenizer splits there anyway,
so encoding the pieces one by one gives the same tokens as encoding the whole document, while
memory stays bounded for huge files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

PIECE_CHARS = 1 << 20
"""Documents longer than this (characters) are cut into pieces of about this size."""

BOM = "\ufeff"
"""A UTF-8 byte-order mark, dropped from the start of a file or line."""

_MAX_NOTES = 5


class Piece(NamedTuple):
    """A document, or a slice of one: ``starts_doc`` / ``ends_doc`` mark its ends."""

    text: str
    starts_doc: bool
    ends_doc: bool


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
