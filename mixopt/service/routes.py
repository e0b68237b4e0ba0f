"""The API's job endpoints (see :mod:`mixopt.service.app` for the list).

A user sees only their own jobs (another user's is a 404, like one that does not exist).
Submitting and resuming check the user's quotas under one lock, so two requests at once cannot
both slip under a limit (on one server; servers sharing a database each keep their own lock).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

import json
import logging
import re
import secrets
import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from mixopt.errors import MixoptError
from mixopt.job import JobDir, planned_trials
from mixopt.service.admission import Rejected, admit, parse_body
from mixopt.service.quotas import QuotaExceeded, Usage, planned_usage
from mixopt.service.schemas import ErrorOut, JobList, JobOut, SpecCheck
from mixopt.service.settings import ServiceSettings
from mixopt.service.store import ACTIVE, FINAL, STATES, JobRecord, JobStore
from mixopt.service.supervisor import Supervisor
from mixopt.service.views import JobViews

log = logging.getLogger("mixopt.service")

_JOB_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
EXPORT_MEDIA = {
    "json": "application/json",
    "hf-json": "application/json",
    "yaml": "application/yaml",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422, 429)
}


def new_job_id() -> str:
    return "j" + secrets.token_hex(6)


def record_usage(job: JobRecord) -> Usage:
    """What an active job plans (its trials as recorded; its tokens from its spec)."""
    import yaml

    from mixopt.spec import parse_spec

    try:
        tokens = planned_usage(parse_spec(yaml.safe_load(job.spec))).tokens
    except (MixoptError, yaml.YAMLError):
        tokens = 0.0
    return Usage(1, job.trials_total, tokens)


def job_router(
    settings: ServiceSettings,
    store: JobStore,
    supervisor: Supervisor,
    views: JobViews,
    user_dependency: Any,
) -> APIRouter:
    router = APIRouter()
    User = Annotated[str, user_dependency]
    quota_lock = threading.Lock()

    def owned(job_id: str, user: str) -> JobRecord:
        job = store.get(job_id, owner=user) if _JOB_ID.match(job_id) else None
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job

    def finished_dir(job: JobRecord) -> JobDir:
        job_dir = JobDir(job.job_dir)
        if job_dir.has_recommendation():
            return job_dir
        if job.state == "completed":
            raise HTTPException(409, f"job {job.id}: completed but its recommendation is missing")
        raise HTTPException(409, f"job {job.id} is {job.state}: no recommendation yet")

    def active_usage(user: str, *, besides: str | None = None) -> Usage:
        jobs, _ = store.list_jobs(owner=user, states=ACTIVE, limit=10_000)
        total = Usage()
        for job in jobs:
            if job.id != besides:
                total = total + record_usage(job)
        return total

    def check_quota(user: str, spec: Any, besides: str | None = None) -> None:
        try:
            settings.quotas.check_user(spec, active_usage(user, besides=besides))
        except QuotaExceeded as error:
            raise Rejected(str(error), error.status) from None

    # ------------------------------------------------------------------------------ submit

    @router.post(
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
                "description": "The search spec (see mixopt/spec), as YAML or JSON.",
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
        """Submit a job: the spec is validated, checked against the service's policy, the
        machine and the user's quotas, then queued."""
        body = await request.body()
        content_type = request.headers.get("content-type")
        return await run_in_threadpool(_submit, body, content_type, user, base_dir, dry_run)

    def _submit(
        body: bytes, content_type: str | None, user: str, base_dir: str | None, dry_run: bool
    ) -> JSONResponse:
        job_id = new_job_id()
        folder = settings.jobs_dir / job_id
        data = parse_body(body, content_type)
        spec = admit(data, settings, user=user, base_dir=base_dir, output_dir=folder)
        if dry_run:
            check_quota(user, spec)
            spec_text = views.text(spec.to_yaml())
            import yaml

            check = SpecCheck(
                name=spec.name, trials_total=planned_trials(spec), spec=yaml.safe_load(spec_text)
            )
            return JSONResponse(check.model_dump(mode="json"), status_code=200)
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
        with quota_lock:
            check_quota(user, spec)
            store.add(record)
        supervisor.wake()
        log.info("job %s (%s) submitted by %s", job_id, spec.name, user)
        return JSONResponse(views.out(record).model_dump(mode="json"), status_code=201)

    # ------------------------------------------------------------------------- the jobs

    @router.get("/jobs", response_model=JobList, tags=["jobs"], responses=ERRORS)
    def list_jobs(
        user: User,
        state: Annotated[
            str | None, Query(description="Comma list of states to keep, e.g. queued,running.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> JobList:
        """The caller's jobs, newest first."""
        states = None
        if state:
            states = tuple(s.strip() for s in state.split(",") if s.strip())
            unknown = sorted(set(states) - set(STATES))
            if unknown:
                raise HTTPException(422, f"unknown state(s) {unknown}; states are {list(STATES)}")
        jobs, total = store.list_jobs(owner=user, states=states, limit=limit, offset=offset)
        return JobList(jobs=[views.out(j) for j in jobs], total=total, limit=limit, offset=offset)

    @router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], responses=ERRORS)
    def get_job(job_id: str, user: User) -> JobOut:
        """A job's state and progress."""
        return views.out(owned(job_id, user))

    @router.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"], responses=ERRORS)
    def cancel_job(job_id: str, user: User) -> JobOut:
        """Cancel: a queued job at once; a running one is interrupted (its state turns to
        cancelled when its process has stopped)."""
        job = owned(job_id, user)
        if job.state in FINAL:
            raise HTTPException(409, f"job {job_id} is already {job.state}")
        supervisor.cancel(job)
        return views.out(owned(job_id, user))

    @router.post("/jobs/{job_id}/resume", response_model=JobOut, tags=["jobs"], responses=ERRORS)
    def resume_job(job_id: str, user: User) -> JobOut:
        """Queue a failed or cancelled job again; it goes on from its finished trials."""
        import yaml

        from mixopt.spec import parse_spec

        job = owned(job_id, user)
        if job.state == "completed":
            raise HTTPException(409, f"job {job_id} is completed; nothing to resume")
        if job.state not in FINAL:
            raise HTTPException(
                409, f"job {job_id} is {job.state}; only a failed or cancelled job resumes"
            )
        with quota_lock:
            check_quota(user, parse_spec(yaml.safe_load(job.spec)), besides=job.id)
            if not supervisor.requeue(job):
                raise HTTPException(
                    409, f"job {job_id} is {job.state}; only a failed or cancelled job resumes"
                )
        supervisor.wake()
        return views.out(owned(job_id, user))

    # ----------------------------------------------------------------------------- results

    @router.get("/jobs/{job_id}/recommendation", tags=["results"], responses=ERRORS)
    def recommendation(job_id: str, user: User) -> JSONResponse:
        """The job's recommendation.json: mixture, predicted objective, evidence, validation."""
        job = owned(job_id, user)
        document = finished_dir(job).load_recommendation()
        return JSONResponse(json.loads(views.text(json.dumps(document), job)))

    @router.get("/jobs/{job_id}/export", tags=["results"], responses=ERRORS)
    def export(
        job_id: str,
        user: User,
        format: Annotated[str, Query(description="An export format (json, yaml, ...).")] = "json",
    ) -> Response:
        """The recommended mixture in an export format (as ``mixopt export`` writes it)."""
        from mixopt.export import export as render

        job = owned(job_id, user)
        text = render(finished_dir(job).path, format)
        return Response(views.text(text, job), media_type=EXPORT_MEDIA.get(format, "text/plain"))

    @router.get("/jobs/{job_id}/logs", tags=["results"], responses=ERRORS)
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
            int | None,
            Query(ge=0, le=1 << 62, description="Return bytes from here instead (to follow)."),
        ] = None,
    ) -> PlainTextResponse:
        """The job's log as text; ``X-Log-Offset`` is where to continue from."""
        text, end = views.log(owned(job_id, user), source, tail, offset)
        return PlainTextResponse(text, headers={"X-Log-Offset": str(end)})

    @router.get("/jobs/{job_id}/spec", tags=["results"], responses=ERRORS)
    def job_spec(job_id: str, user: User) -> Response:
        """The resolved spec the job runs (YAML)."""
        return Response(views.spec(owned(job_id, user)), media_type="application/yaml")

    return router
