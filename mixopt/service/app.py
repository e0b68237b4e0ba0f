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
    /studies/...                         ask/tell studies (see mixopt.service.studies)

Every endpoint but ``/health`` needs ``Authorization: Bearer <token>``; a user sees only their
own jobs (another user's job is a 404, like one that does not exist). Errors are JSON
``{"detail": "..."}`` with a 4xx status that says what was wrong, without the server's own paths
(its state directory, Python installation and home directory are rewritten; see
:mod:`mixopt.service.redact`). The job endpoints are in :mod:`mixopt.service.routes`, the study
endpoints (a user's ask/tell studies, likewise their own) in :mod:`mixopt.service.studies`.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, which
# name dependencies local to create_app.

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from mixopt import __version__
from mixopt.errors import MixoptError
from mixopt.service.admission import Rejected
from mixopt.service.auth import TokenVerifier
from mixopt.service.limits import BodySizeLimit
from mixopt.service.routes import job_router
from mixopt.service.schemas import Health
from mixopt.service.settings import ServiceSettings
from mixopt.service.store import JobStore
from mixopt.service.studies import study_router
from mixopt.service.supervisor import Supervisor
from mixopt.service.views import JobViews

log = logging.getLogger("mixopt.service")


def create_app(
    settings: ServiceSettings, *, store: JobStore | None = None, supervise: bool = True
) -> FastAPI:
    """The service for ``settings``; ``supervise=False`` runs no job processes (tests)."""
    store = store if store is not None else JobStore(settings.url)
    supervisor = Supervisor(store, settings)
    views = JobViews(settings)
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

    docs_auth = [] if settings.public_docs else [Depends(current_user)]

    # ------------------------------------------------------------------------------ errors

    @app.exception_handler(Rejected)
    async def _rejected(_: Request, error: Rejected) -> JSONResponse:
        return JSONResponse({"detail": views.text(str(error))}, status_code=error.status)

    @app.exception_handler(MixoptError)
    async def _user_error(_: Request, error: MixoptError) -> JSONResponse:
        return JSONResponse({"detail": views.text(str(error))}, status_code=400)

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

    app.include_router(job_router(settings, store, supervisor, views, Depends(current_user)))
    app.include_router(study_router(settings, Depends(current_user)))
    return app
