"""The client commands that mirror the service's API (``mixopt serve`` is in
:mod:`mixopt.cli.serve`; the no-server fallbacks in :mod:`mixopt.cli.local_jobs`).

    mixopt submit spec.yaml --server http://127.0.0.1:8000     # last line: the job id
    mixopt status JOB --server URL --json                      # state, trials_completed, ...
    mixopt jobs / cancel JOB / resume JOB / logs JOB / export JOB --format yaml   (--server URL)

``--server`` defaults to ``$MIXOPT_SERVER`` (except on ``export`` and ``resume``, which were
local commands first: there it must be given); the token comes from ``$MIXOPT_TOKEN``. Without
a server the commands work on local job directories: ``submit`` starts ``mixopt run`` in the
background, ``status`` and ``logs`` read the job directory, ``export`` and ``resume`` are the
local commands. :func:`register_service_commands` adds them to the ``mixopt`` app and gives the
local ``export`` (and ``resume``, where it exists) a ``--server`` option.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mixopt.atomic import write_atomic
from mixopt.cli.common import fail, user_errors
from mixopt.cli.local_jobs import local_status, submit_local
from mixopt.errors import MixoptError
from mixopt.service.schemas import FINAL_STATES

if TYPE_CHECKING:
    from mixopt.service.client import ServiceClient

SERVER_ENV = "MIXOPT_SERVER"

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar=SERVER_ENV,
        help="Service URL, e.g. http://127.0.0.1:8000 (token: $MIXOPT_TOKEN). Without it, "
        "JOB is a local job directory.",
    ),
]
# export and resume were local commands first: there only an explicit --server goes remote, so a
# $MIXOPT_SERVER set for the client commands never redirects them (nor the service's own jobs).
ExplicitServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Service URL, e.g. http://127.0.0.1:8000 (token: $MIXOPT_TOKEN): JOB_DIR is then "
        "a job id on that server.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
JobArgument = Annotated[
    str, typer.Argument(metavar="JOB", help="Job id on the server, or a local job directory.")
]


def _client(server: str) -> ServiceClient:
    from mixopt.service.client import ServiceClient

    return ServiceClient(server)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _describe(job: dict[str, Any]) -> str:
    best = job.get("best_objective")
    parts = [
        f"job {job['id']} ({job.get('name', '?')}): {job['state']}",
        f"{job.get('trials_completed', 0)}/{job.get('trials_total', '?')} trials",
    ]
    if job.get("trials_failed"):
        parts.append(f"{job['trials_failed']} failed")
    parts.append(f"best {best:.4f}" if isinstance(best, int | float) else "best -")
    if job.get("state") == "running":
        parts.append(f"ETA {_duration(job.get('eta_s'))}")
    lines = [", ".join(parts)]
    if job.get("stage"):
        lines.append(f"  stage: {job['stage']}")
    if job.get("error"):
        lines.append(f"  error: {job['error']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- submit


@user_errors
def submit(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Search spec (YAML or JSON).")],
    server: ServerOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only check the spec (on the server).")
    ] = False,
    runner: Annotated[
        str, typer.Option(help="Without --server: where trials run (ray | local).")
    ] = "ray",
) -> None:
    """Submit SPEC; the job id (or, locally, the job directory) is the last line printed."""
    if not spec_path.is_file():
        raise MixoptError(f"{spec_path}: spec file not found")
    if server is None:
        submit_local(spec_path, runner, dry_run)
        return
    try:
        text = spec_path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise MixoptError(f"{spec_path}: cannot read: {error}") from None
    with _client(server) as client:
        result = client.submit(
            text,
            base_dir=str(spec_path.resolve().parent),
            json_body=spec_path.suffix.lower() == ".json",
            dry_run=dry_run,
        )
    if dry_run:
        typer.echo(f"{spec_path}: valid ({result['trials_total']} trials)")
        return
    typer.echo(
        f"submitted {result['name']} as job {result['id']} ({result['state']}); "
        f"watch it: mixopt status {result['id']} --server {server}",
        err=True,
    )
    typer.echo(result["id"])


# ----------------------------------------------------------------------------------- status


@user_errors
def status(
    job: JobArgument,
    server: ServerOption = None,
    as_json: JsonOption = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the job is completed, failed or cancelled.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between checks with --wait.")] = 2.0,
) -> None:
    """Show a job's state, trials, best objective so far and ETA."""

    def fetch() -> dict[str, Any]:
        if server is None:
            return local_status(Path(job))
        with _client(server) as client:
            return client.job(job)

    info = fetch()
    while wait and info["state"] not in FINAL_STATES:
        time.sleep(interval)
        info = fetch()
    if as_json:
        _print_json(info)
    else:
        typer.echo(_describe(info))
    if wait and info["state"] != "completed":
        raise typer.Exit(1)


# ------------------------------------------------------------------------------ cancel, jobs


@user_errors
def cancel(job: JobArgument, server: ServerOption = None, as_json: JsonOption = False) -> None:
    """Cancel a queued or running job on the server."""
    if server is None:
        fail("cancel needs --server (or $MIXOPT_SERVER); stop a local `mixopt run` with Ctrl-C")
        return
    with _client(server) as client:
        info = client.cancel(job)
    if as_json:
        _print_json(info)
    else:
        pending = info["state"] == "running"
        typer.echo(f"job {info['id']}: {'cancelling' if pending else info['state']}")


