"""``mixopt serve``: the service's settings from the command line, then the server.

    MIXOPT_TOKEN=... mixopt serve --port 8000 --data-root /data --mlflow-uri http://mlflow:5000

A shared deployment names its data roots, a tokens file (one token per user), its MLflow server
(the only one jobs may track to; without one each job tracks to SQLite in its own directory) and
its users' quotas (jobs at once, planned trials and proxy tokens per user; studies per user and
mixtures per study).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mixopt.cli.common import user_errors
from mixopt.service.quotas import Quotas


@user_errors
def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[
        str, typer.Option(help="Address to bind (loopback by default; others are exposed).")
    ] = "127.0.0.1",
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Jobs, cache and SQLite live here (default ~/.mixopt/service)."),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            envvar="MIXOPT_DATABASE_URL",
            help="SQLAlchemy URL of the jobs database (default: SQLite in the state dir), "
            "e.g. postgresql+psycopg://user@host/mixopt.",
        ),
    ] = None,
    data_root: Annotated[
        list[Path] | None,
        typer.Option(
            help="A folder specs may read data from (repeatable; default: the current folder)."
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(help="Tokens: one token, or a YAML mapping user: token (plus $MIXOPT_TOKEN)."),
    ] = None,
    runner: Annotated[str, typer.Option(help="Where jobs run their trials: ray | local.")] = "ray",
    max_jobs: Annotated[int, typer.Option(help="Jobs running at once; more are queued.")] = 1,
    max_request_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 1 << 20,
    auto_resume: Annotated[
        bool,
        typer.Option(help="Resume jobs whose process was lost (e.g. killed with the server)."),
    ] = True,
    allow_code_hooks: Annotated[
        bool, typer.Option(help="Let specs name metric hooks as module:function (imports code).")
    ] = False,
    public_docs: Annotated[
        bool, typer.Option(help="Serve /docs and /openapi.json without a token.")
    ] = False,
    mlflow_uri: Annotated[
        str | None,
        typer.Option(
            help="The MLflow server (http/https) jobs track to; specs may name no other. "
            "Default: each job's own SQLite store."
        ),
    ] = None,
    max_jobs_per_user: Annotated[
        int, typer.Option(help="Quota: a user's queued and running jobs at once.")
    ] = Quotas.max_active_jobs,
    max_trials_per_user: Annotated[
        int, typer.Option(help="Quota: trials a user's active jobs may plan in all.")
    ] = Quotas.max_trials,
    max_tokens_per_user: Annotated[
        float, typer.Option(help="Quota: proxy training tokens a user's active jobs may plan.")
    ] = Quotas.max_tokens,
    max_studies_per_user: Annotated[
        int, typer.Option(help="Quota: studies (/studies) a user keeps.")
    ] = Quotas.max_studies,
    max_study_mixtures: Annotated[
        int, typer.Option(help="Limit: mixtures one study holds.")
    ] = Quotas.max_study_mixtures,
    poll_interval: Annotated[float, typer.Option(help="Seconds between job checks.")] = 1.0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the mixopt service (REST API; docs at /docs). Jobs keep running if it stops; a
    restarted server adopts them, and resumes those whose process is gone."""
    import logging

    import uvicorn

    from mixopt.service.app import create_app
    from mixopt.service.settings import ServiceSettings, default_state_dir, load_tokens

    settings = ServiceSettings(
        tokens=load_tokens(token_file),
        state_dir=state_dir or default_state_dir(),
        data_roots=list(data_root or [Path.cwd()]),
        database_url=database,
        host=host,
        port=port,
        max_request_bytes=max_request_bytes,
        max_concurrent_jobs=max_jobs,
        runner=runner,
        auto_resume=auto_resume,
        allow_code_hooks=allow_code_hooks,
        public_docs=public_docs,
        poll_interval_s=poll_interval,
        mlflow_uri=mlflow_uri,
        quotas=Quotas(
            max_jobs_per_user,
            max_trials_per_user,
            max_tokens_per_user,
            max_studies=max_studies_per_user,
            max_study_mixtures=max_study_mixtures,
        ),
    )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    echo = lambda text: typer.echo(text, err=True)  # noqa: E731
    echo(f"mixopt service: state in {settings.state_dir}")
    echo(f"  database: {_redact(settings.url)}")
    echo(f"  data roots: {', '.join(str(r) for r in settings.data_roots)}")
    echo(f"  users: {', '.join(sorted(settings.tokens))}; runner: {settings.runner}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        echo(f"  warning: listening on {host}: put TLS in front of it, tokens travel in clear")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


def _redact(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url
