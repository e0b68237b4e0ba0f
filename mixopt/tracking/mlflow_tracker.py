"""MLflow tracker: one parent run per job, one child run per trial.

Uses ``MlflowClient`` directly (no global active run), so several jobs in one process cannot
mix their runs. A child run gets the mixture weights as params (``weight/<domain>``), the proxy
settings, and the metrics (``val_loss/<domain>``, objective, throughput) plus the training curve
as a stepped ``train_loss`` metric (step = tokens seen). By default the store is SQLite inside
the job directory, with artifacts next to it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mixopt.tracking.base import Tracker
from mixopt.trials import Trial

_MAX_PARAM = 500  # MLflow's param value limit is 6000 chars; keep params short and readable


def default_tracking_uri(job_dir: Path) -> str:
    return f"sqlite:///{(job_dir / 'mlflow.db').resolve()}"


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

    def describe(self) -> str:
        return f"MLflow at {self.tracking_uri} (experiment {self.experiment!r})"

    def start_job(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=self.tracking_uri)
        found = self._client.get_experiment_by_name(self.experiment)
        if found is not None:
            self._experiment_id = found.experiment_id
        else:
            location = self.artifact_dir.resolve().as_uri() if self.artifact_dir else None
            self._experiment_id = self._client.create_experiment(
                self.experiment, artifact_location=location
            )
        run = self._client.create_run(self._experiment_id, run_name=name, tags=tags)
        self._parent_id = run.info.run_id
        self._log_params(self._parent_id, params)

    @property
    def parent_run_id(self) -> str | None:
        return self._parent_id

    def log_trial(self, trial: Trial) -> None:
        from mlflow.entities import Metric

        tags = {
            "mlflow.parentRunId": self._parent_id or "",
            "mixopt.trial_id": trial.trial_id,
            "mixopt.stage": trial.stage.value,
            "mixopt.status": trial.status.value,
            "mixopt.round": str(trial.round),
        }
        if trial.label:
            tags["mixopt.label"] = trial.label
        run = self._client.create_run(self._experiment_id, run_name=trial.trial_id, tags=tags)
        run_id = run.info.run_id
        params: dict[str, Any] = {f"weight/{d}": f"{w:.6f}" for d, w in trial.weights.items()}
        params.update({"seed": trial.seed, "round": trial.round, "stage": trial.stage.value})
        result = trial.result
        params.update({k: result[k] for k in ("device", "n_params") if k in result})
        self._log_params(run_id, params)
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, 0)
            for key, value in result.get("metrics", {}).items()
            if isinstance(value, int | float)
        ]
        for key in ("tokens", "flops", "wall_s", "tokens_per_s"):
            if key in result:
                metrics.append(Metric(key, float(result[key]), now, 0))
        if "objective" in result:
            metrics.append(Metric("objective", float(result["objective"]), now, 0))
        for tokens, loss in result.get("curve", []):
            metrics.append(Metric("train_loss", float(loss), now, int(tokens)))
        for start in range(0, len(metrics), 900):
            self._client.log_batch(run_id, metrics=metrics[start : start + 900])
        if trial.error:
            self._client.set_tag(run_id, "mixopt.error", trial.error[:5000])
        status = "FINISHED" if trial.status.value == "completed" else "FAILED"
        self._client.set_terminated(run_id, status=status)

    def log_job_metrics(self, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        self._client.log_batch(self._parent_id, metrics=batch)

    def log_artifact(self, path: Path) -> None:
        self._client.log_artifact(self._parent_id, str(path))

    def finish(self, status: str) -> None:
        if self._client is not None and self._parent_id is not None:
            self._client.set_terminated(self._parent_id, status=status)

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:_MAX_PARAM]) for k, v in params.items()]
        for start in range(0, len(items), 90):
            self._client.log_batch(run_id, params=items[start : start + 90])
