"""Where the dashboard finds jobs: job directories on this machine, and/or a mixopt service.

- A directory given with ``--job-dir`` is a job, or a folder of jobs (``runs/``) that is scanned
  again on every jobs-list request, so new jobs appear. A job's id is its directory's name.
- A service (``--server URL``, token from ``$MIXOPT_TOKEN``) lists the token's jobs. Its job
  directories live on the server's disk (the API names them relative to the service's state
  directory): where that directory is readable here (``--service-dir``: the dashboard runs on
  the server, or the disk is shared) every view is shown; otherwise the views the API can feed
  (status, spec, recommendation, validation summary) and a note saying what is missing.

Loaded jobs and their view models are cached on the job's file versions, so polling an
unchanged job costs a few ``stat`` calls. A job whose files link out of its directory (a
``spec.yaml`` that is a symbolic link to any file the dashboard's user can read) is refused,
never followed: the dashboard shows what the job wrote, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mixopt.errors import MixoptError
from mixopt.job import JobDir, StatusRecord, find_job_dirs
from mixopt.job.directory import LOG_FILE, MLFLOW_DB, WATCHED
from mixopt.reporting.jobdata import JobData, load_job_dir, parse_spec_text
from mixopt.reporting.views import ViewOptions, build_views, job_summary

_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


class UnknownJob(MixoptError):
    """No job with this id in any source."""


class LinksOut(MixoptError):
    """A file of a job directory is a link to somewhere else."""


def check_contained(job_dir: Path) -> None:
    """Refuse a job directory whose files (those the views read) are symbolic links, or
    resolve outside it."""
    root = job_dir.resolve()
    for name in (*WATCHED, LOG_FILE, MLFLOW_DB):
        path = job_dir / name
        if path.is_symlink() or (path.exists() and root not in path.resolve().parents):
            raise LinksOut(
                f"{job_dir.name}: {name} is a link out of the job directory; the dashboard "
                "does not follow it"
            )


@dataclass
class DirectorySource:
    paths: Sequence[Path]
    ids: dict[Path, str] = field(default_factory=dict)  # job dir -> id, stable once given
    lock: threading.Lock = field(default_factory=threading.Lock)

    def scan(self) -> dict[str, Path]:
        found: list[Path] = []
        for path in self.paths:
            try:
                found.extend(find_job_dirs(path))
            except MixoptError:
                if JobDir(path).is_job():
                    found.append(path)
        with self.lock:
            for job_dir in found:
                key = job_dir.resolve()
                if key not in self.ids:
                    base = _SAFE.sub("-", key.name).strip("-") or "job"
                    taken = set(self.ids.values())
                    candidate, n = base, 2
                    while candidate in taken:
                        candidate, n = f"{base}-{n}", n + 1
                    self.ids[key] = candidate
            return {self.ids[p.resolve()]: p.resolve() for p in found}


class ServiceSource:
    """A service's jobs; ``state_dir``: the service's state directory where it is readable here
    (the API names job directories relative to it)."""

    def __init__(self, url: str, token: str | None = None, state_dir: Path | None = None) -> None:
        from mixopt.service.client import ServiceClient

        self.state_dir = state_dir
        self.url = url.rstrip("/")
        self.client = ServiceClient(self.url, token=token)

    def check(self) -> None:
        self.client.health()
        self.client.jobs(limit=1)  # the token is accepted

    def jobs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.client.jobs(limit=1000)["jobs"]
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        return self.client.job(job_id)

    def spec_text(self, job_id: str) -> str | None:
        from mixopt.service.client import ServiceError

        try:
            response = self.client._request("GET", f"/jobs/{job_id}/spec")
        except ServiceError:
            return None
        text: str = response.text
        return text

    def recommendation(self, job_id: str) -> dict[str, Any] | None:
        from mixopt.service.client import ServiceError

        try:
            return self.client.recommendation(job_id)
        except ServiceError as error:
            if error.status == 409:  # not finished yet
                return None
            raise


def service_status(record: dict[str, Any]) -> StatusRecord | None:
    """A service job record as a job status (None when its state is unknown)."""
    return StatusRecord.from_dict(
        {
            "status": record.get("state"),
            "stage": record.get("stage"),
            "trials_completed": record.get("trials_completed"),
            "trials_failed": record.get("trials_failed"),
            "trials_total": record.get("trials_total"),
            "best_objective": record.get("best_objective"),
            "eta_s": record.get("eta_s"),
            "elapsed_s": record.get("elapsed_s"),
            "updated": record.get("updated"),
            "error": record.get("error"),
            "job": record.get("name"),
        }
    )


def _readable_dir(path: str | None, state_dir: Path | None) -> Path | None:
    if not path:
        return None
    job_dir = Path(path)
    if not job_dir.is_absolute():
        if state_dir is None:
            return None
        job_dir = state_dir / job_dir
    try:
        return job_dir if JobDir(job_dir).is_job() else None
    except OSError:
        return None


class JobRegistry:
    """Every job the dashboard can show, by id, with cached view models."""

    def __init__(
        self,
        directories: DirectorySource | None = None,
        service: ServiceSource | None = None,
        options: ViewOptions | None = None,
    ) -> None:
        self.directories = directories
        self.service = service
        self.options = options or ViewOptions()
        self._jobs: dict[str, tuple[str, JobData]] = {}  # id -> (version, job)
        self._models: dict[str, tuple[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ list

    def list_jobs(self) -> tuple[list[dict[str, Any]], list[str]]:
        """(job summaries, newest first; errors of sources that could not be read)."""
        jobs: list[dict[str, Any]] = []
        errors: list[str] = []
        if self.directories is not None:
            for job_id, job_dir in self.directories.scan().items():
                try:
                    job = self._load_dir(job_id, job_dir)
                except MixoptError as error:
                    jobs.append(
                        {
                            "id": job_id,
                            "name": job_dir.name,
                            "dir": str(job_dir),
                            "state": "unreadable",
                            "error": str(error),
                            "source": "directory",
                        }
                    )
                    continue
                jobs.append({"id": job_id, **job_summary(job)})
        if self.service is not None:
            try:
                records = self.service.jobs()
            except MixoptError as error:
                errors.append(str(error))
                records = []
            for record in records:
                jobs.append(
                    {
                        "id": record["id"],
                        "name": record.get("name"),
                        "dir": record.get("job_dir"),
                        "source": f"service {self.service.url}",
                        "state": record.get("state"),
                        "stage": record.get("stage"),
                        "trials_completed": record.get("trials_completed"),
                        "trials_failed": record.get("trials_failed"),
                        "trials_total": record.get("trials_total"),
                        "best_objective": record.get("best_objective"),
                        "updated": record.get("updated"),
                        "error": record.get("error"),
                    }
                )
        jobs.sort(key=lambda j: str(j.get("updated") or ""), reverse=True)
        return jobs, errors

    # ------------------------------------------------------------------------------- one

    def model(self, job_id: str) -> dict[str, Any]:
        job = self.job(job_id)
        with self._lock:
            cached = self._models.get(job_id)
        if cached is not None and cached[0] == job.version:
            return cached[1]
        model = build_views(job, self.options, job_id=job_id)
        with self._lock:
            self._models[job_id] = (job.version, model)
        return model

    def job(self, job_id: str) -> JobData:
        if self.directories is not None:
            found = self.directories.scan()
            if job_id in found:
                return self._load_dir(job_id, found[job_id])
        if self.service is not None and re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", job_id):
            from mixopt.service.client import ServiceError

            try:
                record = self.service.job(job_id)
            except ServiceError as error:
                if error.status == 404:
                    raise UnknownJob(f"no job {job_id!r}") from None
                raise
            return self._load_service(job_id, record)
        raise UnknownJob(f"no job {job_id!r}")

    def _load_dir(self, job_id: str, job_dir: Path) -> JobData:
        check_contained(job_dir)
        version = JobDir(job_dir).version()
        with self._lock:
            cached = self._jobs.get(job_id)
        if cached is not None and cached[0] == version and cached[1].job_dir == job_dir.resolve():
            return cached[1]
        try:
            job = load_job_dir(job_dir)
        except MixoptError:
            if cached is None or cached[1].finished:
                raise
            # a running job rewrites its files as trials finish: one more look before failing
            time.sleep(0.2)
            job = load_job_dir(job_dir)
        with self._lock:
            self._jobs[job_id] = (job.version, job)
        return job

    def _load_service(self, job_id: str, record: dict[str, Any]) -> JobData:
        assert self.service is not None
        source = f"service {self.service.url}, job {job_id}"
        status = service_status(record)
        job_dir = _readable_dir(record.get("job_dir"), self.service.state_dir)
        if job_dir is not None:
            job = self._load_dir(f"service:{job_id}", job_dir)
            # the service knows states the job's own files cannot (queued, cancelled)
            if status is not None:
                own = job.status or status
                job = replace(job, status=replace(own, status=status.status))
            job.source = source
            job.version = f"{job.version}|{job.state}"
            return job
        spec_text = self.service.spec_text(job_id)
        notes: list[str] = []
        spec, job_spec = parse_spec_text(spec_text or None, notes)
        recommendation = (
            self.service.recommendation(job_id) if record.get("state") == "completed" else None
        )
        version = hashlib.sha256(
            json.dumps([record, recommendation is not None], sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        return JobData(
            name=str(record.get("name") or job_id),
            job_dir=None,
            spec=spec,
            spec_text=spec_text,
            job_spec=job_spec,
            status=status,
            recommendation=recommendation,
            version=version,
            source=source,
            notes=[
                *notes,
                f"The job's directory ({record.get('job_dir')}) is on the server and not "
                "readable from here: the trace, predictor, effects, MoE and trial views need its "
                "runs table. Run the dashboard where the directory is readable for all views.",
            ],
        )
