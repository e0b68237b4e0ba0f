"""MLflow tracker: one parent run per job, one child run per trial, one per predictor fit.

Uses ``MlflowClient`` directly (no global active run), so several jobs in one process cannot mix
their runs. By default the store is SQLite inside the job directory with artifacts next to it; a
remote ``mlflow server`` works by its ``http(s)://`` URI.

What a child run of a trial holds (so MLflow's compare view works out of the box):

- run name = the trial id; tags ``mixopt.kind=trial``, ``mixopt.job``, ``mixopt.trial_id``,
  ``mixopt.stage``, ``mixopt.round``, ``mixopt.status``, ``mixopt.label``, ``mixopt.fidelity``;
- params: ``weight/<domain>``, ``seed``, ``round``, ``stage``, the proxy (``proxy.*``: preset,
  arch, sequence length, vocabulary, overrides; parameter counts, device) and training settings
  (``train.*``) of its request, and the data versions (``data_hash``, ``data_hash/<domain>``,
  ``tokenizer_hash``) of its runs-table row;
- metrics: every result metric (``val_loss/<domain>``, ``bpb/<domain>``, ``moe/*``, hooks) and
  ``objective`` at step = tokens trained, the periodic evaluations at their own token counts
  (so ``val_loss/<domain>`` is a curve over tokens), the training curve as ``train_loss``
  (step = tokens seen), throughput and cost (``tokens_per_s``, ``tokens``, ``flops``,
  ``wall_s``, ...), ``epochs/<domain>``, and for an MoE the share of tokens each expert got,
  ``moe/expert_share/layer<i>/expert<j>``, with ``moe/expert_imbalance/layer<i>`` (max / mean).

Idempotence (for resume, and for retries of a call whose response was lost): the parent is
found again by its ``mixopt.job_key`` tag (a hash of the job directory) or by ``run_id``, and
``log_trial`` looks a trial's child up by its ``mixopt.trial_id`` tag before creating one; a run
that is complete carries ``mixopt.logged=<status>`` and is left alone. Metric timestamps are the
trial's finish time, so re-logging a half-logged run adds no duplicate points.

For remote servers the MLflow HTTP client's own retries are lowered (``MLFLOW_HTTP_REQUEST_*``
environment variables, only where the user has not set them), because
:class:`mixopt.tracking.retry.RetryingTracker` does the retrying and must not be held up for
minutes by a dead server; and MLflow's "View run at" line after every finished run is turned
off (``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT``), as it would interleave with the progress view.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mixopt.errors import MixoptError
from mixopt.tracking.base import Tracker
from mixopt.tracking.mlflow_content import (
    TRIAL_ID,
    flatten_scores,
    ms,
    now_ms,
    safe_key,
    trial_metrics,
    trial_params,
    trial_tags,
)
from mixopt.trials import Trial, TrialRequest

_MAX_PARAM = 500  # MLflow's param value limit is 6000 chars; keep params short and readable
_MAX_TAG = 5000
_METRIC_BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch
_PARAM_BATCH = 90  # ... and at most 100 params or tags

KIND, JOB_KEY, FIT_ID, LOGGED = "mixopt.kind", "mixopt.job_key", "mixopt.fit_id", "mixopt.logged"
PARENT = "mlflow.parentRunId"
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # RetryingTracker retries (and logs less noise)
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # no "View run" line per set_terminated
}


def default_tracking_uri(database: Path) -> str:
    """The URI of a job's own SQLite store at ``database``."""
    return f"sqlite:///{Path(database).resolve()}"


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "databricks"))


def jobkey(job_dir: str) -> str:
    """The lookup key of a job's parent run: a hash of its directory (safe in filter strings)."""
    return hashlib.sha256(job_dir.encode()).hexdigest()[:24]


class TrackerNotStarted(MixoptError):
    """A tracker call came before ``start_job`` (or after it failed)."""


