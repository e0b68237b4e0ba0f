"""Raw ``.bin``: token ids back to back in the domain's ``dtype`` (uint16 or uint32), no header.

Documents are ended by the end-of-text id. Without a header the file cannot say its own dtype,
so the spec must; a size that is not a multiple of the item size is a wrong dtype or a truncated
file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mixopt.data.formats.base import TokenFormat
from mixopt.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from mixopt.data.sources import SourceFile


class RawTokens(TokenFormat):
    """A headerless file of token ids."""

    name = "bin"
    extensions = (".bin",)
    needs_dtype = True

    def load(self, where: str, source: SourceFile, dtype: str | None) -> np.ndarray:
        import numpy as np

        if dtype is None:  # resolve_sources requires it (needs_dtype)
            raise DataError(f"{where}: raw token ids need the domain's dtype (uint16 or uint32)")
        itemsize = np.dtype(dtype).itemsize
        size = source.path.stat().st_size
        if size % itemsize:
            raise DataError(
                f"{where}: {size} bytes is not a multiple of the {dtype} item size {itemsize} "
                "(wrong dtype, or a truncated file)"
            )
        return np.memmap(source.path, dtype=dtype, mode="r") if size else np.zeros(0, dtype)
