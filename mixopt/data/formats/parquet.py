"""Parquet: a row is one document, the ``text_field`` column (nulls and empty texts skipped).

``pyarrow`` is imported when a Parquet file is read. Any damage (an unreadable footer, a corrupt
page) is an error even when bad records are skipped, since how much of the file is lost is
unknown.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mixopt.data.documents import Piece, Skipped, split_document
from mixopt.data.formats.base import TextFormat
from mixopt.errors import DataError

if TYPE_CHECKING:
    from pathlib import Path

    from mixopt.data.sources import SourceFile


class Parquet(TextFormat):
    """A Parquet row is one document."""

    name = "parquet"
    extensions = (".parquet",)
    hf_builder = "parquet"

    def pieces(
        self, domain: str, source: SourceFile, text_field: str, skipped: Skipped | None
    ) -> Iterator[Piece]:
        for text in parquet_texts(domain, source.path, text_field):
            yield from split_document(text)

    def text_bytes(self, source: SourceFile, text_field: str) -> int:
        """The text column's uncompressed size from the file's metadata."""
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


def parquet_texts(domain: str, path: Path, text_field: str) -> Iterator[str]:
    """The ``text_field`` column of a Parquet file, in row order (nulls and empties skipped)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = f"{domain}: {path}"
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
