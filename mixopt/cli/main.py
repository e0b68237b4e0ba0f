"""``mixopt`` command line: run a search, export its mixture, predict and replay on run tables.

Every command turns a :class:`~mixopt.errors.MixoptError` into one clear line on stderr and exit
status 2; nothing a failing command touched is left half-written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mixopt.atomic import write_atomic
from mixopt.cli.common import (
    ParamsColumnOption,
    TokensColumnOption,
    WeightsOption,
    cancel_on_sigterm,
    echo_err,
    preflight,
    scale_columns,
    user_errors,
)
from mixopt.errors import MixoptError

app = typer.Typer(
    name="mixopt",
    help="Find the data mixture that makes a language model best, with small proxy models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from mixopt import __version__

        typer.echo(f"mixopt {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print mixopt's version and exit."
        ),
    ] = False,
) -> None:
    """Find the data mixture that makes a language model best, with small proxy models."""


# ------------------------------------------------------------------------------------------ run


@app.command()
@user_errors
def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Search spec (YAML).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and print the resolved spec; run nothing.")
    ] = False,
    job_dir: Annotated[
        Path | None, typer.Option(help="Job directory (default: OUTPUT_DIR/NAME-TIMESTAMP).")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster instead of starting a local one.")
    ] = None,
    runner: Annotated[
        str, typer.Option(help="Where trials run: 'ray' (default) or 'local' (in this process).")
    ] = "ray",
) -> None:
    """Run a mixture search described by SPEC."""
    from mixopt.spec import load_spec

    with cancel_on_sigterm():
        spec = load_spec(spec_path)
        if ray_address:
            spec.resources.ray_address = ray_address
        preflight(spec, runner)
        if dry_run:
            typer.echo(spec.to_yaml(), nl=False)
            return
        from mixopt.cli.summary import print_summary
        from mixopt.job import JobDir
        from mixopt.search import run_job

        directory = JobDir.create(spec.output_dir, spec.name, job_dir)
        outcome = run_job(spec, directory, runner=runner)
    print_summary(outcome)


@app.command()
@user_errors
def resume(
    job_dir: Annotated[Path, typer.Argument(metavar="JOB_DIR", help="An interrupted job.")],
    runner: Annotated[str, typer.Option(help="'ray' (default) or 'local'.")] = "ray",
) -> None:
    """Continue an interrupted job: finished trials are kept, the rest run again."""
    from mixopt.cli.summary import print_summary
    from mixopt.job import JobDir
    from mixopt.search import resume_job

    with cancel_on_sigterm():
        job = JobDir(job_dir)
        job.require_job()
        preflight(job.load_spec(), runner)
        outcome = resume_job(job, runner=runner)
    print_summary(outcome)


# --------------------------------------------------------------------------------------- export


def _format_help() -> str:
    from mixopt.export.registry import FORMATS

    return " | ".join(FORMATS)


@app.command()
@user_errors
def export(
    job_dir: Annotated[Path, typer.Argument(metavar="JOB_DIR", help="A finished job directory.")],
    format: Annotated[str, typer.Option("--format", "-f", help=_format_help())] = "json",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="megatron: write the domains here as Megatron indexed datasets (.bin + .idx); "
            "streaming: as MDS datasets; the export points at them."
        ),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            help="Your tokenizer (a tokenizer.json, a folder with one, or a name already in the "
            "Hugging Face cache; never downloaded): token shares are converted into its tokens, "
            "re-measured on each domain's text."
        ),
    ] = None,
    batch_tokens: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="nanotron: your global batch in tokens (sequences x sequence length); with the "
            "spec's target.tokens a staged job's stages start at absolute steps.",
        ),
    ] = None,
) -> None:
    """Write the recommended mixture of a finished job, in the unit the format's consumer needs
    (weights sum to 1 at 6 decimals; the header says the unit and the tokenizer)."""
    from mixopt.export import export as render

    text = render(
        job_dir, format, data_dir=data_dir, tokenizer=tokenizer, batch_tokens=batch_tokens
    )
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(out, text)
        typer.echo(f"wrote {out}", err=True)


# ----------------------------------------------------------------------------------------- spec

spec_app = typer.Typer(help="The job spec's reference.", no_args_is_help=True)


@spec_app.command("schema")
@user_errors
def spec_schema() -> None:
    """Print the JSON schema of a job spec (every field, type, default and description)."""
    import json

    from mixopt.spec import JobSpec

    typer.echo(json.dumps(JobSpec.model_json_schema(), indent=2))


# -------------------------------------------------------------------------------------- predict


@app.command()
@user_errors
def predict(
    train: Annotated[Path, typer.Option(help="Runs table to fit on (CSV or Parquet).")],
    test: Annotated[Path, typer.Option(help="Runs table to predict (same weight columns).")],
    weights: WeightsOption,
    target: Annotated[str, typer.Option(help="Target column in the train table.")],
    out: Annotated[Path, typer.Option(help="Output CSV: the test rows' predictions, in order.")],
    predictor: Annotated[str, typer.Option(help="Predictor name.")] = "auto",
    params_column: ParamsColumnOption = None,
    tokens_column: TokensColumnOption = None,
) -> None:
    """Fit a predictor on one runs table and predict another. With --params-column and
    --tokens-column, a scale-aware law (``auto``: the one that extrapolates best; or joint,
    capacity, bimix, nested) predicts each test row at its own N and D."""
    import numpy as np
    import pandas as pd

    from mixopt.predictors import make_predictor
    from mixopt.runs_table import read_table, weights_and_target

    train_frame = read_table(train)
    X, y, columns = weights_and_target(train_frame, weights, target, source=str(train))
    assert y is not None
    if len(y) < 2:
        raise MixoptError(f"{train}: {len(y)} row; a predictor needs at least 2 to fit")
    test_frame = read_table(test)
    X_test, _, _ = weights_and_target(test_frame, columns, None, source=str(test))
    if scale_columns(params_column, tokens_column):
        assert params_column is not None and tokens_column is not None
        from mixopt.predictors.scaling.tables import scaled_rows, scaling_predictor

        model = scaling_predictor(predictor)
        X_fit = scaled_rows(X, train_frame, params_column, tokens_column, source=str(train))
        X_new = scaled_rows(X_test, test_frame, params_column, tokens_column, source=str(test))
    else:
        model = make_predictor(predictor)
        X_fit, X_new = X.to_numpy(), X_test.to_numpy()
    model.fit(X_fit, y.to_numpy())
    predictions = np.asarray(model.predict(X_new), dtype=float).reshape(-1)
    if not np.isfinite(predictions).all():
        raise MixoptError(
            f"{predictor}: non-finite predictions for {int((~np.isfinite(predictions)).sum())} "
            f"row(s) of {test}; nothing was written (is the target's scale extreme?)"
        )
    frame = pd.DataFrame({"prediction": predictions})
    write_atomic(out, frame.to_csv(index=False))
    typer.echo(
        f"{predictor}: fitted on {len(y)} rows, wrote {len(frame)} predictions to {out}", err=True
    )


# --------------------------------------------------------------------------------------- replay


@app.command()
@user_errors
def replay(
    runs: Annotated[Path, typer.Option(help="Pool of finished runs (CSV or Parquet).")],
    weights: WeightsOption,
    target: Annotated[str, typer.Option(help="Target column.")],
    budget: Annotated[int, typer.Option(help="Rows the search may evaluate.")],
    out: Annotated[Path, typer.Option(help="Trace CSV: step, pool_index, value.")],
    initial: Annotated[int, typer.Option(help="Random rows evaluated first.")] = 8,
    batch: Annotated[int, typer.Option(help="Rows evaluated per proposal step.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    strategy: Annotated[
        str, typer.Option(help="random | regmix | law | bo | mfbo (default bo).")
    ] = "bo",
    maximize: Annotated[bool, typer.Option("--maximize", help="Maximise the target.")] = False,
    predictor: Annotated[str, typer.Option(help="Predictor of the regmix strategy.")] = "auto",
    fidelity_column: Annotated[
        str | None, typer.Option(help="Column holding each row's fidelity (multi-fidelity pools).")
    ] = None,
    target_fidelity: Annotated[
        float | None, typer.Option(help="Fidelity the best row is judged at (default: highest).")
    ] = None,
    cost_column: Annotated[str | None, typer.Option(help="Column holding each row's cost.")] = None,
    budget_cost: Annotated[
        float | None, typer.Option(help="Total cost the search may spend.")
    ] = None,
) -> None:
    """Replay a search over a pool of finished runs; write the order rows were evaluated. With
    --fidelity-column, also report the best row found at the target fidelity and its regret
    (the gap to the pool's best there)."""
    from mixopt.replay import Pool, ReplayConfig, target_regret
    from mixopt.replay import replay as run_replay
    from mixopt.runs_table import numeric_column, read_table, weights_and_target

    config = ReplayConfig(
        budget=budget,
        initial=initial,
        batch=batch,
        seed=seed,
        strategy=strategy,
        maximize=maximize,
        predictor=predictor,
        budget_cost=budget_cost,
        target_fidelity=target_fidelity,
    )
    if budget_cost is not None and cost_column is None:
        raise MixoptError("--budget-cost needs --cost-column")
    if target_fidelity is not None and fidelity_column is None:
        raise MixoptError("--target-fidelity needs --fidelity-column")
    if strategy == "mfbo" and fidelity_column is None:
        raise MixoptError("strategy mfbo needs --fidelity-column")
    frame = read_table(runs)
    X, y, _ = weights_and_target(frame, weights, target, source=str(runs))
    assert y is not None
    if budget > len(y):
        raise MixoptError(f"--budget {budget}: the pool {runs} has only {len(y)} rows")
    pool = Pool(
        X.to_numpy(),
        y.to_numpy(),
        fidelity=numeric_column(frame, fidelity_column, source=str(runs)),
        cost=numeric_column(frame, cost_column, source=str(runs)),
    )
    trace = run_replay(pool, config=config)
    write_atomic(out, trace.to_csv(index=False))
    best = trace["value"].max() if maximize else trace["value"].min()
    typer.echo(f"{strategy}: evaluated {len(trace)} rows, best {best:.6g}; wrote {out}", err=True)
    regret = target_regret(pool, trace, config)
    if regret is not None:
        found = "no row" if regret.best is None else f"best {regret.best:.6g}"
        gap = "" if regret.regret is None else f", regret {regret.regret:.6g}"
        typer.echo(
            f"{strategy} at the target fidelity {regret.fidelity:g}: {found} (the pool's best "
            f"there: {regret.pool_best:.6g}{gap})",
            err=True,
        )


from mixopt.cli.brain import cv, study_app  # noqa: E402
from mixopt.cli.dashboard import register_dashboard_commands  # noqa: E402
from mixopt.cli.data import data_app  # noqa: E402
from mixopt.cli.runs import runs_app  # noqa: E402

app.command()(cv)
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")
app.add_typer(study_app, name="study")
app.add_typer(spec_app, name="spec")
register_dashboard_commands(app)

# Service commands (serve, submit, status, cancel, jobs, logs; --server on export and resume):
# keep this last among the registrations, it wraps commands registered above.
from mixopt.cli.service import register_service_commands  # noqa: E402

register_service_commands(app)


# the extra that installs each optional package (pyproject.toml's optional-dependencies)
EXTRA_OF = {
    "torch": "proxies",
    "botorch": "bo",
    "gpytorch": "bo",
    "ray": "ray",
    "mlflow": "mlflow",
    "fastapi": "service",
    "uvicorn": "service",
    "sqlalchemy": "service",
    "httpx": "service",
    "plotly": "dashboard",
    "matplotlib": "dashboard",
    "datasets": "frameworks",
    "transformers": "frameworks",
    "sentence_transformers": "embeddings",
}


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """The line to print when a command needs an optional package that is not installed."""
    package = (error.name or "").split(".")[0]
    extra = EXTRA_OF.get(package)
    if extra is None:
        return None
    return f"error: this needs {package}, which is not installed: pip install 'mixopt[{extra}]'"


def main() -> None:
    """The ``mixopt`` console script: the app, with a missing optional package named with the
    extra that installs it (the core install has no torch, Ray, MLflow, BoTorch, web stack)."""
    try:
        app()
    except ModuleNotFoundError as error:
        line = missing_extra(error)
        if line is None:
            raise
        echo_err(line)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
