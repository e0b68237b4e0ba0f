"""The end-of-run summary: the recommended mixture next to the baselines, and where to look next."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mixopt.job import JobDir
from mixopt.search import JobOutcome
from mixopt.tracking.mlflow_tracker import default_tracking_uri
from mixopt.trials import TrialStatus


def print_summary(outcome: JobOutcome, console: Console | None = None) -> None:
    console = console or Console()
    rec = outcome.recommendation
    validation = rec.get("validation", {})
    columns = ["recommended", *[k for k in validation if k != "recommended"]]
    table = Table(title=f"Recommended mixture — job {rec['job']}")
    table.add_column("domain")
    for name in columns:
        table.add_column(name, justify="right")
    weights_of = {name: validation.get(name, {}).get("weights", {}) for name in columns}
    weights_of["recommended"] = rec["weights"]
    for domain in rec["weights"]:
        table.add_row(domain, *[f"{weights_of[n].get(domain, 0.0):.3f}" for n in columns])
    row = ["objective (validated)"]
    for name in columns:
        entry = validation.get(name, {})
        value, std = entry.get("objective"), entry.get("objective_std")
        text = "-" if value is None else f"{value:.4f}"
        row.append(text if std is None else f"{text} ± {std:.4f}")
    table.add_row(*row, style="bold")
    at_target = rec.get("target_scale") or {}
    if at_target.get("available"):
        predicted = at_target.get("mixtures", {})
        row = [f"predicted at N={at_target['params']:.3g}, D={at_target['tokens']:.3g}"]
        for name in columns:
            entry = predicted.get(name)
            row.append(
                "-" if not entry else f"{entry['objective']:.4f} ± {entry['objective_std']:.4f}"
            )
        table.add_row(*row)
    seeds = validation.get("recommended", {}).get("seeds")
    if seeds:
        table.caption = f"validated over {seeds} seed(s); ± is the seed standard deviation"
    console.print(table)
    std = rec.get("predicted_std")
    spread = f" ± {std:.4f}" if std is not None else ""
    console.print(
        f"predicted objective: {rec['predicted_objective']:.4f}{spread} ({rec['method']})"
    )
    calibration = at_target.get("calibration") or {}
    if "mape" in calibration:
        spearman = calibration.get("spearman_law")
        ranks = "" if spearman is None else f", rank correlation {spearman:.2f}"
        console.print(
            f"the {at_target.get('law')} law at the validation proxy: predicted vs measured "
            f"{100 * calibration['mape']:.1f}% apart{ranks}"
        )
    console.print(f"verdict: {rec['verdict']}")
    done = sum(t.status is TrialStatus.COMPLETED for t in outcome.trials)
    console.print(
        f"{done}/{len(outcome.trials)} trials completed in {outcome.wall_s:,.0f} s; "
        f"job directory: {outcome.job_dir}"
    )
    console.print(f"export: mixopt export {outcome.job_dir} --format yaml")
    database = JobDir(outcome.job_dir).mlflow_db
    uri = default_tracking_uri(database)
    if database.exists():
        mlflow = Path(sys.executable).parent / "mlflow"
        command = str(mlflow) if mlflow.exists() else "mlflow"
        console.print(f"MLflow runs: {uri}")
        console.print(f"open the MLflow UI: {command} ui --backend-store-uri {uri}")
