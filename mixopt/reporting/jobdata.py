"""A job's files, read once: spec, runs table, recommendation, status, trial results, MLflow ids.

Every file but one is optional, because a job is looked at while it runs: before its data is
prepared there is only ``spec.yaml`` and ``job.json``, the runs table grows a row per finished
trial, and ``recommendation.json`` appears at the end. A directory with none of ``spec.yaml``,
``job.json`` and ``runs.parquet`` is not a job, and says so.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.errors import MixoptError

if TYPE_CHECKING:
    import pandas as pd

SPEC_FILE = "spec.yaml"
STATUS_FILE = "job.json"
RUNS_FILE = "runs.parquet"
RECOMMENDATION_FILE = "recommendation.json"
STATE_FILE = "state.json"
MANIFEST_FILE = "data_manifest.json"
MLFLOW_DB = "mlflow.db"
JOB_MARKERS = (SPEC_FILE, STATUS_FILE, RUNS_FILE)
WATCHED = (RUNS_FILE, STATUS_FILE, RECOMMENDATION_FILE, STATE_FILE, SPEC_FILE, MANIFEST_FILE)
FINAL_STATES = frozenset({"completed", "failed", "cancelled", "interrupted"})


@dataclass
class JobData:
    """Everything known about one job; any part may be missing (None / empty)."""

    name: str
    job_dir: Path | None = None
    spec: dict[str, Any] | None = None
    spec_text: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
    runs: pd.DataFrame | None = None
    recommendation: dict[str, Any] | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)  # state.json trials (results)
    manifest: dict[str, Any] | None = None
    mlflow: dict[str, Any] | None = None  # see mixopt.reporting.mlflow_runs.read_trial_runs
    version: str = ""  # changes whenever one of the job's files changes
    source: str = "directory"
    notes: list[str] = field(default_factory=list)  # what could not be read, for the page

    # ------------------------------------------------------------------------------ derived

    @property
    def state(self) -> str:
        """queued | preparing | running | completed | failed | cancelled | interrupted | unknown."""
        status = self.status.get("status")
        if isinstance(status, str) and status:
            return status
        if self.recommendation is not None:
            return "completed"
        return "unknown"

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def domains(self) -> list[str]:
        if self.spec and isinstance(self.spec.get("domains"), list):
            names = [d.get("name") for d in self.spec["domains"] if isinstance(d, dict)]
            if names and all(isinstance(n, str) for n in names):
                return [str(n) for n in names]
        if self.runs is not None:
            return [c.removeprefix("weight/") for c in self.runs.columns if c.startswith("weight/")]
        if self.recommendation and isinstance(self.recommendation.get("weights"), dict):
            return list(self.recommendation["weights"])
        return []

    @property
    def direction(self) -> str:
        for source in (
            (self.recommendation or {}).get("objective"),
            (self.spec or {}).get("objective"),
        ):
            if isinstance(source, dict) and source.get("direction") in ("minimize", "maximize"):
                return str(source["direction"])
        return "minimize"

    @property
    def objective_metrics(self) -> dict[str, float]:
        """Metric → weight of the objective (the mean validation loss when the spec names none)."""
        rec_objective = (self.recommendation or {}).get("objective")
        if isinstance(rec_objective, dict) and rec_objective.get("metrics"):
            return {str(k): float(v) for k, v in rec_objective["metrics"].items()}
        spec_objective = (self.spec or {}).get("objective")
        if isinstance(spec_objective, dict) and spec_objective.get("metrics"):
            return {str(k): float(v) for k, v in spec_objective["metrics"].items()}
        domains = self.domains
        return {f"val_loss/{d}": 1.0 / len(domains) for d in domains} if domains else {}

    def natural(self) -> dict[str, float] | None:
        """The natural mixture (each domain's share of the train tokens)."""
        if self.recommendation and isinstance(self.recommendation.get("natural"), dict):
            return {k: float(v) for k, v in self.recommendation["natural"].items()}
        if self.manifest and isinstance(self.manifest.get("domains"), list):
            tokens = {
                d["name"]: float(d.get("train_tokens", 0))
                for d in self.manifest["domains"]
                if isinstance(d, dict) and "name" in d
            }
            total = sum(tokens.values())
            if tokens and total > 0:
                return {name: value / total for name, value in tokens.items()}
        return None


# ---------------------------------------------------------------------------------- loading


def is_job_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in JOB_MARKERS)


def find_job_dirs(path: str | Path) -> list[Path]:
    """``path`` itself when it is a job directory, else the job directories directly in it
    (e.g. ``runs/``), newest first. A missing path, or one holding no job, is an error."""
    path = Path(path).expanduser()
    if not path.exists():
        raise MixoptError(f"{path}: no such job directory")
    if not path.is_dir():
        raise MixoptError(f"{path}: not a directory (give a job directory or a folder of them)")
    if is_job_dir(path):
        return [path]
    children = [c for c in path.iterdir() if is_job_dir(c)]
    if not children:
        raise MixoptError(
            f"{path}: not a mixopt job directory (no {', '.join(JOB_MARKERS)}) and no job "
            "directories in it"
        )
    return sorted(children, key=_mtime, reverse=True)


