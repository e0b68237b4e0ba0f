"""MLflow run ids of a job's trials, read from its ``mlflow.db`` with sqlite3 (read-only).

The tracker tags every trial's child run ``mixopt.trial_id`` and the job's parent run
``mixopt.kind=job`` (see :mod:`mixopt.tracking.mlflow_tracker`). Reading the SQLite file
directly keeps the dashboard free of MLflow's import cost and never writes to a running job's
store. A link into the MLflow UI is ``{base}/#/experiments/{experiment_id}/runs/{run_id}``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

TRIAL_ID_TAG = "mixopt.trial_id"
KIND_TAG = "mixopt.kind"


def read_trial_runs(db_path: Path) -> dict[str, Any]:
    """``{"experiment_id", "parent_run_id", "runs": {trial_id: run_id}, "error"}``."""
    out: dict[str, Any] = {"experiment_id": None, "parent_run_id": None, "runs": {}, "error": None}
    uri = f"file:{quote(str(Path(db_path).resolve()))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=2.0)
    except sqlite3.Error as error:
        out["error"] = f"cannot open: {error}"
        return out
    try:
        rows = connection.execute(
            "SELECT r.run_uuid, r.experiment_id, t.value, r.start_time FROM runs r "
            "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = ? "
            "WHERE r.lifecycle_stage = 'active' ORDER BY r.start_time",
            (TRIAL_ID_TAG,),
        ).fetchall()
        parents = connection.execute(
            "SELECT r.run_uuid, r.experiment_id FROM runs r "
            "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = ? AND t.value = 'job' "
            "WHERE r.lifecycle_stage = 'active' ORDER BY r.start_time",
            (KIND_TAG,),
        ).fetchall()
    except sqlite3.Error as error:
        out["error"] = f"not an MLflow store ({error})"
        return out
    finally:
        connection.close()
    for run_id, experiment_id, trial_id, _ in rows:  # the latest run of a trial wins
        out["runs"][str(trial_id)] = str(run_id)
        out["experiment_id"] = str(experiment_id)
    if parents:
        out["parent_run_id"], experiment = str(parents[-1][0]), str(parents[-1][1])
        out["experiment_id"] = out["experiment_id"] or experiment
    return out


def run_url(base_url: str, experiment_id: str, run_id: str) -> str:
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
