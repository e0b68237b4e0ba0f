"""Commands of the mixture brain that need no proxies: ``cv``, ``study …``, ``runs import``.

mixopt cv --runs RUNS.csv --weights train_the_pile_ --target metric/... [--json]
mixopt runs import MIX.csv LOSS.csv --weights train_the_pile_ --target metric/... --study S.json
mixopt study ask S.json -n 8          # prints mixtures to train (JSON lines)
mixopt study tell S.json m0512 --value 5.08 [--params 1e8 --tokens 2e9]
mixopt study fail S.json m0513 --reason "diverged"
mixopt study enqueue S.json --weights '{"web": 0.5, "code": 0.3, "math": 0.2}'
mixopt study best S.json [--params 1e9 --tokens 2e10]   # at a target scale
mixopt study best S.json --observed                      # the best result told

Every command that changes a study holds its file's lock from load to save (``StudyFile``), so
workers on several machines can ask and tell on one shared study file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mixopt.cli.common import (
    ParamsColumnOption,
    TokensColumnOption,
    WeightsOption,
    echo_err,
    scale_columns,
    user_errors,
)
from mixopt.errors import MixoptError
from mixopt.proposers.registry import DEFAULT_STRATEGY, strategy_names

# a study runs the strategies that need neither fidelities nor constraints (mixopt.study)
STUDY_STRATEGY_HELP = (
    f"{' | '.join(strategy_names(fidelities=False, constraints=False))} "
    f"(default {DEFAULT_STRATEGY})"
)

if TYPE_CHECKING:
    from mixopt.study import Study

study_app = typer.Typer(
    help="Ask/tell mixture search for models you train yourself.", no_args_is_help=True
)

StudyArg = Annotated[Path, typer.Argument(metavar="STUDY", help="A study file (JSON).")]


# ------------------------------------------------------------------------------------------- cv


@user_errors
def cv(
    runs: Annotated[list[Path], typer.Option(help="Runs table(s); several are joined.")],
    weights: WeightsOption,
    target: Annotated[str, typer.Option(help="Target column.")],
    predictors: Annotated[
        str | None, typer.Option(help="Comma list (default: every registered predictor).")
    ] = None,
    folds: Annotated[int, typer.Option(help="Number of folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Fold shuffling seed.")] = 0,
    join_on: Annotated[str | None, typer.Option(help="Column joining several tables.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """K-fold cross-validation of predictors: Spearman, Pearson, MAE, interval coverage."""
    from rich.console import Console
    from rich.table import Table

    from mixopt.predictors import available_predictors, make_predictor
    from mixopt.predictors.cv import cross_val_predict, score
    from mixopt.runs_table import read_joined, weights_and_target

    frame = read_joined(runs, on=join_on)
    X, y, _ = weights_and_target(frame, weights, target, source=", ".join(map(str, runs)))
    assert y is not None
    if folds < 2:
        raise MixoptError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if len(y) < folds:
        raise MixoptError(
            f"--folds {folds}: the table has {len(y)} row(s); give at least as many rows as "
            "folds (and at least 2)"
        )
    names = predictors.split(",") if predictors else available_predictors()
    results = {}
    for name in names:
        model = make_predictor(name.strip())
        pred, std = cross_val_predict(model, X.to_numpy(), y.to_numpy(), k=folds, seed=seed)
        results[name.strip()] = score(y.to_numpy(), pred, std).as_dict()
        echo_err(f"cv: {name.strip()} done")
    if as_json:
        typer.echo(json.dumps({"rows": len(y), "folds": folds, "results": results}, indent=2))
        return
    table = Table(title=f"{folds}-fold CV on {len(y)} runs, target {target}")
    for column in ("predictor", "Spearman", "Pearson", "MAE", "cover 68%", "cover 95%"):
        table.add_column(column, justify="left" if column == "predictor" else "right")
    for name, r in sorted(results.items(), key=lambda kv: -(kv[1]["spearman"] or 0.0)):
        cells = [
            "-" if r[k] is None else f"{scale * r[k]:{fmt}}"  # type: ignore[operator]
            for k, scale, fmt in (
                ("spearman", 100, ".2f"),
                ("pearson", 100, ".2f"),
                ("mae", 1, ".4f"),
                ("coverage68", 1, ".2f"),
                ("coverage95", 1, ".2f"),
            )
        ]
        table.add_row(
            name,
            *cells,
        )
    Console().print(table)


# -------------------------------------------------------------------------------- runs import


@user_errors
def import_runs(
    files: Annotated[list[Path], typer.Argument(help="Runs table(s); several are joined.")],
    weights: WeightsOption,
    target: Annotated[str, typer.Option(help="Target (objective) column.")],
    study: Annotated[Path, typer.Option(help="Study file to add to (created if missing).")],
    join_on: Annotated[str | None, typer.Option(help="Column joining several tables.")] = None,
    maximize: Annotated[bool, typer.Option("--maximize", help="A new study maximises.")] = False,
    strategy: Annotated[
        str, typer.Option(help=f"A new study's strategy: {STUDY_STRATEGY_HELP}.")
    ] = DEFAULT_STRATEGY,
    params_column: ParamsColumnOption = None,
    tokens_column: TokensColumnOption = None,
) -> None:
    """Bring past runs (CSV/Parquet; e.g. RegMix's mixture + loss files) into a study; with
    --params-column and --tokens-column, each run at its own scale (one mixture, many sizes)."""
    from mixopt.runs_table import numeric_column, read_joined, weights_and_target
    from mixopt.study import Study, StudyFile

    scale_columns(params_column, tokens_column)
    frame = read_joined(files, on=join_on)
    source = ", ".join(map(str, files))
    sizes = numeric_column(frame, params_column, source=source)
    tokens = numeric_column(frame, tokens_column, source=source)
    X, y, columns = weights_and_target(frame, weights, target, source=source)
    assert y is not None
    prefix = weights if "," not in weights and weights not in columns else ""
    domains = [c[len(prefix) :] if prefix else c for c in columns]

    def create() -> Study:
        return Study(
            domains,
            objective=target,
            direction="maximize" if maximize else "minimize",
            strategy=strategy,
            natural=dict(zip(domains, X.mean(axis=0).to_numpy(), strict=True)),
            name=study.stem,
        )

    with StudyFile(study, create=create) as s:
        if s.domains != domains:
            raise MixoptError(f"{study}: its domains {s.domains} differ from the table's {domains}")
        for i, (row, value) in enumerate(zip(X.to_numpy(), y.to_numpy(), strict=True)):
            scale = (
                {} if sizes is None or tokens is None else {"params": sizes[i], "tokens": tokens[i]}
            )
            s.add(dict(zip(domains, row, strict=True)), {target: float(value)}, **scale)
    echo_err(f"imported {len(y)} runs into {study} ({len(s.suggestions)} mixtures in all)")


# ------------------------------------------------------------------------------------- study


@study_app.command("new")
@user_errors
def study_new(
    path: StudyArg,
    domains: Annotated[str, typer.Option(help="Comma list of domain names.")],
    objective: Annotated[str, typer.Option(help="Metric name of the objective.")] = "objective",
    maximize: Annotated[bool, typer.Option("--maximize")] = False,
    strategy: Annotated[str, typer.Option(help=STUDY_STRATEGY_HELP)] = DEFAULT_STRATEGY,
    initial: Annotated[int, typer.Option(help="Random mixtures before the strategy.")] = 8,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Create an empty study."""
    from mixopt.study import Study, StudyFile

    names = [d.strip() for d in domains.split(",") if d.strip()]

    def create() -> Study:
        return Study(
            names,
            objective=objective,
            direction="maximize" if maximize else "minimize",
            strategy=strategy,
            initial=initial,
            seed=seed,
            name=path.stem,
        )

    handle = StudyFile(path, create=create)
    with handle:
        if not handle.created:
            raise MixoptError(f"{path}: already exists (mixopt never overwrites a study)")
    echo_err(f"created {path} over {len(names)} domains")


@study_app.command("ask")
@user_errors
def study_ask(
    path: StudyArg, n: Annotated[int, typer.Option("-n", help="How many mixtures.")] = 1
) -> None:
    """Print N new mixtures to train, one JSON object per line."""
    from mixopt.study import StudyFile

    with StudyFile(path) as s:
        suggestions = s.ask(n)
    for suggestion in suggestions:
        typer.echo(json.dumps({"mixture_id": suggestion.mixture_id, "weights": suggestion.weights}))


@study_app.command("tell")
@user_errors
def study_tell(
    path: StudyArg,
    mixture_id: Annotated[str, typer.Argument(help="The id printed by ask.")],
    value: Annotated[float | None, typer.Option(help="The objective's value.")] = None,
    metrics: Annotated[
        str | None, typer.Option(help='Metrics as JSON, e.g. {"val_loss": 3.2}.')
    ] = None,
    params: Annotated[
        float | None, typer.Option(help="Model size N (non-embedding parameters) of the result.")
    ] = None,
    tokens: Annotated[float | None, typer.Option(help="Training tokens D of the result.")] = None,
) -> None:
    """Report a trained mixture's result (with --params and --tokens: at that scale)."""
    from mixopt.study import StudyFile

    if (value is None) == (metrics is None):
        raise MixoptError("give exactly one of --value and --metrics")
    parsed: float | dict[str, float] | None = value
    if metrics is not None:
        try:
            parsed = json.loads(metrics)
        except json.JSONDecodeError as error:
            raise MixoptError(f"--metrics is not JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise MixoptError("--metrics must be a JSON object of metric: value")
    assert parsed is not None
    with StudyFile(path) as s:
        objective = s.tell(mixture_id, parsed, params=params, tokens=tokens)
    echo_err(f"{mixture_id}: objective {objective:.6g}")


@study_app.command("fail")
@user_errors
def study_fail(
    path: StudyArg,
    mixture_id: Annotated[str, typer.Argument(help="The id printed by ask.")],
    reason: Annotated[str, typer.Option(help="Why the run failed.")] = "failed",
) -> None:
    """Mark an asked mixture's run as failed: no longer pending, never an observation."""
    from mixopt.study import StudyFile

    with StudyFile(path) as s:
        s.fail(mixture_id, reason)
    echo_err(f"{mixture_id}: failed ({reason})")


@study_app.command("enqueue")
@user_errors
def study_enqueue(
    path: StudyArg,
    weights: Annotated[str, typer.Option(help='A mixture as JSON, e.g. {"web": 0.6, ...}.')],
) -> None:
    """Have the next ask return this mixture first (e.g. the production mixture)."""
    from mixopt.study import StudyFile

    try:
        parsed = json.loads(weights)
    except json.JSONDecodeError as error:
        raise MixoptError(f"--weights is not JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise MixoptError("--weights must be a JSON object of domain: weight")
    with StudyFile(path) as s:
        s.enqueue(parsed)
        queued = len(s.queue)
    echo_err(f"enqueued ({queued} in the queue)")


@study_app.command("best")
@user_errors
def study_best(
    path: StudyArg,
    params: Annotated[
        float | None, typer.Option(help="Target model size N: recommend for that scale.")
    ] = None,
    tokens: Annotated[float | None, typer.Option(help="Target training tokens D.")] = None,
    observed: Annotated[
        bool, typer.Option("--observed", help="The best result told, not the model's optimum.")
    ] = False,
) -> None:
    """Print the recommended mixture with its predicted objective (JSON); with --params and
    --tokens, the optimum of a scale-aware law at that target; with --observed, the best
    result told (at --params/--tokens, or the largest scale told)."""
    from dataclasses import asdict

    from mixopt.study import Study
    from mixopt.study.records import scale_of

    target = scale_of(params, tokens, where="study best --params/--tokens")
    study = Study.load(path)
    answer = study.best_observed(target) if observed else study.best(target)
    typer.echo(json.dumps(asdict(answer), indent=2))
