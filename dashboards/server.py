"""The dashboard's HTTP server: the page, its scripts, and the JSON API it polls.

    GET /                       the single-page app (static/index.html)
    GET /static/..., /assets/...  its script and style; /vendor/plotly.min.js (from plotly)
    GET /api/config             poll interval, MLflow UI base URL, predictor, sources
    GET /api/jobs               every job: status, stage, progress, best objective
    GET /api/jobs/{id}          the job's view model (mixopt.reporting.views.build_views)

    GET /health                 liveness (no token)

Errors are JSON ``{"detail": "..."}``: 404 for an unknown job, 422 for a job whose files
cannot be read (or that links out of its directory), 502 when the mixopt service fails. The
service token stays on this server; the page never sees it. Requests go through
:class:`dashboards.guard.Guard`: a Host/Origin allow-list against DNS rebinding, and the
dashboard's own token when it has one.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from dashboards.guard import Guard, allowed_hosts
from dashboards.sources import JobRegistry, UnknownJob
from mixopt import __version__
from mixopt.errors import MixoptError
from mixopt.reporting.assets import ASSETS_DIR, plotly_js

log = logging.getLogger("mixopt.dashboard")
STATIC_DIR = Path(__file__).with_name("static")


def create_app(
    registry: JobRegistry,
    *,
    poll_s: float = 3.0,
    hosts: frozenset[str] | None = None,
    token: str | None = None,
) -> FastAPI:
    """The dashboard over ``registry``; ``hosts``: the names it may be reached by (default:
    the loopback names); ``token``: required on every route but /health when given."""
    app = FastAPI(
        title="mixopt dashboard",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.registry = registry
    app.add_middleware(Guard, hosts=hosts or allowed_hosts("127.0.0.1"), token=token)
    plotly_path = plotly_js()  # fail at start, not in the browser, when plotly is missing

    @app.exception_handler(UnknownJob)
    async def _unknown(_: Request, error: UnknownJob) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(MixoptError)
    async def _job_error(request: Request, error: MixoptError) -> JSONResponse:
        from mixopt.service.client import ServiceError

        status = 502 if isinstance(error, ServiceError) else 422
        log.warning("%s %s: %s", status, request.url.path, error)
        return JSONResponse({"detail": str(error)}, status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=error)
        return JSONResponse({"detail": "internal error; see the dashboard's log"}, 500)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        return FileResponse(plotly_path, media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/assets", StaticFiles(directory=ASSETS_DIR), name="assets")

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        options = registry.options
        sources = []
        if registry.directories is not None:
            sources += [f"directory {p}" for p in registry.directories.paths]
        if registry.service is not None:
            sources.append(f"service {registry.service.url}")
        return {
            "version": __version__,
            "poll_s": poll_s,
            "mlflow_url": options.mlflow_url,
            "predictor": options.predictor,
            "sources": sources,
        }

    @app.get("/api/jobs")
    async def jobs() -> dict[str, Any]:
        found, errors = await run_in_threadpool(registry.list_jobs)
        return {"jobs": found, "errors": errors}

    @app.get("/api/jobs/{job_id}")
    async def job(job_id: str) -> JSONResponse:
        model = await run_in_threadpool(registry.model, job_id)
        return JSONResponse(model, headers={"Cache-Control": "no-store"})

    return app
