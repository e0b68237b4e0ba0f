"""NumPy ``.npy``: a 1-D integer array of token ids, documents ended by the end-of-text id.

The array is memory-mapped, never loaded whole. Its dtype is the file's own; a ``dtype`` in the
spec is checked against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mixopt.data.formats.base import TokenFormat
from mixopt.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from mixopt.data.sources import SourceFile


class NpyTokens(TokenFormat):
    """A ``.npy`` file of token ids."""

    name = "npy"
    extensions = (".npy",)

    def load(self, where: str, source: SourceFile, dtype: str | None) -> np.ndarray:
        import numpy as np

        try:
            array = np.load(source.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DataError(f"{where}: not a readable .npy file ({error})") from None
        if array.ndim != 1:
            raise DataError(f"{where}: expected a 1-D array of token ids, got shape {array.shape}")
        if array.dtype.kind not in "iu":
            raise DataError(f"{where}: token ids must be integers, got dtype {array.dtype}")
        if dtype is not None and array.dtype != np.dtype(dtype):
            raise DataError(f"{where}: holds {array.dtype} token ids but the spec says {dtype}")
        return array