def _mtime(path: Path) -> float:
    stamps = []
    for name in WATCHED:
        with contextlib.suppress(OSError):
            stamps.append((path / name).stat().st_mtime)
    return max(stamps, default=0.0)


def version_of(job_dir: Path) -> str:
    """A token that changes whenever one of the job's files is rewritten."""
    parts = []
    for name in WATCHED:
        try:
            stat = (job_dir / name).stat()
        except OSError:
            parts.append("-")
            continue
        parts.append(f"{stat.st_mtime_ns:x}.{stat.st_size:x}")
    return "_".join(parts)


def load_job_dir(path: str | Path, *, name: str | None = None) -> JobData:
    """Read a job directory (finished, running or failed)."""
    job_dir = Path(path).expanduser()
    if not job_dir.exists():
        raise MixoptError(f"{job_dir}: no such job directory")
    if not is_job_dir(job_dir):
        raise MixoptError(
            f"{job_dir}: not a mixopt job directory (it has none of {', '.join(JOB_MARKERS)})"
        )
    version = version_of(job_dir)
    notes: list[str] = []
    spec_text = _read_text(job_dir / SPEC_FILE)
    spec = None
    if spec_text is not None:
        import yaml

        try:
            loaded = yaml.safe_load(spec_text)
            spec = loaded if isinstance(loaded, dict) else None
        except yaml.YAMLError as error:
            notes.append(f"{SPEC_FILE} is not valid YAML: {error}")
    status = _read_json(job_dir / STATUS_FILE, notes) or {}
    status = _check_alive(status)
    recommendation = _read_json(job_dir / RECOMMENDATION_FILE, notes)
    manifest = _read_json(job_dir / MANIFEST_FILE, notes)
    state = _read_json(job_dir / STATE_FILE, notes) or {}
    trials = [t for t in state.get("trials", []) if isinstance(t, dict)]
    runs = _read_runs(job_dir / RUNS_FILE)
    mlflow = None
    if (job_dir / MLFLOW_DB).is_file():
        from mixopt.reporting.mlflow_runs import read_trial_runs

        mlflow = read_trial_runs(job_dir / MLFLOW_DB)
        if mlflow.get("error"):
            notes.append(f"{MLFLOW_DB}: {mlflow['error']}")
    job_name = (
        name
        or (spec or {}).get("name")
        or status.get("job")
        or (recommendation or {}).get("job")
        or job_dir.name
    )
    return JobData(
        name=str(job_name),
        job_dir=job_dir.resolve(),
        spec=spec,
        spec_text=spec_text,
        status=status,
        runs=runs,
        recommendation=recommendation,
        trials=trials,
        manifest=manifest,
        mlflow=mlflow,
        version=version,
        notes=notes,
    )


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _read_json(path: Path, notes: list[str]) -> dict[str, Any] | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as error:
        notes.append(f"{path.name} is not valid JSON ({error})")
        return None
    return data if isinstance(data, dict) else None


def _read_runs(path: Path) -> pd.DataFrame | None:
    """The runs table sorted in trial order; None before the first trial finished."""
    if not path.is_file():
        return None
    import pandas as pd

    # one read of the bytes, parsed from memory: a running job replaces the file (atomically)
    # after every trial, and a reader that opened it twice could see halves of two versions
    try:
        frame = pd.read_parquet(io.BytesIO(path.read_bytes()))
    except (OSError, ValueError) as error:
        raise MixoptError(f"{path}: cannot read the runs table: {error}") from None
    if "trial_id" not in frame.columns:
        raise MixoptError(f"{path}: not a mixopt runs table (no trial_id column)")
    order = sorted(range(len(frame)), key=lambda i: trial_order(str(frame["trial_id"].iloc[i])))
    return frame.iloc[order].reset_index(drop=True)


def trial_order(trial_id: str) -> tuple[str, int, str]:
    """Sort key of trial ids in creation order (t0009 < t0010 < t10000)."""
    match = re.match(r"^(\D*)(\d+)(.*)$", trial_id)
    if match is None:
        return (trial_id, -1, "")
    return (match.group(1), int(match.group(2)), match.group(3))


def _check_alive(status: dict[str, Any]) -> dict[str, Any]:
    """A job.json that says running on this host for a process that is gone did not finish:
    mark it, rather than show a job as running forever."""
    if status.get("status") not in ("running", "preparing"):
        return status
    pid, host = status.get("pid"), status.get("host")
    if not isinstance(pid, int) or host != platform.node():
        return status
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return {**status, "status": "interrupted", "error": "the job's process is gone"}
    except PermissionError:
        pass
    return status
