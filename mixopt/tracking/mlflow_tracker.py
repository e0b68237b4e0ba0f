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
that is complete carries ``mixopt.logged=<status>`` and is left alone. Metric timestamps come
from the trial's result only (:func:`training_clock`: the curve and periodic evaluations along
the training, the rest at its finish), so re-logging a half-logged run adds no duplicate points.

For remote servers the MLflow HTTP client's own retries are lowered (``MLFLOW_HTTP_REQUEST_*``
environment variables, only where the user has not set them), because
:class:`mixopt.tracking.retry.RetryingTracker` does the retrying and must not be held up for
minutes by a dead server; and MLflow's "View run at" line after every finished run is turned
off (``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT``), as it would interleave with the progress view.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mixopt.errors import MixoptError
from mixopt.tracking.base import Tracker
from mixopt.trials import Trial, TrialRequest

_MAX_PARAM = 500  # MLflow's param value limit is 6000 chars; keep params short and readable
_MAX_TAG = 5000
_METRIC_BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch
_PARAM_BATCH = 90  # ... and at most 100 params or tags

KIND, JOB_KEY, TRIAL_ID, FIT_ID, LOGGED = (
    "mixopt.kind",
    "mixopt.job_key",
    "mixopt.trial_id",
    "mixopt.fit_id",
    "mixopt.logged",
)
PARENT = "mlflow.parentRunId"
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # RetryingTracker retries (and logs less noise)
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # no "View run" line per set_terminated
}
_RESULT_SCALARS = (
    "tokens",
    "flops",
    "wall_s",
    "train_s",
    "eval_s",
    "tokens_per_s",
    "steps",
    "group_wall_s",
    "resumed_from_step",
)
_RESULT_PARAMS = (
    "device",
    "arch",
    "n_params",
    "n_params_total",
    "n_params_active",
    "threads",
    "n_models",
)
_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


def default_tracking_uri(database: Path) -> str:
    """The URI of a job's own SQLite store at ``database``."""
    return f"sqlite:///{Path(database).resolve()}"


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "databricks"))