@user_errors
def jobs(
    server: ServerOption = None,
    state: Annotated[str | None, typer.Option(help="Only these states (comma list).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (newest first).")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List your jobs on the server, newest first."""
    if server is None:
        fail("jobs needs --server (or $MIXOPT_SERVER)")
        return
    with _client(server) as client:
        result = client.jobs(state=state, limit=limit)
    if as_json:
        _print_json(result)
        return
    if not result["jobs"]:
        typer.echo("no jobs")
        return
    typer.echo(f"{'ID':<14} {'NAME':<20} {'STATE':<10} {'TRIALS':>8} {'BEST':>9}  CREATED")
    for j in result["jobs"]:
        best = j.get("best_objective")
        trials = f"{j['trials_completed']}/{j['trials_total']}"
        best_text = f"{best:.4f}" if isinstance(best, int | float) else "-"
        typer.echo(
            f"{j['id']:<14} {j['name'][:20]:<20} {j['state']:<10} {trials:>8} {best_text:>9}  "
            f"{j['created']}"
        )
    if result["total"] > len(result["jobs"]):
        typer.echo(f"({len(result['jobs'])} of {result['total']}; --limit for more)")


# ------------------------------------------------------------------------------------- logs


@user_errors
def logs(
    job: JobArgument,
    server: ServerOption = None,
    source: Annotated[
        str, typer.Option(help="process: the job process's output; job: the loop's job.log.")
    ] = "process",
    tail: Annotated[int, typer.Option(help="Last lines to show.")] = 200,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
    ] = False,
) -> None:
    """Print a job's log (locally: JOB_DIR/job.log)."""
    if server is None:
        from mixopt.job import JobDir

        path = JobDir(job).log_path
        if not path.is_file():
            raise MixoptError(f"{path}: no such log")
        lines = path.read_text(errors="replace").splitlines()[-tail:]
        typer.echo("\n".join(lines))
        return
    with _client(server) as client:
        text, offset = client.logs(job, source=source, tail=tail)
        typer.echo(text, nl=False)
        while follow:
            if client.job(job)["state"] in FINAL_STATES:
                text, offset = client.logs(job, source=source, offset=offset)
                typer.echo(text, nl=False)
                break
            time.sleep(1.0)
            text, offset = client.logs(job, source=source, offset=offset)
            typer.echo(text, nl=False)


# --------------------------------------------------------------------- export and resume


def _remote_export(server: str, args: dict[str, Any]) -> None:
    if args.get("data_dir") is not None:
        raise MixoptError(
            "--data-dir writes datasets on the machine that exports: use it without --server"
        )
    if args.get("batch_tokens") is not None:
        raise MixoptError("--batch-tokens is not sent to a server: use it without --server")
    job = str(args.get("job_dir"))
    with _client(server) as client:
        text = client.export(job, str(args.get("format", "json")))
    out = args.get("out")
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(Path(out), text)
        typer.echo(f"wrote {out}", err=True)


def _remote_resume(server: str, args: dict[str, Any]) -> None:
    job = str(next(iter(args.values())))
    with _client(server) as client:
        info = client.resume(job)
    typer.echo(f"job {info['id']}: {info['state']} (resuming)")


@user_errors
def resume_remote_only(job: JobArgument, server: ExplicitServerOption = None) -> None:
    """Resume a failed or cancelled job on the server, keeping its finished trials."""
    if server is None:
        fail("resume needs --server here: this mixopt has no local resume yet")
        return
    _remote_resume(server, {"job": job})


def with_server(
    original: Callable[..., Any], remote: Callable[[str, dict[str, Any]], None]
) -> Callable[..., Any]:
    """``original`` (a local command) with a ``--server`` option: given, ``remote(server,
    arguments)`` runs instead; without it, the local command runs unchanged."""
    signature = inspect.signature(original, eval_str=True)
    if "server" in signature.parameters:
        return original
    server = inspect.Parameter(
        "server", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ExplicitServerOption
    )
    signature = signature.replace(parameters=[*signature.parameters.values(), server])
    run_remote = user_errors(remote)

    def command(**kwargs: Any) -> Any:
        url = kwargs.pop("server", None)
        if url:
            return run_remote(url, kwargs)
        return original(**kwargs)

    command.__name__ = getattr(original, "__name__", "command")
    command.__doc__ = original.__doc__
    command.__signature__ = signature  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    return command


def register_service_commands(app: typer.Typer) -> None:
    """Add serve/submit/status/cancel/jobs/logs to ``app``; give its ``export`` and ``resume``
    a ``--server`` option (adding a server-only ``resume`` if there is no local one).
    Call it after every other command is registered."""
    from mixopt.cli.serve import serve

    for name, function in (
        ("serve", serve),
        ("submit", submit),
        ("status", status),
        ("cancel", cancel),
        ("jobs", jobs),
        ("logs", logs),
    ):
        app.command(name)(function)
    remotes = {"export": _remote_export, "resume": _remote_resume}
    for info in app.registered_commands:
        callback = info.callback
        if callback is None:
            continue
        name = info.name or callback.__name__.replace("_", "-")
        if name in remotes:
            info.callback = with_server(callback, remotes.pop(name))
    if "resume" in remotes:
        app.command("resume")(resume_remote_only)