class MlflowTracker(Tracker):
    def __init__(
        self, tracking_uri: str, experiment: str, artifact_dir: Path | None = None
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_dir = artifact_dir
        self._client: Any = None
        self._experiment_id: str | None = None
        self._parent_id: str | None = None
        self._job_tags: dict[str, str] = {}
        self._logged: dict[str, str] = {}  # trial id / fit id -> status logged (complete runs)
        if is_remote(tracking_uri):
            for name, value in _HTTP_DEFAULTS.items():
                os.environ.setdefault(name, value)

    def describe(self) -> str:
        return f"MLflow at {self.tracking_uri} (experiment {self.experiment!r})"

    @property
    def parent_run_id(self) -> str | None:
        return self._parent_id

    # ----------------------------------------------------------------------------------- job

    def start_job(
        self,
        name: str,
        params: dict[str, Any],
        tags: dict[str, str],
        *,
        run_id: str | None = None,
    ) -> None:
        client = self._connect()
        tags = {**tags, KIND: "job"}
        if "mixopt.job_dir" in tags:
            tags.setdefault(JOB_KEY, jobkey(tags["mixopt.job_dir"]))
        existing = None
        if run_id is not None:
            existing = client.get_run(run_id)
        elif JOB_KEY in tags:
            existing = self._find_one({JOB_KEY: tags[JOB_KEY], KIND: "job"})
        if existing is None:
            run = client.create_run(self._experiment_id, run_name=name, tags=tags)
            self._parent_id = run.info.run_id
            self._log_params(self._parent_id, params)
        else:
            self._parent_id = existing.info.run_id
            self._experiment_id = existing.info.experiment_id
            client.update_run(self._parent_id, status="RUNNING")
            self._log_tags(self._parent_id, tags)
            self._log_params(self._parent_id, params, existing=existing.data.params)
            self._load_children()
        self._job_tags = {k: tags[k] for k in ("mixopt.job", JOB_KEY) if k in tags}

    def log_job_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None:
        from mlflow.entities import Metric

        parent = self._require_parent()
        now = now_ms()
        batch = [
            Metric(safe_key(k), float(v), now, step)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        self._log_metrics(parent, batch)

    def log_job_params(self, params: Mapping[str, Any]) -> None:
        """The parent run's end-of-job params (see :mod:`mixopt.tracking.job_run`)."""
        parent = self._require_parent()
        self._log_params(parent, params, existing=self._client.get_run(parent).data.params)

    def log_artifact(self, path: Path, *, artifact_path: str | None = None) -> None:
        self._client.log_artifact(self._require_parent(), str(path), artifact_path)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self._client.log_dict(self._require_parent(), data, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self._client.log_figure(self._require_parent(), figure, artifact_file)

    def finish(self, status: str) -> None:
        if self._client is not None and self._parent_id is not None:
            self._client.set_terminated(self._parent_id, status=status)

    # -------------------------------------------------------------------------------- trials

    def log_trial(
        self,
        trial: Trial,
        *,
        row: Mapping[str, Any] | None = None,
        request: TrialRequest | None = None,
    ) -> None:
        parent = self._require_parent()
        status = trial.status.value
        if self._logged.get(trial.trial_id) == status:
            return
        tags = trial_tags(trial, row)
        tags.update({PARENT: parent, KIND: "trial", **self._job_tags})
        started = ms(trial.result.get("started_at"))
        run, existing = self._child(trial.trial_id, {TRIAL_ID: trial.trial_id}, tags, started)
        if existing is not None and existing.data.tags.get(LOGGED) == status:
            self._logged[trial.trial_id] = status
            return
        known = existing.data.params if existing is not None else {}
        self._log_params(run, trial_params(trial, row, request), existing=known)
        timestamp = ms(trial.result.get("finished_at")) or now_ms()
        self._log_metrics(run, trial_metrics(trial, row, timestamp))
        if trial.error:
            self._client.set_tag(run, "mixopt.error", trial.error[:_MAX_TAG])
        self._client.set_tag(run, LOGGED, status)
        run_status = "FINISHED" if status == "completed" else "FAILED"
        self._client.set_terminated(run, status=run_status, end_time=timestamp)
        self._logged[trial.trial_id] = status

    def log_predictor_fit(
        self,
        name: str,
        cv_scores: Mapping[str, Any],
        params: Mapping[str, Any],
        *,
        round: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        from mlflow.entities import Metric

        parent = self._require_parent()
        fit_id = f"{name}@{round}" if round is not None else None
        if fit_id is not None and self._logged.get(fit_id) == "completed":
            return
        run_tags = {
            PARENT: parent,
            KIND: "predictor",
            "mixopt.predictor": name,
            **self._job_tags,
            **dict(tags or {}),
        }
        if round is not None:
            run_tags["mixopt.round"] = str(round)
        run_name = f"predictor {name}" + (f" round {round}" if round is not None else "")
        if fit_id is not None:
            run_tags[FIT_ID] = fit_id
            run, existing = self._child(fit_id, {FIT_ID: fit_id}, run_tags, None, run_name)
            if existing is not None and existing.data.tags.get(LOGGED) == "completed":
                self._logged[fit_id] = "completed"
                return
            known = existing.data.params if existing is not None else {}
        else:
            created = self._client.create_run(self._experiment_id, run_name=run_name, tags=run_tags)
            run, known = created.info.run_id, {}
        self._log_params(run, {"predictor": name, **dict(params)}, existing=known)
        now = now_ms()
        metrics = [
            Metric(safe_key(f"cv/{key}"), value, now, step)
            for key, value, step in flatten_scores(cv_scores)
        ]
        self._log_metrics(run, metrics)
        self._client.set_tag(run, LOGGED, "completed")
        self._client.set_terminated(run, status="FINISHED")
        if fit_id is not None:
            self._logged[fit_id] = "completed"

    # ------------------------------------------------------------------------------- helpers

    def _connect(self) -> Any:
        if self._client is not None and self._experiment_id is not None:
            return self._client
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri)
        found = client.get_experiment_by_name(self.experiment)
        if found is None:
            location = self.artifact_dir.resolve().as_uri() if self.artifact_dir else None
            try:
                self._experiment_id = client.create_experiment(
                    self.experiment, artifact_location=location
                )
            except Exception:  # another job created it meanwhile
                found = client.get_experiment_by_name(self.experiment)
                if found is None:
                    raise
        if found is not None:
            self._experiment_id = found.experiment_id
        self._client = client
        return client

    def _require_parent(self) -> str:
        if self._client is None or self._parent_id is None:
            raise TrackerNotStarted("the MLflow tracker has no job run: start_job did not succeed")
        return self._parent_id

    def _child(
        self,
        key: str,
        lookup: dict[str, str],
        tags: dict[str, str],
        started: int | None,
        run_name: str | None = None,
    ) -> tuple[str, Any]:
        """The child run for ``key``: (run id, the existing run or None when just created)."""
        parent = self._require_parent()
        existing = self._find_one({**lookup, PARENT: parent})
        if existing is not None:
            run_id = existing.info.run_id
            self._log_tags(run_id, tags)
            if existing.info.status != "RUNNING" and existing.data.tags.get(LOGGED) is None:
                self._client.update_run(run_id, status="RUNNING")
        else:
            run = self._client.create_run(
                self._experiment_id,
                start_time=started,
                tags=tags,
                run_name=run_name or key,
            )
            run_id, existing = run.info.run_id, None
        return run_id, existing

    def _find_one(self, tags: Mapping[str, str]) -> Any:
        """The oldest active run of the experiment with all these tags, or None."""
        found = self._client.search_runs(
            [self._experiment_id],
            filter_string=_tag_filter(tags),
            max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        return found[0] if found else None

    def _load_children(self) -> None:
        """Remember which children of the parent are complete (saves a lookup per trial)."""
        for run in self._search({PARENT: self._require_parent()}):
            tags = run.data.tags
            key = tags.get(TRIAL_ID) or tags.get(FIT_ID)
            if key is not None and LOGGED in tags:
                self._logged[key] = tags[LOGGED]

    def _search(self, tags: Mapping[str, str]) -> Iterator[Any]:
        token = None
        while True:
            page = self._client.search_runs(
                [self._experiment_id],
                filter_string=_tag_filter(tags),
                max_results=1000,
                page_token=token,
            )
            yield from page
            token = page.token
            if not token:
                return

    def _log_params(
        self, run_id: str, params: Mapping[str, Any], existing: Mapping[str, str] | None = None
    ) -> None:
        """Log params not already on the run (MLflow params cannot change once set)."""
        from mlflow.entities import Param

        known = existing or {}
        items = [
            Param(safe_key(k), str(v)[:_MAX_PARAM])
            for k, v in params.items()
            if v is not None and safe_key(k) not in known
        ]
        for start in range(0, len(items), _PARAM_BATCH):
            self._client.log_batch(run_id, params=items[start : start + _PARAM_BATCH])

    def _log_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:_MAX_TAG]) for k, v in tags.items() if k != PARENT]
        for start in range(0, len(items), _PARAM_BATCH):
            self._client.log_batch(run_id, tags=items[start : start + _PARAM_BATCH])

    def _log_metrics(self, run_id: str, metrics: list[Any]) -> None:
        for start in range(0, len(metrics), _METRIC_BATCH):
            self._client.log_batch(run_id, metrics=metrics[start : start + _METRIC_BATCH])


def _tag_filter(tags: Mapping[str, str]) -> str:
    return " and ".join(f"tags.`{k}` = {_quote(v)}" for k, v in tags.items())


def _quote(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise MixoptError(f"cannot search MLflow for a tag value with both quote kinds: {value!r}")
