"""``uvicorn --factory tests.mixopt.service.fake_server:app``: the real service over HTTP whose
jobs run ``fake_job.py`` (for the fast CLI tests). Configured by environment variables."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mixopt.service.app import create_app
from mixopt.service.settings import ServiceSettings, load_tokens

FAKE_JOB = Path(__file__).with_name("fake_job.py")


def app() -> Any:
    settings = ServiceSettings(
        tokens=load_tokens(),
        state_dir=Path(os.environ["MIXOPT_SERVICE_DIR"]),
        data_roots=[Path(p) for p in os.environ["MIXOPT_TEST_DATA_ROOTS"].split(os.pathsep)],
        runner="local",
        poll_interval_s=0.05,
        cancel_grace_s=2.0,
        job_command=(sys.executable, str(FAKE_JOB)),
    )
    return create_app(settings)
