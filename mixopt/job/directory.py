"""A job's directory: the only code that knows its file names and how each file is read.

    runs/<name>-<YYYYmmdd-HHMMSS>-<hex>/
        spec.yaml            the resolved spec (defaults filled in, paths absolute)
        data_manifest.json   tokenizer, token counts and content hashes of every domain
        runs.parquet         one row per finished trial: the source of truth
        state.json           every trial and its result: what ``mixopt resume`` continues from
        recommendation.json  the mixture, its prediction, evidence and validation
        job.json             live status (see :class:`~mixopt.job.status.StatusRecord`)
        job.log              the driver's log
        checkpoints/<trial>  resumable trial checkpoints
        trunks/<hash>        shared trunks of staged runs (the fixed stages, once per seed)
        online.json          online baselines' results (DoReMi), kept for a resumed job
        mlflow.db, mlartifacts/   MLflow's local store (unless the spec names a server)

Writers replace files atomically (:mod:`mixopt.atomic`), so a reader never sees half a file.
Readers come in two kinds: strict ones (``load_*``) raise :class:`MixoptError` saying what is
wrong, for commands that cannot go on without the file; lenient ones (``read_*``) return None
for a missing or torn file, for views of a job that is still running. One process owns a job at
a time: :meth:`JobDir.lock` takes an exclusive lock that the kernel drops when the process dies.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import platform
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.atomic import replace_with, write_atomic
from mixopt.errors import MixoptError
from mixopt.job.state import JobState
from mixopt.job.status import StatusRecord

if TYPE_CHECKING:
    import pandas as pd

    from mixopt.data.manifest import DataManifest
    from mixopt.spec import JobSpec

SPEC_FILE = "spec.yaml"
STATUS_FILE = "job.json"
STATE_FILE = "state.json"
RUNS_FILE = "runs.parquet"
RECOMMENDATION_FILE = "recommendation.json"
MANIFEST_FILE = "data_manifest.json"
LOG_FILE = "job.log"
LOCK_FILE = ".lock"
CHECKPOINTS_DIR = "checkpoints"
TRUNKS_DIR = "trunks"
ONLINE_FILE = "online.json"
MLFLOW_DB = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"

# a directory holding any of these is a job; every view watches these for changes
MARKERS = (SPEC_FILE, STATUS_FILE, RUNS_FILE)
WATCHED = (RUNS_FILE, STATUS_FILE, RECOMMENDATION_FILE, STATE_FILE, SPEC_FILE, MANIFEST_FILE)


class JobLocked(MixoptError):
    """Another live process owns the job directory."""


class JobDir:
    """One job's directory (it need not exist yet)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    def __repr__(self) -> str:
        return f"JobDir({str(self.path)!r})"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------------------ creation

    @classmethod
    def create(cls, output_dir: str | Path, name: str, path: str | Path | None = None) -> JobDir:
        """A fresh directory: ``path`` when given (it must be new or empty; mixopt never
        overwrites a job), else ``<output_dir>/<name>-<timestamp>-<random hex>``, unique even
        for jobs started in the same second."""
        if path is not None:
            job = cls(path)
            if job.path.exists() and (not job.path.is_dir() or any(job.path.iterdir())):
                raise MixoptError(
                    f"{job.path}: already exists and is not empty; choose another --job-dir "
                    "(mixopt never overwrites a job)"
                )
            job.path.mkdir(parents=True, exist_ok=True)
            return job
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for _ in range(100):
            job = cls(Path(output_dir) / f"{name}-{stamp}-{secrets.token_hex(3)}")
            try:
                job.path.mkdir()  # atomic: exactly one creator wins a name
            except FileExistsError:
                continue
            return job
        raise MixoptError(f"{output_dir}: could not create a unique job directory")

    @classmethod
    def new(cls, spec: JobSpec, path: str | Path | None = None) -> JobDir:
        """A fresh directory for a job of ``spec`` (under its ``output_dir`` unless ``path``)."""
        return cls.create(spec.output_dir, spec.name, path)

    def is_job(self) -> bool:
        return self.path.is_dir() and any((self.path / n).is_file() for n in MARKERS)

    def require_job(self) -> None:
        if not self.path.exists():
            raise MixoptError(f"{self.path}: no such job directory")
        if not self.is_job():
            raise MixoptError(
                f"{self.path}: not a mixopt job directory (it has none of {', '.join(MARKERS)})"
            )

    # --------------------------------------------------------------------------- ownership

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Own the job for the duration: a second run or resume of it is refused while this
        process lives (the lock is the kernel's, so a killed owner leaves no stale lock)."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                raise JobLocked(
                    f"{self.path}: the job is running ({owner}); wait for it to finish or "
                    "cancel it first"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {platform.node()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock

    def locked(self) -> bool:
        """True while a live process owns the job (see :meth:`lock`)."""
        import fcntl

        try:
            fd = os.open(self.path / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    # -------------------------------------------------------------------------------- spec

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC_FILE

    def write_spec(self, spec: JobSpec) -> None:
        write_atomic(self.path / SPEC_FILE, spec.to_yaml())

    def load_spec(self) -> JobSpec:
        """The job's spec, validated (``MixoptError`` when it is missing or invalid)."""
        from mixopt.spec import load_spec

        if not (self.path / SPEC_FILE).is_file():
            raise MixoptError(f"{self.path}: not a job directory (no {SPEC_FILE})")
        return load_spec(self.path / SPEC_FILE)

    def read_spec_text(self) -> str | None:
        return _read_text(self.path / SPEC_FILE)

    # ------------------------------------------------------------------------------ status

    def write_status(self, record: StatusRecord) -> None:
        write_atomic(self.path / STATUS_FILE, json.dumps(record.to_dict(), indent=2))

    def read_status(self, notes: list[str] | None = None) -> StatusRecord | None:
        """``job.json``; None when absent, torn or foreign."""
        data = _read_json(self.path / STATUS_FILE, notes)
        return StatusRecord.from_dict(data) if isinstance(data, dict) else None

    # ------------------------------------------------------------------------------- state

    def save_state(self, state: JobState) -> None:
        write_atomic(self.path / STATE_FILE, json.dumps(state.to_dict()))

    def load_state(self) -> JobState:
        path = self.path / STATE_FILE
        if not path.is_file():
            raise MixoptError(f"{self.path}: no {STATE_FILE}, nothing to resume")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise MixoptError(f"{path}: unreadable job state ({error})") from None
        return JobState.from_dict(data, source=str(path))

    def read_state_trials(self, notes: list[str] | None = None) -> list[dict[str, Any]]:
        """The saved trials as plain mappings (for views); empty when unreadable."""
        data = _read_json(self.path / STATE_FILE, notes)
        trials = data.get("trials") if isinstance(data, dict) else None
        return [t for t in trials if isinstance(t, dict)] if isinstance(trials, list) else []

    # -------------------------------------------------------------------------------- runs

    @property
    def runs_path(self) -> Path:
        return self.path / RUNS_FILE

    def write_runs(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        import pandas as pd

        frame = pd.DataFrame(rows)
        replace_with(self.path / RUNS_FILE, lambda tmp: frame.to_parquet(tmp, index=False))
        return frame

    def read_runs(self) -> pd.DataFrame | None:
        """The runs table in trial order; None before the first trial finished."""
        path = self.path / RUNS_FILE
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

    # ---------------------------------------------------------------------- recommendation

    def write_recommendation(self, recommendation: dict[str, Any]) -> None:
        write_atomic(self.path / RECOMMENDATION_FILE, json.dumps(recommendation, indent=2))

    def can_resume(self) -> bool:
        """True when the job saved what ``mixopt resume`` needs (its spec and state)."""
        return (self.path / SPEC_FILE).is_file() and (self.path / STATE_FILE).is_file()

    def has_recommendation(self) -> bool:
        return (self.path / RECOMMENDATION_FILE).is_file()

    def read_recommendation(self, notes: list[str] | None = None) -> dict[str, Any] | None:
        data = _read_json(self.path / RECOMMENDATION_FILE, notes)
        return data if isinstance(data, dict) else None

    def load_recommendation(self) -> dict[str, Any]:
        """The recommendation, for commands that need it (``MixoptError`` saying why not)."""
        path = self.path / RECOMMENDATION_FILE
        if not self.path.is_dir():
            raise MixoptError(f"{self.path}: not a job directory")
        if not path.is_file():
            raise MixoptError(f"{self.path}: no {RECOMMENDATION_FILE} (the job has not finished)")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise MixoptError(f"{path}: unreadable recommendation: {error}") from None
        if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
            raise MixoptError(f"{path}: no 'weights' mapping in the recommendation")
        return data

    # ---------------------------------------------------------------------------- manifest

    def save_manifest(self, manifest: DataManifest) -> None:
        manifest.save(self.path / MANIFEST_FILE)

    def load_manifest(self) -> DataManifest | None:
        """The data manifest; None when the job never got past its data stage."""
        from mixopt.data.manifest import DataManifest

        path = self.path / MANIFEST_FILE
        return DataManifest.load(path) if path.is_file() else None

    def read_manifest_mapping(self, notes: list[str] | None = None) -> dict[str, Any] | None:
        data = _read_json(self.path / MANIFEST_FILE, notes)
        return data if isinstance(data, dict) else None

    # ------------------------------------------------------------------- log and the rest

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    def log(self, text: str) -> None:
        with self.log_path.open("a") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {text}\n")

    def checkpoint_dir(self, trial_id: str) -> Path:
        return (self.path / CHECKPOINTS_DIR / trial_id).resolve()

    @property
    def online_path(self) -> Path:
        """The online baselines' results (``mixopt.search.online``)."""
        return self.path / ONLINE_FILE

    @property
    def trunks_dir(self) -> Path:
        """Where staged runs share their fixed leading stages (``proxies.branch``)."""
        return (self.path / TRUNKS_DIR).resolve()

    @property
    def mlflow_db(self) -> Path:
        return self.path / MLFLOW_DB

    @property
    def artifacts_dir(self) -> Path:
        return self.path / ARTIFACTS_DIR

    def artifacts(self) -> list[Path]:
        """The files a tracker keeps with the job's run."""
        return [self.path / n for n in (SPEC_FILE, RECOMMENDATION_FILE, RUNS_FILE)]

    def version(self) -> str:
        """A token that changes whenever one of the job's files is rewritten."""
        parts = []
        for name in WATCHED:
            try:
                stat = (self.path / name).stat()
            except OSError:
                parts.append("-")
                continue
            parts.append(f"{stat.st_mtime_ns:x}.{stat.st_size:x}")
        return "_".join(parts)

    def mtime(self) -> float:
        stamps = []
        for name in WATCHED:
            with contextlib.suppress(OSError):
                stamps.append((self.path / name).stat().st_mtime)
        return max(stamps, default=0.0)


def find_job_dirs(path: str | Path) -> list[Path]:
    """``path`` itself when it is a job directory, else the job directories directly in it
    (e.g. ``runs/``), newest first. A missing path, or one holding no job, is an error."""
    root = Path(path).expanduser()
    if not root.exists():
        raise MixoptError(f"{root}: no such job directory")
    if not root.is_dir():
        raise MixoptError(f"{root}: not a directory (give a job directory or a folder of them)")
    if JobDir(root).is_job():
        return [root]
    children = [JobDir(c) for c in root.iterdir() if JobDir(c).is_job()]
    if not children:
        raise MixoptError(
            f"{root}: not a mixopt job directory (no {', '.join(MARKERS)}) and no job "
            "directories in it"
        )
    return [j.path for j in sorted(children, key=lambda j: j.mtime(), reverse=True)]


def trial_order(trial_id: str) -> tuple[str, int, str]:
    """Sort key of trial ids in creation order (t0009 < t0010 < t10000)."""
    match = re.match(r"^(\D*)(\d+)(.*)$", trial_id)
    if match is None:
        return (trial_id, -1, "")
    return (match.group(1), int(match.group(2)), match.group(3))


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _read_json(path: Path, notes: list[str] | None = None) -> Any:
    """The JSON in ``path``; None when it is missing or torn (which ``notes`` records)."""
    text = _read_text(path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        if notes is not None:
            notes.append(f"{path.name} is not valid JSON ({error})")
        return None
