"""``uvicorn --factory tests.mixopt.service.fake_server:app``: the real service over HTTP whose
jobs run ``fake_job.py`` (for the fast CLI tests), or ``mixed_job.py`` (fake ``slow*`` jobs, real
``mixopt`` for the rest) with ``MIXOPT_TEST_MIXED_JOBS=1``. Configured by environment variables:
``MIXOPT_TEST_DATA_ROOTS`` (os.pathsep-separated), ``MIXOPT_TEST_MLFLOW_URI`` and
``MIXOPT_TEST_QUOTAS`` (JSON of :class:`~mixopt.service.quotas.Quotas` fields), optional."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from mixopt.service.app import create_app
from mixopt.service.quotas import Quotas
from mixopt.service.settings import ServiceSettings, load_tokens

FAKE_JOB = Path(__file__).with_name("fake_job.py")
MIXED_JOB = Path(__file__).with_name("mixed_job.py")


def app() -> Any:
    mixed = os.environ.get("MIXOPT_TEST_MIXED_JOBS") == "1"
    settings = ServiceSettings(
        tokens=load_tokens(),
        state_dir=Path(os.environ["MIXOPT_SERVICE_DIR"]),
        data_roots=[Path(p) for p in os.environ["MIXOPT_TEST_DATA_ROOTS"].split(os.pathsep)],
        runner="local",
        poll_interval_s=0.05,
        cancel_grace_s=2.0,
        job_command=(sys.executable, str(MIXED_JOB if mixed else FAKE_JOB)),
        mlflow_uri=os.environ.get("MIXOPT_TEST_MLFLOW_URI") or None,
        quotas=Quotas(**json.loads(os.environ.get("MIXOPT_TEST_QUOTAS") or "{}")),
    )
    return create_app(settings)
