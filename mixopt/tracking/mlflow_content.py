"""What a trial's MLflow child run holds: its tags, params and metrics (see
:mod:`mixopt.tracking.mlflow_tracker` for the list), built from the trial, its runs-table row and
its request; and the key and time conventions both modules share."""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mixopt.trials import Trial, TrialRequest

TRIAL_ID = "mixopt.trial_id"
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
    "trunk_steps",
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
                and k not in ("checkpoint_dir", "seed", "stages")
            }
        )
        for index, stage in enumerate(request.train.stages):  # mixture stages, when the job has
            params[f"stage{index}/share"] = stage.share
            if stage.weights is None:  # the searched stage: the trial's weight/<domain>
                params[f"stage{index}/searched"] = True
            else:
                params.update({f"stage{index}/weight/{d}": w for d, w in stage.weights.items()})
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

    now = timestamp if timestamp is not None else now_ms()
    result = trial.result
    final = int(result.get("tokens") or 0)
    at = training_clock(trial, now)
    out: list[Any] = []

    def add(key: str, value: Any, step: int, when: int | None = None) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.append(Metric(safe_key(key), float(value), now if when is None else when, step))

    for record in result.get("evals") or []:
        step = int(record.get("tokens", record.get("step", 0)))
        for key, value in (record.get("metrics") or {}).items():
            add(key, value, step, at(step))
        for key, value in expert_load(record.get("expert_counts") or []):
            add(key, value, step, at(step))
    for key, value in (result.get("metrics") or {}).items():
        add(key, value, final)
    add("objective", result.get("objective"), final)
    for key, value in expert_load(result.get("expert_counts") or []):
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
    started = ms(trial.result.get("started_at"))
    total = int(trial.result.get("tokens") or 0)
    if started is None or total <= 0 or finished <= started:
        return lambda tokens: finished
    span = finished - started
    return lambda tokens: started + round(span * min(max(tokens, 0), total) / total)


def expert_load(counts: list[list[int]]) -> Iterator[tuple[str, float]]:
    """Each expert's share of its layer's routed tokens, and each layer's max/mean ratio."""
    for i, layer in enumerate(counts):
        total = float(sum(layer))
        if not layer or total <= 0:
            continue
        for j, count in enumerate(layer):
            yield f"moe/expert_share/layer{i}/expert{j}", count / total
        yield f"moe/expert_imbalance/layer{i}", max(layer) / (total / len(layer))


def flatten_scores(scores: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float, int]]:
    """(key, value, step): nested mappings join keys with '/', lists become steps (folds)."""
    for key, value in scores.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten_scores(value, f"{name}/")
        elif isinstance(value, list | tuple):
            for step, item in enumerate(value):
                if isinstance(item, int | float) and not isinstance(item, bool):
                    yield name, float(item), step
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield name, float(value), 0
        elif hasattr(value, "item"):  # numpy scalar
            yield name, float(value.item()), 0


def safe_key(name: str) -> str:
    """An MLflow-safe metric/param name (letters, digits, ``_-. /``)."""
    return _BAD_KEY.sub("_", str(name))


def ms(seconds: Any) -> int | None:
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        return int(seconds * 1000)
    return None


def now_ms() -> int:
    return int(time.time() * 1000)
