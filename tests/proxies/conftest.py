"""Fixtures for proxies tests: token files written from numpy arrays into tmp_path.

Every test runs with one torch thread (restored after): the proxies here are tiny, and on a
shared 2-core machine two OpenMP threads waiting for each other at every small kernel make a
step up to 100x slower than one thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from proxies.data import DomainTokens, TokenDtype

MakeDomain = Callable[..., DomainTokens]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_domain(tmp_path: Path) -> MakeDomain:
    """make_domain(name, train_tokens, val_tokens, dtype="uint16", val_bytes=0) -> DomainTokens."""

    def make(
        name: str,
        train: np.ndarray,
        val: np.ndarray,
        *,
        dtype: TokenDtype = "uint16",
        val_bytes: int = 0,
    ) -> DomainTokens:
        train_path, val_path = tmp_path / f"{name}.train.bin", tmp_path / f"{name}.val.bin"
        np.asarray(train, dtype=dtype).tofile(train_path)
        np.asarray(val, dtype=dtype).tofile(val_path)
        return DomainTokens(name, train_path, val_path, dtype=dtype, val_bytes=val_bytes)

    return make


def pattern(period: int, length: int, vocab: int, seed: int = 0) -> np.ndarray:
    """A random sequence of ``period`` distinct tokens repeated to ``length`` (learnable)."""
    base = np.random.default_rng(seed).permutation(vocab)[:period]
    return np.resize(base, length)


def web_and_code(make_domain: MakeDomain, vocab: int) -> list[DomainTokens]:
    """Two learnable domains of different periods ("web" with 9 kB of validation text)."""
    return [
        make_domain(
            "web", pattern(13, 20_000, vocab, 0), pattern(13, 3_000, vocab, 0), val_bytes=9_000
        ),
        make_domain("code", pattern(17, 20_000, vocab, 1), pattern(17, 3_000, vocab, 1)),
    ]


def pattern_and_noise(make_domain: MakeDomain, vocab: int) -> list[DomainTokens]:
    """A learnable repeating pattern and uniform noise (no model can beat log V on it): the
    pair the online mixture methods (DoReMi, Aioli) are checked on."""
    rng = np.random.default_rng(5)
    return [
        make_domain("pattern", pattern(13, 20_000, vocab), pattern(13, 3_000, vocab)),
        make_domain("noise", rng.integers(0, vocab, 20_000), rng.integers(0, vocab, 3_000)),
    ]
