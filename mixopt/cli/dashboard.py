"""``mixopt dashboard`` (the web app over job directories or a service) and ``mixopt report``
(one self-contained HTML file per job). Both import their web and plotting stacks lazily."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mixopt.cli.common import user_errors
from mixopt.errors import MixoptError

if TYPE_CHECKING:
    from mixopt.reporting.views import ViewOptions

MLFLOW_URL_ENV = "MIXOPT_MLFLOW_URL"
DASHBOARD_TOKEN_ENV = "MIXOPT_DASHBOARD_TOKEN"
DEFAULT_PORT = 8765

PredictorOption = Annotated[
    str,
    typer.Option(
        help="Predictor for the predictor-quality and domain-effects views (gp has intervals)."
    ),
]
MlflowOption = Annotated[
    str | None,
    typer.Option(
        "--mlflow-url",
        help=f"Base URL of the MLflow UI the trial links open (default ${MLFLOW_URL_ENV}, "
        "else http://127.0.0.1:5000).",
    ),
]


def _options(predictor: str, mlflow_url: str | None, folds: int = 5) -> ViewOptions:
    from mixopt.predictors import available_predictors
    from mixopt.reporting.views import DEFAULT_MLFLOW_URL, ViewOptions

    if predictor not in available_predictors():
        raise MixoptError(
            f"unknown predictor {predictor!r}; available: {', '.join(available_predictors())}"
        )
    url = mlflow_url or os.environ.get(MLFLOW_URL_ENV) or DEFAULT_MLFLOW_URL
    if not url.startswith(("http://", "https://")):
        raise MixoptError(f"--mlflow-url must be an http(s) URL, got {url!r}")
    return ViewOptions(predictor=predictor, mlflow_url=url, cv_folds=folds)


@user_errors
def dashboard(
    job_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--job-dir",
            help="A job directory, or a folder of them such as runs/ (repeatable; default: "
            "./runs when no --server is given).",
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(help="A mixopt service URL; its jobs are listed too (token: $MIXOPT_TOKEN)."),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="Token for --server (default: $MIXOPT_TOKEN).")
    ] = None,
    service_dir: Annotated[
        Path | None,
        typer.Option(
            help="The service's state directory, where it is readable here: --server jobs "
            "then get every view (their runs tables are read from it)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            help="Another host name the dashboard may be reached by (repeatable; the loopback "
            "names and --host are allowed): requests naming any other are refused."
        ),
    ] = None,
    dashboard_token: Annotated[
        str | None,
        typer.Option(
            "--dashboard-token",
            envvar=DASHBOARD_TOKEN_ENV,
            help="Require this token of the dashboard's visitors (one is generated when "
            "--server is given or --host is not loopback).",
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    poll: Annotated[
        float, typer.Option(help="Seconds between the page's refreshes of a running job.")
    ] = 3.0,
    predictor: PredictorOption = "gp",
    mlflow_url: MlflowOption = None,
) -> None:
    """Serve the dashboard: jobs, traces, mixtures, predictor quality, domain effects,
    validation, MoE expert load and MLflow links, updating while jobs run."""
    from mixopt.reporting.jobdata import find_job_dirs

    options = _options(predictor, mlflow_url)
    if poll <= 0:
        raise MixoptError("--poll must be > 0 seconds")
    if not 0 <= port <= 65535:
        raise MixoptError(f"--port must be in 0..65535, got {port}")
    paths = list(job_dir or [])
    if not paths and server is None:
        if not Path("runs").is_dir():
            raise MixoptError(
                "give --job-dir DIR (a job directory or a folder of them) or --server URL"
            )
        paths = [Path("runs")]
    for path in paths:
        if not path.exists():
            raise MixoptError(f"{path}: no such job directory")
        if not path.is_dir():
            raise MixoptError(f"{path}: not a directory")
    if paths and server is None:
        for path in paths:
            try:
                find_job_dirs(path)
            except MixoptError as error:
                # a folder that will hold jobs (e.g. an empty runs/) is fine; a job-less file tree
                # with a typo is what this catches
                if any(path.iterdir()):
                    raise error from None

    from dashboards.guard import LOOPBACK_HOSTS, allowed_hosts
    from dashboards.server import create_app
    from dashboards.sources import DirectorySource, JobRegistry, ServiceSource

    service = None
    if server is not None:
        service = ServiceSource(server, token=token, state_dir=service_dir)
        service.check()
    registry = JobRegistry(
        DirectorySource([p.resolve() for p in paths]) if paths else None, service, options
    )
    if dashboard_token is not None and len(dashboard_token) < 16:
        raise MixoptError("--dashboard-token must be at least 16 characters")
    # the holder of a service token must not re-serve its jobs to whoever can reach this port
    if dashboard_token is None and (server is not None or host not in LOOPBACK_HOSTS):
        import secrets

        dashboard_token = secrets.token_urlsafe(24)
    hosts = allowed_hosts(host, list(allow_host or []))
    app = create_app(registry, poll_s=poll, hosts=hosts, token=dashboard_token)
    import uvicorn

    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    link = f"http://{shown}:{port}/" + (f"?token={dashboard_token}" if dashboard_token else "")
    typer.echo(f"mixopt dashboard: {link}  (Ctrl-C stops it)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@user_errors
def report(
    job_dir: Annotated[Path, typer.Argument(metavar="JOB_DIR", help="A job directory.")],
    out: Annotated[
        Path | None, typer.Option(help="The HTML file to write (default JOB_DIR/report.html).")
    ] = None,
    png: Annotated[
        bool, typer.Option("--png/--no-png", help="Also write the figures as PNG files.")
    ] = True,
    predictor: PredictorOption = "gp",
    mlflow_url: MlflowOption = None,
) -> None:
    """Write a self-contained HTML report of a job (and PNGs of its figures)."""
    from mixopt.report import write_report

    result = write_report(job_dir, out, png=png, options=_options(predictor, mlflow_url))
    typer.echo(f"wrote {result.html}", err=True)
    if result.pngs:
        typer.echo(f"wrote {len(result.pngs)} figures in {result.pngs[0].parent}", err=True)


def register_dashboard_commands(app: typer.Typer) -> None:
    app.command()(dashboard)
    app.command()(report)
