"""The runs table: one row per trial, the job's source of truth (Parquet in the job directory).

Columns: ``trial_id, job, stage, label, round, fidelity, seed, status, attempts``, one
``weight/<domain>`` per domain, one column per metric (``val_loss/<domain>``, ``bpb/<domain>``,
``objective``), then ``tokens, flops, wall_s, tokens_per_s, device, started_at, finished_at,
data_hash, error``; when the data stage's versions are given, also ``data_hash/<domain>`` (the
domain's content hash), ``tokenizer_hash`` and ``epochs/<domain>`` (epochs of the domain the
trial consumed: tokens × weight / the domain's train tokens). Saved atomically
(write a temporary file, then rename), so a crash never leaves a torn table.

Also reads users' own tables (CSV or Parquet of mixture → metrics), with weight columns picked by
prefix or by an explicit list.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mixopt.errors import RunsTableError
from mixopt.trials import Trial

WEIGHT_PREFIX = "weight/"
RUNS_FILE = "runs.parquet"
DOMAIN_HASH_PREFIX = "data_hash/"
TOKENIZER_HASH = "tokenizer_hash"
EPOCHS_PREFIX = "epochs/"


def trial_row(
    trial: Trial,
    *,
    job: str,
    fidelity: str,
    data_hash: str,
    domain_hashes: Mapping[str, str] | None = None,
    tokenizer_hash: str | None = None,
    train_tokens: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    result = trial.result
    row: dict[str, Any] = {
        "trial_id": trial.trial_id,
        "job": job,
        "stage": trial.stage.value,
        "label": trial.label,
        "round": trial.round,
        "fidelity": fidelity,
        "seed": trial.seed,
        "status": trial.status.value,
        "attempts": trial.attempts,
    }
    row.update({f"{WEIGHT_PREFIX}{d}": w for d, w in trial.weights.items()})
    row.update(result.get("metrics", {}))
    if "objective" in result:
        row["objective"] = result["objective"]
    for key in ("tokens", "flops", "wall_s", "tokens_per_s", "device", "started_at", "finished_at"):
        row[key] = result.get(key)
    row["data_hash"] = data_hash
    row.update({f"{DOMAIN_HASH_PREFIX}{d}": h for d, h in (domain_hashes or {}).items()})
    if tokenizer_hash is not None:
        row[TOKENIZER_HASH] = tokenizer_hash
    if train_tokens is not None and result.get("tokens") is not None:
        from mixopt.data.caps import epochs_consumed

        epochs = epochs_consumed(trial.weights, float(result["tokens"]), train_tokens)
        row.update({f"{EPOCHS_PREFIX}{d}": e for d, e in epochs.items()})
    row["error"] = trial.error
    return row


def write_runs(rows: list[dict[str, Any]], path: Path) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return frame


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet runs table, with clear errors for missing or corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise RunsTableError(f"{path}: runs table not found")
    try:
        parquet = path.suffix in (".parquet", ".pq")
        frame = pd.read_parquet(path) if parquet else pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise RunsTableError(f"{path}: cannot read runs table: {error}") from None
    if frame.empty:
        raise RunsTableError(f"{path}: runs table has no rows")
    return frame


def select_weight_columns(
    frame: pd.DataFrame, weights: str | Sequence[str], *, source: str
) -> list[str]:
    """Weight columns by prefix (``"train_the_pile_"``) or a comma list / sequence of names."""
    if isinstance(weights, str):
        names = [w.strip() for w in weights.split(",") if w.strip()]
        if len(names) == 1 and names[0] not in frame.columns:
            prefixed = [c for c in frame.columns if str(c).startswith(names[0])]
            if not prefixed:
                raise RunsTableError(
                    f"{source}: no column is named or starts with {names[0]!r}; "
                    f"columns are {list(frame.columns)[:20]}"
                )
            names = prefixed
    else:
        names = list(weights)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise RunsTableError(f"{source}: weight column(s) {missing} not in the table")
    if len(names) < 2:
        raise RunsTableError(f"{source}: need at least 2 weight columns, got {names}")
    for name in names:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise RunsTableError(f"{source}: weight column {name!r} is not numeric")
    return names


def weights_and_target(
    frame: pd.DataFrame,
    weights: str | Sequence[str],
    target: str | None,
    *,
    source: str,
) -> tuple[pd.DataFrame, pd.Series | None, list[str]]:
    """Pick the weight matrix and (optionally) the target column, validated."""
    columns = select_weight_columns(frame, weights, source=source)
    X = frame[columns].astype(float)
    if X.isna().any().any():
        bad = int(X.isna().any(axis=1).to_numpy().nonzero()[0][0])
        raise RunsTableError(f"{source}: missing weight value in row {bad}")
    y = None
    if target is not None:
        if target not in frame.columns:
            raise RunsTableError(
                f"{source}: target column {target!r} not in the table; "
                f"columns are {[c for c in frame.columns if c not in columns][:20]}"
            )
        if not pd.api.types.is_numeric_dtype(frame[target]):
            raise RunsTableError(f"{source}: target column {target!r} is not numeric")
        y = frame[target].astype(float)
    return X, y, columns


def read_joined(paths: Sequence[str | Path], *, on: str | None = None) -> pd.DataFrame:
    """Read one runs table, or several joined on a shared key column.

    Published run tables often split mixtures and metrics into two files sharing an index column
    (RegMix: ``train_mixture_1m.csv`` + ``train_pile_loss_1m.csv`` on ``index``). With ``on``
    unset, the key is the one column name all the tables share.
    """
    frames = [read_table(p) for p in paths]
    if len(frames) == 1:
        return frames[0]
    shared = set(frames[0].columns).intersection(*[f.columns for f in frames[1:]])
    key = on
    if key is None:
        if len(shared) != 1:
            raise RunsTableError(
                f"cannot tell which column joins {[str(p) for p in paths]}: "
                f"shared columns are {sorted(shared) or 'none'}; name one with --join-on"
            )
        key = next(iter(shared))
    joined = frames[0]
    for path, frame in zip(paths[1:], frames[1:], strict=True):
        if key not in frame.columns or key not in joined.columns:
            raise RunsTableError(f"{path}: no column {key!r} to join on")
        if frame[key].duplicated().any():
            raise RunsTableError(f"{path}: join column {key!r} has duplicate values")
        joined = joined.merge(frame, on=key, how="inner", suffixes=("", f"@{Path(path).stem}"))
    if joined.empty:
        raise RunsTableError(f"no rows share a {key!r} value across {[str(p) for p in paths]}")
    return joined


def numeric_column(frame: pd.DataFrame, name: str | None, *, source: str) -> np.ndarray | None:
    """A finite numeric column as an array (None when no column is named)."""
    if name is None:
        return None
    if name not in frame.columns:
        raise RunsTableError(f"{source}: column {name!r} not in the table")
    if not pd.api.types.is_numeric_dtype(frame[name]):
        raise RunsTableError(f"{source}: column {name!r} is not numeric")
    values = frame[name].to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        raise RunsTableError(f"{source}: column {name!r} has missing or non-finite values")
    return values
