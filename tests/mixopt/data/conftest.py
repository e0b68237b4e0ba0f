"""Fixtures for the data stage: job specs over the tiny corpus, with caches in ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CORPUS, MakeSpec, corpus_domains

__all__ = ["CORPUS", "LogCollector", "MakeSpec", "corpus_domains"]


@pytest.fixture
def corpus() -> Path:
    return CORPUS


class LogCollector(list[str]):
    """A ``log`` callable that keeps the lines."""

    def __call__(self, line: str) -> None:
        self.append(line)

    def text(self) -> str:
        return "\n".join(self)


@pytest.fixture
def logs() -> LogCollector:
    return LogCollector()
