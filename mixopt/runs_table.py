"""The runs table: one row per trial, the job's source of truth (Parquet in the job directory).

Columns: ``trial_id, job, stage, label, round, fidelity, seed, status, attempts``, one
``weight/<domain>`` per domain, one column per metric (``val_loss/<domain>``, ``bpb/<domain>``,
``objective``), then ``tokens, flops, wall_s, tokens_per_s, device, started_at, finished_at,
data_hash, error``; when the data stage's versions are given, also ``data_hash/<domain>`` (the
domain's content hash), ``tokenizer_hash`` and ``epochs/<domain>`` (epochs of the domain the
trial consumed: tokens × weight / the domain's train tokens). A job with mixture stages adds
``stage<k>/weight/<domain>`` for each fixed stage ``k`` (0-based, in training order; the trial's
own ``weight/<domain>`` are the searched stage's), and its epochs count every stage. Saved
atomically
(write a temporary file, then rename), so a crash never leaves a torn table.

Also reads users' own tables (CSV or Parquet of mixture → metrics), with weight columns picked by
prefix or by an explicit list, and checks them the way every command needs them: column names
unique (a CSV header naming a column twice is an error, not two domains), each row's weights
finite, non-negative and summing to at most 1 (within :data:`WEIGHT_SUM_TOLERANCE`, as rounded
published tables do; less where the named columns are some of a mixture's domains), targets
finite and within :data:`MAX_ABS_TARGET` (beyond it a fitted model overflows and predicts NaN).
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
DOMAIN_HASH_PREFIX = "data_hash/"
TOKENIZER_HASH = "tokenizer_hash"
EPOCHS_PREFIX = "epochs/"
STAGE_WEIGHT_COLUMN = "stage{index}/weight/{domain}"  # a fixed stage's weight
WEIGHT_SUM_TOLERANCE = 0.01  # a row's weights may exceed 1 by this much (rounded tables)
MAX_ABS_TARGET = 1e100  # squares of larger targets overflow float64
# what a trial's result adds to its row besides metrics (trunk_steps: of its steps, those a
# staged trial took from a shared trunk instead of training them)
RESULT_COLUMNS = (
    "tokens", "flops", "wall_s", "tokens_per_s", "steps", "trunk_steps", "device",
    "started_at", "finished_at",
)  # fmt: skip


def trial_row(
    trial: Trial,
    *,
    job: str,
    fidelity: str,
    data_hash: str,
    domain_hashes: Mapping[str, str] | None = None,
    tokenizer_hash: str | None = None,
    train_tokens: Mapping[str, int] | None = None,
    stages: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The trial's row. ``stages``: the job's stages as ``{"share", "weights", "searched"}``
    (:func:`mixopt.spec.stages.stage_list` of the trial's mixture), None without stages."""
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
    consumed: Mapping[str, float] = trial.weights  # what the whole run takes of each domain
    if stages:
        overall: dict[str, float] = {}
        for index, stage in enumerate(stages):
            for domain, weight in stage["weights"].items():
                overall[domain] = overall.get(domain, 0.0) + stage["share"] * weight
                if not stage["searched"]:
                    row[STAGE_WEIGHT_COLUMN.format(index=index, domain=domain)] = weight
        consumed = overall
    row.update(result.get("metrics", {}))
    if "objective" in result:
        row["objective"] = result["objective"]
    for key in RESULT_COLUMNS:
        row[key] = result.get(key)
    row["data_hash"] = data_hash
    row.update({f"{DOMAIN_HASH_PREFIX}{d}": h for d, h in (domain_hashes or {}).items()})
    if tokenizer_hash is not None:
        row[TOKENIZER_HASH] = tokenizer_hash
    if train_tokens is not None and result.get("tokens") is not None:
        from mixopt.data.caps import epochs_consumed

        epochs = epochs_consumed(consumed, float(result["tokens"]), train_tokens)
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
    names = [str(c) for c in (_csv_header(path) if not parquet else frame.columns)]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise RunsTableError(f"{path}: column(s) {duplicated} appear more than once")
    return frame


def _csv_header(path: Path) -> list[str]:
    """The CSV's header as written (pandas renames a repeated name ``a`` to ``a.1``)."""
    try:
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise RunsTableError(f"{path}: cannot read runs table: {error}") from None
    return [str(v) for v in header.iloc[0].tolist()] if len(header) else []


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
    if len(set(columns)) < len(columns) or frame.columns.duplicated().any():
        raise RunsTableError(f"{source}: the table names a column more than once")
    X = frame[columns].astype(float)
    if X.isna().any().any():
        bad = int(X.isna().any(axis=1).to_numpy().nonzero()[0][0])
        raise RunsTableError(f"{source}: missing weight value in row {bad}")
    check_weights(X, source=source)
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
        check_target(y, f"{source}: target column {target!r}")
    return X, y, columns


def _rows(mask: Any) -> str:
    rows = np.flatnonzero(mask)
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return ", ".join(str(i) for i in rows[:5]) + more


def check_weights(X: pd.DataFrame, *, source: str) -> None:
    """Every row (part of) a mixture: finite, non-negative weights summing to at most 1 (within
    tolerance; the named columns may be some of the mixture's domains)."""
    values = X.to_numpy(dtype=float)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise RunsTableError(f"{source}: non-finite weight in row(s) {_rows(bad)}")
    negative = (values < 0).any(axis=1)
    if negative.any():
        raise RunsTableError(f"{source}: negative weight in row(s) {_rows(negative)}")
    totals = values.sum(axis=1)
    off = totals > 1.0 + WEIGHT_SUM_TOLERANCE
    if off.any():
        first = int(np.flatnonzero(off)[0])
        raise RunsTableError(
            f"{source}: the weights of row(s) {_rows(off)} sum to more than 1 (row {first}: "
            f"{totals[first]:.6g}); a mixture's weights are shares of the data (percentages? "
            "divide them by 100)"
        )


def check_target(y: pd.Series | np.ndarray, what: str) -> None:
    """Target values a model can fit: finite, and no larger in magnitude than MAX_ABS_TARGET."""
    values = np.asarray(y, dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        raise RunsTableError(
            f"{what} has {int(bad.sum())} missing or non-finite value(s) (rows {_rows(bad)})"
        )
    huge = np.abs(values) > MAX_ABS_TARGET
    if huge.any():
        raise RunsTableError(
            f"{what} has value(s) beyond +-{MAX_ABS_TARGET:g} (rows {_rows(huge)}); a model "
            "cannot fit them: rescale the column"
        )


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
