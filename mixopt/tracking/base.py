"""The tracker contract. Code never branches on "is tracking on": it calls a NullTracker.

A tracker receives, from the driver only: the job (``start_job``, once; again on resume), each
finished trial (``log_trial``), predictor fits (``log_predictor_fit``), job-level metrics and
artifacts, and the end (``finish``). Two promises make resuming safe:

- ``start_job`` re-attaches to the job's existing parent run (named by ``run_id``, or found by
  the job-directory tag) instead of opening a second one;
- ``log_trial`` is idempotent per trial id: calling it again for a trial never creates a
  second child run (and ``log_predictor_fit`` likewise per ``(name, round)``).

Implementations: this null tracker, :class:`mixopt.tracking.mlflow_tracker.MlflowTracker` and
the :class:`mixopt.tracking.retry.RetryingTracker` wrapper, which retries, defers and reports
failures so that tracking never stops a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixopt.trials import Trial, TrialRequest


class Tracker:
    """Base class and null implementation: every call does nothing."""

    def start_job(
        self,
        name: str,
        params: dict[str, Any],
        tags: dict[str, str],
        *,
        run_id: str | None = None,
    ) -> None:
        """Open the job's parent run, or re-attach to ``run_id`` / the run tagged with the same
        ``mixopt.job_dir``."""

    def log_trial(
        self,
        trial: Trial,
        *,
        row: Mapping[str, Any] | None = None,
        request: TrialRequest | None = None,
    ) -> None:
        """Log a finished (completed or abandoned) trial as a child run, once per trial id.

        ``row`` is the trial's runs-table row (``mixopt.runs_table.trial_row``: fidelity, data
        hashes, epochs); ``request`` the :class:`TrialRequest` it ran (proxy and training
        settings). Both are optional and only add params and metrics.
        """

    def log_predictor_fit(
        self,
        name: str,
        cv_scores: Mapping[str, Any],
        params: Mapping[str, Any],
        *,
        round: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Log a predictor fit (its cross-validation scores and hyperparameters) as a child run
        of kind "predictor"; with ``round`` given, once per ``(name, round)``."""

    def log_job_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None: ...

    def log_job_params(self, params: Mapping[str, Any]) -> None:
        """Add params to the job's run (known only at the end, e.g. the recommended mixture);
        a param already on the run is left as it is."""

    def log_artifact(self, path: Path, *, artifact_path: str | None = None) -> None: ...

    def log_dict(self, data: Any, artifact_file: str) -> None:
        """Save ``data`` as a JSON/YAML artifact (by ``artifact_file``'s extension)."""

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Save a matplotlib or plotly figure as an artifact of the job's run."""

    def finish(self, status: str) -> None: ...

    @property
    def parent_run_id(self) -> str | None:
        return None

    def health(self) -> dict[str, Any]:
        """Counts of tracking problems so far (empty when there is nothing to report)."""
        return {}

    def describe(self) -> str:
        return "no tracking"


NullTracker = Tracker
