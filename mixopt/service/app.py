"""The FastAPI application: jobs over HTTP.

    GET  /health                         liveness (no token)
    POST /jobs                           submit a spec (YAML or JSON); ?dry_run=true checks only
    GET  /jobs                           the caller's jobs, newest first (?state=&limit=&offset=)
    GET  /jobs/{id}                      state, trials, progress, best so far, ETA
    POST /jobs/{id}/cancel               stop a queued or running job
    POST /jobs/{id}/resume               queue a failed or cancelled job again, where it stopped
    GET  /jobs/{id}/recommendation       recommendation.json of a completed job
    GET  /jobs/{id}/export?format=F      the recommendation in an export format
    GET  /jobs/{id}/logs                 the job's log (?source=process|job, ?tail=N, ?offset=B)
    GET  /jobs/{id}/spec                 the resolved spec the job runs
    GET  /docs, /openapi.json            API documentation

Every endpoint but ``/health`` needs ``Authorization: Bearer <token>``; a user sees only their
own jobs (another user's job is a 404, like one that does not exist). Errors are JSON
``{"detail": "..."}`` with a 4xx status that says what was wrong.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, which
# name dependencies local to create_app.

import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from mixopt import __version__
from mixopt.errors import MixoptError
from mixopt.job import JobDir, planned_trials
from mixopt.service.admission import Rejected, admit, parse_body
from mixopt.service.auth import TokenVerifier
from mixopt.service.limits import BodySizeLimit
from mixopt.service.progress import eta_seconds
from mixopt.service.progress import read_progress as read_job_progress
from mixopt.service.schemas import ErrorOut, Health, JobList, JobOut, SpecCheck
from mixopt.service.settings import ServiceSettings
from mixopt.service.store import FINAL, STATES, JobRecord, JobStore
from mixopt.service.supervisor import PROCESS_LOG, Supervisor

log = logging.getLogger("mixopt.service")

_JOB_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
MAX_LOG_BYTES = 1 << 20
EXPORT_MEDIA = {
    "json": "application/json",
    "hf-json": "application/json",
    "yaml": "application/yaml",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422)
}


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


def new_job_id() -> str:
    return "j" + secrets.token_hex(6)


def create_app(
    settings: ServiceSettings, *, store: JobStore | None = None, supervise: bool = True
) -> FastAPI:
    """The service for ``settings``; ``supervise=False`` runs no job processes (tests)."""
    store = store if store is not None else JobStore(settings.url)
    supervisor = Supervisor(store, settings)
    verifier = TokenVerifier(settings.tokens)
    bearer = HTTPBearer(auto_error=False, description="A token configured on the server.")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        if supervise:
            await run_in_threadpool(supervisor.start)
        try:
            yield
        finally:
            supervisor.stop()

    app = FastAPI(
        title="mixopt",
        version=__version__,
        summary="Data-mixture search jobs: submit a spec, watch it, fetch the recommendation.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.supervisor = supervisor
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)

    def current_user(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        user = verifier.user_of(credentials.credentials) if credentials is not None else None
        if user is None:
            raise HTTPException(
                401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        return user

    User = Annotated[str, Depends(current_user)]
    docs_auth = [] if settings.public_docs else [Depends(current_user)]

    # ------------------------------------------------------------------------------ errors

    @app.exception_handler(Rejected)
    async def _rejected(_: Request, error: Rejected) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.exception_handler(MixoptError)
    async def _user_error(_: Request, error: MixoptError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in item.get('loc', ()))}: {item.get('msg', 'invalid')}"
            for item in error.errors()
        ]
        return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, 422)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=error)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)

    # ------------------------------------------------------------------------------ helpers

    def job_out(job: JobRecord) -> JobOut:
        completed, failed, best, stage = (
            job.trials_completed,
            job.trials_failed,
            job.best_objective,
            job.stage,
        )
        total, eta = job.trials_total, None
        if job.state == "running":  # fresher than the supervisor's last look
            now_progress = read_job_progress(job.job_dir, job.direction)
            eta = now_progress.eta_s
            completed = now_progress.trials_completed or completed
            failed = now_progress.trials_failed or failed
            best = now_progress.best_objective if now_progress.best_objective is not None else best
            stage = now_progress.stage or stage
            total = now_progress.trials_total or total
        now = time.time()
        done = completed + failed
        if job.state == "running" and eta is None:
            eta = eta_seconds(done, total, job.started, now)
        fraction = 1.0 if job.state == "completed" else min(1.0, done / total) if total else 0.0
        end = job.finished or now
        return JobOut(
            id=job.id,
            name=job.name,
            owner=job.owner,
            state=job.state,
            stage=stage,
            trials_completed=completed,
            trials_failed=failed,
            trials_total=total,
            progress=round(fraction, 4),
            best_objective=best,
            eta_s=None if eta is None else round(eta, 1),
            created=_iso(job.created) or "",
            started=_iso(job.started),
            finished=_iso(job.finished),
            updated=_iso(job.updated) or "",
            elapsed_s=None if job.started is None else round(end - job.started, 3),
            resumes=job.resumes,
            cancel_requested=job.cancel_requested is not None,
            error=job.error,
            job_dir=job.job_dir,
        )

    def owned(job_id: str, user: str) -> JobRecord:
        job = store.get(job_id, owner=user) if _JOB_ID.match(job_id) else None
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job

    def finished_dir(job: JobRecord) -> Path:
        job_dir = JobDir(job.job_dir)
        if job_dir.has_recommendation():
            return job_dir.path
        if job.state == "completed":
            raise HTTPException(409, f"job {job.id}: completed but its recommendation is missing")
        raise HTTPException(409, f"job {job.id} is {job.state}: no recommendation yet")

    # ------------------------------------------------------------------------------ routes

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        """Liveness; needs no token."""
        return Health(version=__version__)

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs_auth)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=docs_auth)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="mixopt API")

    @app.post(
        "/jobs",
        status_code=201,
        response_model=JobOut,
        tags=["jobs"],
        responses={
            **ERRORS,
            200: {"model": SpecCheck, "description": "dry run: the spec is valid and allowed"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The search spec (see mixopt/spec.py), as YAML or JSON.",
                "content": {
                    "application/yaml": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            }
        },
    )
    async def submit(
        request: Request,
        user: User,
        base_dir: Annotated[
            str | None,
            Query(description="Folder relative spec paths resolve against (the spec's folder)."),
        ] = None,
        dry_run: Annotated[bool, Query(description="Validate and check only.")] = False,
    ) -> JSONResponse:
        """Submit a job: the spec is validated and checked against the data roots, then queued."""
        body = await request.body()
        content_type = request.headers.get("content-type")
        return await run_in_threadpool(_submit, body, content_type, user, base_dir, dry_run)

    def _submit(
        body: bytes, content_type: str | None, user: str, base_dir: str | None, dry_run: bool
    ) -> JSONResponse:
        spec = admit(parse_body(body, content_type), settings, base_dir=base_dir)
        if dry_run:
            check = SpecCheck(
                name=spec.name, trials_total=planned_trials(spec), spec=spec.to_dict()
            )
            return JSONResponse(check.model_dump(mode="json"), status_code=200)
        job_id = new_job_id()
        folder = settings.jobs_dir / job_id
        spec.output_dir = str(folder)  # the service decides where its jobs live
        now = time.time()
        record = JobRecord(
            id=job_id,
            owner=user,
            name=spec.name,
            state="queued",
            command="run",
            runner=settings.runner,
            spec=spec.to_yaml(),
            folder=str(folder),
            job_dir=str(folder / "run"),
            direction=spec.objective.direction,
            trials_total=planned_trials(spec),
            created=now,
            updated=now,
        )
        store.add(record)
        supervisor.wake()
        log.info("job %s (%s) submitted by %s", job_id, spec.name, user)
        return JSONResponse(job_out(record).model_dump(mode="json"), status_code=201)

    @app.get("/jobs", response_model=JobList, tags=["jobs"], responses=ERRORS)
    def list_jobs(
        user: User,
        state: Annotated[
            str | None, Query(description="Comma list of states to keep, e.g. queued,running.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> JobList:
        """The caller's jobs, newest first."""
        states = None
        if state:
            states = tuple(s.strip() for s in state.split(",") if s.strip())
            unknown = sorted(set(states) - set(STATES))
            if unknown:
                raise HTTPException(422, f"unknown state(s) {unknown}; states are {list(STATES)}")
        jobs, total = store.list_jobs(owner=user, states=states, limit=limit, offset=offset)
        return JobList(jobs=[job_out(j) for j in jobs], total=total, limit=limit, offset=offset)

    @app.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], responses=ERRORS)
    def get_job(job_id: str, user: User) -> JobOut:
        """A job's state and progress."""
        return job_out(owned(job_id, user))

    @app.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"], responses=ERRORS)
    def cancel_job(job_id: str, user: User) -> JobOut:
        """Cancel: a queued job at once; a running one is interrupted (its state turns to
        cancelled when its process has stopped)."""
        job = owned(job_id, user)
        if job.state in FINAL:
            raise HTTPException(409, f"job {job_id} is already {job.state}")
        supervisor.cancel(job)
        return job_out(owned(job_id, user))

    @app.post("/jobs/{job_id}/resume", response_model=JobOut, tags=["jobs"], responses=ERRORS)
    def resume_job(job_id: str, user: User) -> JobOut:
        """Queue a failed or cancelled job again; it goes on from its finished trials."""
        job = owned(job_id, user)
        if job.state == "completed":
            raise HTTPException(409, f"job {job_id} is completed; nothing to resume")
        if job.state not in FINAL or not supervisor.requeue(job):
            raise HTTPException(
                409, f"job {job_id} is {job.state}; only a failed or cancelled job resumes"
            )
        supervisor.wake()
        return job_out(owned(job_id, user))

    @app.get("/jobs/{job_id}/recommendation", tags=["results"], responses=ERRORS)
    def recommendation(job_id: str, user: User) -> JSONResponse:
        """The job's recommendation.json: mixture, predicted objective, evidence, validation."""
        from mixopt.export import load_recommendation

        return JSONResponse(load_recommendation(finished_dir(owned(job_id, user))))

    @app.get("/jobs/{job_id}/export", tags=["results"], responses=ERRORS)
    def export(
        job_id: str,
        user: User,
        format: Annotated[str, Query(description="An export format (json, yaml, ...).")] = "json",
    ) -> Response:
        """The recommended mixture in an export format (as ``mixopt export`` writes it)."""
        from mixopt.export import export as render

        text = render(finished_dir(owned(job_id, user)), format)
        return Response(text, media_type=EXPORT_MEDIA.get(format, "text/plain"))

    @app.get("/jobs/{job_id}/logs", tags=["results"], responses=ERRORS)
    def logs(
        job_id: str,
        user: User,
        source: Annotated[
            str,
            Query(
                pattern="^(process|job)$",
                description="process: the job process's output; job: the loop's job.log",
            ),
        ] = "process",
        tail: Annotated[int, Query(ge=1, le=100_000, description="Last lines to return.")] = 200,
        offset: Annotated[
            int | None, Query(ge=0, description="Return bytes from here instead (to follow).")
        ] = None,
    ) -> PlainTextResponse:
        """The job's log as text; ``X-Log-Offset`` is where to continue from."""
        job = owned(job_id, user)
        path = (
            Path(job.folder) / PROCESS_LOG if source == "process" else JobDir(job.job_dir).log_path
        )
        text, end = _read_log(path, tail, offset)
        return PlainTextResponse(text, headers={"X-Log-Offset": str(end)})

    @app.get("/jobs/{job_id}/spec", tags=["results"], responses=ERRORS)
    def job_spec(job_id: str, user: User) -> Response:
        """The resolved spec the job runs (YAML)."""
        return Response(owned(job_id, user).spec, media_type="application/yaml")

    return app


def _read_log(path: Path, tail: int, offset: int | None) -> tuple[str, int]:
    """(text, offset after it): from ``offset`` (at most MAX_LOG_BYTES), else the last lines."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            if offset is not None:
                start = min(offset, size)
                handle.seek(start)
                data = handle.read(MAX_LOG_BYTES)
                return data.decode(errors="replace"), start + len(data)
            start = max(0, size - MAX_LOG_BYTES)
            handle.seek(start)
            data = handle.read()
    except OSError:
        return "", 0
    lines = data.decode(errors="replace").splitlines(keepends=True)
    return "".join(lines[-tail:]), size
