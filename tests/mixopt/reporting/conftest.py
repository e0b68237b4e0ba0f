from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.mixopt.reporting.jobs import shared_finished_job


@pytest.fixture(scope="session")
def finished_job() -> Path:
    return shared_finished_job()


@pytest.fixture(scope="session")
def finished_runs(finished_job: Path) -> pd.DataFrame:
    return pd.read_parquet(finished_job / "runs.parquet")
