"""The hooks every data format implements: recognising, reading, encoding and exporting a file.

A format is either text (:class:`TextFormat`: documents are read from the file and tokenized
here) or pre-tokenized (:class:`TokenFormat`: the file holds token ids, documents separated by the
tokenizer's end-of-text id, and is only checked and sliced). A concrete format sets the class
attributes below and implements the abstract methods; nothing else in mixopt knows about it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from mixopt.data.chunks import Chunk, piece_chunks, token_chunks
from mixopt.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from mixopt.data.documents import Piece, Skipped
    from mixopt.data.sources import DomainSources, SourceFile


class DataFormat(ABC):
    """One file format of a domain's files."""

    name: ClassVar[str]
    """The format's name in a spec (``DomainSpec.format``) and in the manifest."""
    extensions: ClassVar[tuple[str, ...]]
    """Lower-case file suffixes ``format: auto`` reads in this format (a ``.gz``/``.zst``
    suffix after them is looked through)."""
    compressible: ClassVar[bool] = False
    """Files may be gzip- or zstd-compressed (recognised by their magic bytes)."""
    pretokenized: ClassVar[bool]
    """Files hold token ids, not text."""
    needs_dtype: ClassVar[bool] = False
    """The domain's ``dtype`` is required to read the files."""
    hf_builder: ClassVar[str | None]
    """Exporter hook: the Hugging Face ``datasets`` builder that loads such files, or ``None``
    for token ids (not text, which the export snippet refuses)."""

    @abstractmethod
    def pieces(
        self, domain: str, source: SourceFile, text_field: str, skipped: Skipped | None
    ) -> Iterator[Piece]:
        """Reader hook: the file's documents as pieces. ``domain`` names the source in errors
        (``domain 'web'``); ``skipped`` given: bad records are counted there instead of
        raising."""

    @abstractmethod
    def chunks(
        self, sources: DomainSources, source: SourceFile, skipped: Skipped, eot_id: int, size: int
    ) -> Iterator[Chunk]:
        """Encoder hook: the file as chunks of about ``size`` bytes for the encoder. Bad records
        found here are counted in ``skipped`` when the domain skips them."""

    def text_bytes(self, source: SourceFile, text_field: str) -> int:
        """About how many bytes of text the file holds, without reading it (for sampling)."""
        if source.compression:
            return 4 * source.path.stat().st_size  # a typical ratio for text
        return source.path.stat().st_size


class TextFormat(DataFormat):
    """A format whose files hold text; its pieces are tokenized as they are."""

    pretokenized = False

    def chunks(
        self, sources: DomainSources, source: SourceFile, skipped: Skipped, eot_id: int, size: int
    ) -> Iterator[Chunk]:
        bad = skipped if sources.skip_bad_records else None
        return piece_chunks(self.pieces(sources.label, source, sources.text_field, bad), size)


class TokenFormat(DataFormat):
    """A format whose files hold token ids as a 1-D integer array."""

    pretokenized = True
    hf_builder = None

    @abstractmethod
    def load(self, where: str, source: SourceFile, dtype: str | None) -> np.ndarray:
        """The file's token ids as a read-only 1-D integer array (a memmap), checked for shape
        and type (``where`` prefixes the messages)."""

    def tokens(self, domain: str, source: SourceFile, dtype: str | None) -> np.ndarray:
        """The file's token ids; an empty file is an error."""
        where = f"{domain}: {source.path}"
        array = self.load(where, source, dtype)
        if len(array) == 0:
            raise DataError(f"{where}: empty file (no tokens)")
        return array

    def pieces(
        self, domain: str, source: SourceFile, text_field: str, skipped: Skipped | None
    ) -> Iterator[Piece]:
        raise DataError(f"{domain}: {source.path} holds token ids, not text (format {self.name})")

    def chunks(
        self, sources: DomainSources, source: SourceFile, skipped: Skipped, eot_id: int, size: int
    ) -> Iterator[Chunk]:
        where = f"{sources.label}: {source.path}"
        tokens = self.tokens(sources.label, source, sources.dtype)
        return token_chunks(where, tokens, eot_id, size // 4)  # a token counts as 4 bytes
