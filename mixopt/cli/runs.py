"""``mixopt runs show JOB_DIR``: a job's trials, and which are stale with respect to the data now;
``mixopt runs import``: past runs into a study (the command lives in :mod:`mixopt.cli.brain`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mixopt.cli.common import user_errors
from mixopt.errors import MixoptError

runs_app = typer.Typer(
    help="Trials of a job (stale or not), and importing past runs into a study.",
    no_args_is_help=True,
)


@runs_app.command("show")
@user_errors
def runs_command(
    job_dir: Annotated[Path, typer.Argument(metavar="JOB_DIR", help="A job directory.")],
    spec_path: Annotated[
        Path | None,
        typer.Option("--spec", help="Compare with this spec's data (default: the job's spec)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per trial.")] = False,
) -> None:
    """Show JOB_DIR's trials and mark those trained on data that has changed since."""
    import math

    from rich.console import Console
    from rich.table import Table

    from mixopt.data.versions import current_state, stale_reasons
    from mixopt.job import JobDir
    from mixopt.spec import load_spec

    job = JobDir(job_dir)
    if not job.path.is_dir():
        raise MixoptError(f"{job_dir}: not a job directory")
    spec = load_spec(spec_path) if spec_path is not None else job.load_spec()
    frame = job.read_runs()
    if frame is None or frame.empty:
        raise MixoptError(f"{job_dir}: no finished trials yet (no runs table)")
    state = current_state(spec)
    rows: list[dict[str, Any]] = frame.to_dict(orient="records")  # type: ignore[assignment]
    stale = {str(row["trial_id"]): stale_reasons(row, state) for row in rows}
    if as_json:
        for row in rows:
            out = {k: row.get(k) for k in ("trial_id", "stage", "round", "status", "objective")}
            out = {
                k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()
            }
            out["stale"] = stale[str(row["trial_id"])]
            typer.echo(json.dumps(out, default=str))
        return
    table = Table(title=f"trials of {job_dir}")
    for column in ("trial", "stage", "round", "status", "objective", "data"):
        table.add_column(column, justify="right" if column in ("round", "objective") else "left")
    for row in rows:
        objective = row.get("objective")
        value = "-" if objective is None or objective != objective else f"{objective:.4f}"
        reasons = stale[str(row["trial_id"])]
        data = "[green]current[/]" if not reasons else "[red]stale:[/] " + "; ".join(reasons)
        table.add_row(
            str(row["trial_id"]),
            str(row.get("stage", "")),
            str(row.get("round", "")),
            str(row.get("status", "")),
            value,
            data,
        )
    console = Console()
    console.print(table)
    n_stale = sum(bool(r) for r in stale.values())
    console.print(f"{n_stale} of {len(rows)} trial(s) stale")
    for name, note in state.notes.items():
        console.print(f"note: {name}: {note}")


from mixopt.cli.brain import import_runs  # noqa: E402

runs_app.command("import")(import_runs)
