"""Token files of a domain (``DomainTokens``) and mixture weights over domains (``check_weights``).

Torch-free (numpy only), so a driver can describe and check a run's data without importing torch;
``proxies.data`` builds the training and validation streams from these and re-exports them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

TokenDtype = Literal["uint16", "uint32"]
_WEIGHT_SUM_TOL = 1e-3


@dataclass(frozen=True)
class DomainTokens:
    """A domain's train and val token files; *_bytes are the text bytes they came from (for bpb)."""

    name: str
    train_path: str | Path
    val_path: str | Path
    dtype: TokenDtype = "uint16"
    train_bytes: int = 0
    val_bytes: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("DomainTokens.name must not be empty")
        if self.dtype not in ("uint16", "uint32"):
            raise ValueError(
                f"domain {self.name!r}: dtype must be 'uint16' or 'uint32', got {self.dtype!r}"
            )
        if self.train_bytes < 0 or self.val_bytes < 0:
            raise ValueError(f"domain {self.name!r}: train_bytes/val_bytes must be >= 0")

    def path(self, split: Literal["train", "val"]) -> Path:
        return Path(self.train_path if split == "train" else self.val_path)

    def num_tokens(self, split: Literal["train", "val"]) -> int:
        """Tokens in the split's file, from its size (the file is not read)."""
        path = self.path(split)
        if not path.is_file():
            raise ValueError(f"domain {self.name!r}: {split} token file {path} does not exist")
        size, itemsize = path.stat().st_size, np.dtype(self.dtype).itemsize
        if size % itemsize:
            raise ValueError(
                f"domain {self.name!r}: {path} has {size} bytes, not a multiple of the "
                f"{self.dtype} item size {itemsize} (wrong dtype?)"
            )
        return size // itemsize

    def open(self, split: Literal["train", "val"]) -> np.ndarray:
        """The split's tokens as a read-only memmap (an empty array for an empty file)."""
        if self.num_tokens(split) == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.path(split), dtype=self.dtype, mode="r")


def check_weights(domains: list[DomainTokens], weights: Mapping[str, float]) -> np.ndarray:
    """Validated weights aligned with ``domains`` (a domain missing from ``weights`` gets 0).

    Raises ValueError for duplicate domain names, weights naming unknown domains, negative or
    non-finite weights, or weights whose sum is not 1 (within 1e-3; they are then renormalised).
    """
    names = [d.name for d in domains]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate domain names in {names}")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"weights name unknown domain(s) {unknown}; domains are {names}")
    w = np.array([float(weights.get(name, 0.0)) for name in names], dtype=np.float64)
    bad = [n for n, x in zip(names, w, strict=True) if not math.isfinite(x) or x < 0]
    if bad:
        raise ValueError(f"weights must be finite and >= 0; bad for {bad}")
    total = float(w.sum())
    if abs(total - 1.0) > _WEIGHT_SUM_TOL:
        raise ValueError(f"weights must sum to 1 (±{_WEIGHT_SUM_TOL}), got {total:.6g}")
    return w / total
