"""Plain text: a file is one document (UTF-8, a leading byte-order mark dropped; gzip/zstd ok).

The file is decoded block by block and cut into pieces as it is read, so a file of many GB never
sits in memory whole. Any file ``format: auto`` does not recognise by extension is read as text.
"""

from __future__ import annotations

import codecs
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mixopt.data import documents
from mixopt.data.compression import iter_blocks
from mixopt.data.documents import BOM, Piece, Skipped, find_cut
from mixopt.data.formats.base import TextFormat
from mixopt.errors import DataError

if TYPE_CHECKING:
    from mixopt.data.sources import SourceFile


class PlainText(TextFormat):
    """A text file is one document."""

    name = "text"
    extensions = ()  # the fallback of ``format: auto``
    compressible = True
    hf_builder = "text"

    def pieces(
        self, domain: str, source: SourceFile, text_field: str, skipped: Skipped | None
    ) -> Iterator[Piece]:
        """The file as one document, read in blocks and cut into pieces.

        A file that is not UTF-8 is an error; when bad records are skipped it is dropped instead
        (for a file over :data:`~mixopt.data.documents.PIECE_CHARS` characters, from the piece
        with the bad byte on).
        """
        path = source.path
        if path.stat().st_size == 0:
            raise DataError(f"{domain}: {path}: empty file")
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        buffer, offset, first, has_text = "", 0, True, False
        for block in itertools.chain(iter_blocks(domain, source), [b""]):
            try:
                buffer += decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                message = (
                    f"{domain}: {path}: not UTF-8 text "
                    f"(invalid byte near offset {offset + error.start})"
                )
                if skipped is None:
                    raise DataError(message) from None
                skipped.add(message)
                if not first:  # close the document already begun
                    yield Piece("", False, True)
                return
            if offset == 0:
                buffer = buffer.removeprefix(BOM)
            offset += len(block)
            while len(buffer) > documents.PIECE_CHARS:
                cut = find_cut(buffer, 0, documents.PIECE_CHARS)
                if cut is None:
                    break
                has_text = has_text or not buffer[:cut].isspace()
                yield Piece(buffer[:cut], first, False)
                buffer, first = buffer[cut:], False
        has_text = has_text or (bool(buffer) and not buffer.isspace())
        if not has_text:
            raise DataError(f"{domain}: {path}: empty file (only whitespace)")
        yield Piece(buffer, first, True)