def job_key(job_dir: str) -> str:
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
            tags.setdefault(JOB_KEY, job_key(tags["mixopt.job_dir"]))
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
        now = _now_ms()
        batch = [
            Metric(_key(k), float(v), now, step)
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
        started = _ms(trial.result.get("started_at"))
        run, existing = self._child(trial.trial_id, {TRIAL_ID: trial.trial_id}, tags, started)
        if existing is not None and existing.data.tags.get(LOGGED) == status:
            self._logged[trial.trial_id] = status
            return
        known = existing.data.params if existing is not None else {}
        self._log_params(run, trial_params(trial, row, request), existing=known)
        timestamp = _ms(trial.result.get("finished_at")) or _now_ms()
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
        now = _now_ms()
        metrics = [
            Metric(_key(f"cv/{key}"), value, now, step)
            for key, value, step in _flatten_scores(cv_scores)
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
            Param(_key(k), str(v)[:_MAX_PARAM])
            for k, v in params.items()
            if v is not None and _key(k) not in known
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


# ----------------------------------------------------------------------------- trial content


def trial_tags(trial: Trial, row: Mapping[str, Any] | None = None) -> dict[str, str]:
    tags = {
        TRIAL_ID: trial.trial_id,
        "mixopt.stage": trial.stage.value,
        "mixopt.status": trial.status.value,
        "mixopt.round": str(trial.round),
    }
    if trial.label:
        tags["mixopt.label"] = trial.label
    if row is not None and row.get("fidelity"):
        tags["mixopt.fidelity"] = str(row["fidelity"])
    if trial.result.get("host"):
        tags["mixopt.host"] = str(trial.result["host"])
    return tags


def trial_params(
    trial: Trial,
    row: Mapping[str, Any] | None = None,
    request: TrialRequest | None = None,
) -> dict[str, Any]:
    """A trial's params: mixture, seed, proxy and training config, data versions."""
    params: dict[str, Any] = {f"weight/{d}": f"{w:.6f}" for d, w in trial.weights.items()}
    params.update({"seed": trial.seed, "round": trial.round, "stage": trial.stage.value})
    if trial.label:
        params["label"] = trial.label
    if request is not None:
        params.update(
            {
                "proxy.preset": request.proxy.preset,
                "proxy.arch": request.proxy.arch,
                "proxy.seq_len": request.model.seq_len,
                "proxy.vocab_size": request.model.vocab_size,
            }
        )
        params.update({f"proxy.{k}": v for k, v in request.proxy.overrides.items()})
        params.update(
            {
                f"train.{k}": v
                for k, v in dataclasses.asdict(request.train).items()
                if isinstance(v, str | int | float | bool | list | tuple)
                and k not in ("checkpoint_dir", "seed")
            }
        )
    result = trial.result
    params.update({f"proxy.{k}": result[k] for k in _RESULT_PARAMS if k in result})
    for key, value in (row or {}).items():
        versioned = key in ("data_hash", "tokenizer_hash", "fidelity") or key.startswith(
            "data_hash/"
        )
        if versioned and value is not None and not (isinstance(value, float) and math.isnan(value)):
            params[key] = value
    return params


def trial_metrics(
    trial: Trial, row: Mapping[str, Any] | None = None, timestamp: int | None = None
) -> list[Any]:
    """A trial's metrics as MLflow ``Metric`` entities (see the module docstring)."""
    from mlflow.entities import Metric

    now = timestamp if timestamp is not None else _now_ms()
    result = trial.result
    final = int(result.get("tokens") or 0)
    at = training_clock(trial, now)
    out: list[Any] = []

    def add(key: str, value: Any, step: int, when: int | None = None) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.append(Metric(_key(key), float(value), now if when is None else when, int(step)))

    for record in result.get("evals") or []:
        step = int(record.get("tokens", record.get("step", 0)))
        for key, value in (record.get("metrics") or {}).items():
            add(key, value, step, at(step))
        for key, value in _expert_load(record.get("expert_counts") or []):
            add(key, value, step, at(step))
    for key, value in (result.get("metrics") or {}).items():
        add(key, value, final)
    add("objective", result.get("objective"), final)
    for key, value in _expert_load(result.get("expert_counts") or []):
        add(key, value, final)
    for key in _RESULT_SCALARS:
        add(key, result.get(key), 0)
    add("attempts", trial.attempts, 0)
    for tokens, loss in result.get("curve") or []:
        add("train_loss", loss, int(tokens), at(int(tokens)))
    if row is not None:
        for key, value in row.items():
            if key.startswith("epochs/"):
                add(key, value, 0)
    return out


def training_clock(trial: Trial, finished: int) -> Callable[[int], int]:
    """Tokens trained → when (ms) the trial had trained them: placed linearly in tokens between
    the trial's start and ``finished`` (its results carry tokens, not times, for each point).
    Derived from the result only, so re-logging a trial gives the same timestamps."""
    started = _ms(trial.result.get("started_at"))
    total = int(trial.result.get("tokens") or 0)
    if started is None or total <= 0 or finished <= started:
        return lambda tokens: finished
    span = finished - started
    return lambda tokens: started + round(span * min(max(tokens, 0), total) / total)


def _expert_load(counts: list[list[int]]) -> Iterator[tuple[str, float]]:
    """Each expert's share of its layer's routed tokens, and each layer's max/mean ratio."""
    for i, layer in enumerate(counts):
        total = float(sum(layer))
        if not layer or total <= 0:
            continue
        for j, count in enumerate(layer):
            yield f"moe/expert_share/layer{i}/expert{j}", count / total
        yield f"moe/expert_imbalance/layer{i}", max(layer) / (total / len(layer))


def _flatten_scores(
    scores: Mapping[str, Any], prefix: str = ""
) -> Iterator[tuple[str, float, int]]:
    """(key, value, step): nested mappings join keys with '/', lists become steps (folds)."""
    for key, value in scores.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten_scores(value, f"{name}/")
        elif isinstance(value, list | tuple):
            for step, item in enumerate(value):
                if isinstance(item, int | float) and not isinstance(item, bool):
                    yield name, float(item), step
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield name, float(value), 0
        elif hasattr(value, "item"):  # numpy scalar
            yield name, float(value.item()), 0


def _tag_filter(tags: Mapping[str, str]) -> str:
    return " and ".join(f"tags.`{k}` = {_quote(v)}" for k, v in tags.items())


def _quote(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise MixoptError(f"cannot search MLflow for a tag value with both quote kinds: {value!r}")


def _key(name: str) -> str:
    """An MLflow-safe metric/param name (letters, digits, ``_-. /``)."""
    return _BAD_KEY.sub("_", str(name))


def _ms(seconds: Any) -> int | None:
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        return int(seconds * 1000)
    return None


def _now_ms() -> int:
    return int(time.time() * 1000)
