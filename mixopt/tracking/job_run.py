"""What a job's parent run holds beyond the search settings, so jobs compare in MLflow's UI.

- system tags (:func:`system_tags`, at the start): ``mlflow.user``, ``mlflow.source.name`` /
  ``.type``, ``mlflow.source.git.commit`` (of the working directory's repository, when it is
  one) and ``mixopt.version``;
- params (:func:`recommendation_params`, at the end): ``recommended/<domain>`` (the 6-decimal
  token shares of the recommendation), ``recommended.method``;
- metrics (:func:`recommendation_metrics`): ``predicted_objective`` (± ``predicted_std``) and,
  when the job validated, ``validated_objective`` (± ``validated_objective_std``) with each
  baseline's ``validated/<label>``, and each guard rail re-checked at the validation scale:
  ``guard_rail/<metric>/value``, ``/limit``, ``/excess`` and ``/held`` (1 held, 0 broken; absent
  when not measured);
- artifacts (:func:`publish`): the data manifest and the HTML report (written when the report's
  packages are installed; without them the job still finishes and says why).

Pure functions of the recommendation and the environment, tracker-agnostic: the driver hands
their results to whatever tracker the job has.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mixopt.job import JobDir
    from mixopt.spec import JobSpec, ProxySpec
    from mixopt.tracking.base import Tracker


def job_params(spec: JobSpec, validation: ProxySpec, data_hash: str) -> dict[str, Any]:
    """The parent run's params at the start: the search's settings and the data's hash."""
    p, s = spec.proxy, spec.search
    return {
        "domains": ",".join(spec.domain_names),
        "proxy.arch": p.arch,
        "proxy.preset": p.preset,
        "proxy.train_tokens": p.train_tokens,
        "validate.preset": validation.preset,
        "validate.train_tokens": validation.train_tokens,
        "search.strategy": s.strategy,
        "search.predictor": s.predictor,
        "search.initial_trials": s.initial_trials,
        "search.rounds": s.rounds,
        "data_hash": data_hash,
    }


def predictor_fit(proposer: Any) -> tuple[dict[str, float], dict[str, Any]] | None:
    """The cross-validated scores of the predictor a proposer fitted, where it has them (``auto``
    scores every candidate while choosing; nothing is refitted for the log), and its params."""
    model = getattr(proposer, "model_", None)
    scores = getattr(model, "cv_scores_", None)
    if model is None or not scores:
        return None
    params = {"choice": getattr(model, "choice_", ""), "trials": proposer.n_observed}
    return {f"spearman/{name}": value for name, value in scores.items()}, params


def log_predictor_fit(tracker: Any, proposer: Any, predictor: str, round_index: int) -> None:
    """The fitted predictor's cross-validated scores to the tracker, where the proposer has
    them (:func:`predictor_fit`)."""
    fit = predictor_fit(proposer)
    if fit is not None:
        scores, params = fit
        tracker.log_predictor_fit(predictor, scores, params, round=round_index)


def system_tags(cwd: str | Path | None = None) -> dict[str, str]:
    """MLflow's system tags for a run started here, and mixopt's version."""
    from mixopt import __version__

    tags = {
        "mlflow.source.name": (Path(sys.argv[0]).name if sys.argv else "") or "mixopt",
        "mlflow.source.type": "LOCAL",
        "mixopt.version": __version__,
    }
    with contextlib.suppress(KeyError, OSError):  # no user name for this uid (some containers)
        tags["mlflow.user"] = getpass.getuser()
    commit = git_commit(cwd or os.getcwd())
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def git_commit(directory: str | Path) -> str | None:
    """The commit checked out in ``directory``'s git repository; None outside one (or no git)."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = proc.stdout.strip()
    return commit if proc.returncode == 0 and len(commit) == 40 else None


def recommendation_params(recommendation: Mapping[str, Any]) -> dict[str, str]:
    """The recommended mixture as params (exact 6-decimal shares, as the exports write them)."""
    from mixopt.export.units import exact_weights

    params = {
        f"recommended/{domain}": f"{weight:.6f}"
        for domain, weight in exact_weights(recommendation["weights"]).items()
    }
    if recommendation.get("method"):
        params["recommended.method"] = str(recommendation["method"])
    return params


def recommendation_metrics(recommendation: Mapping[str, Any]) -> dict[str, float]:
    """The predicted objective and, when validated, each mixture's validated objective."""
    out: dict[str, float] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)

    put("predicted_objective", recommendation.get("predicted_objective"))
    put("predicted_std", recommendation.get("predicted_std"))
    for label, summary in (recommendation.get("validation") or {}).items():
        if not isinstance(summary, Mapping):
            continue
        if label == "recommended":
            put("validated_objective", summary.get("objective"))
            put("validated_objective_std", summary.get("objective_std"))
        else:
            put(f"validated/{label}", summary.get("objective"))
    for check in recommendation.get("guard_rails") or []:
        if not isinstance(check, Mapping) or not check.get("metric"):
            continue
        key = f"guard_rail/{check['metric']}"
        for field in ("value", "limit", "excess"):
            put(f"{key}/{field}", check.get(field))
        if isinstance(check.get("held"), bool):
            put(f"{key}/held", float(check["held"]))
    return out


def publish(
    tracker: Tracker,
    job: JobDir,
    recommendation: Mapping[str, Any],
    *,
    say: Callable[[str], None] = print,
) -> None:
    """Give the parent run the recommendation (params, metrics), the manifest and the report."""
    from mixopt.job.directory import MANIFEST_FILE

    tracker.log_job_params(recommendation_params(recommendation))
    if (job / MANIFEST_FILE).is_file():
        tracker.log_artifact(job / MANIFEST_FILE)
    if tracker.parent_run_id is None:  # tracking is off (or never started): no report for it
        return
    try:
        from mixopt.report import write_report

        report = write_report(job.path, png=False)
    except ImportError as error:
        say(f"tracking: no report for the job's run ({error.name} is not installed)")
        return
    tracker.log_artifact(report.html)
