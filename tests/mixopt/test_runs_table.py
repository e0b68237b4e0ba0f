import pandas as pd
import pytest

from mixopt.errors import RunsTableError
from mixopt.runs_table import read_table, trial_row, weights_and_target, write_runs
from mixopt.trials import Trial, TrialStatus


def test_weight_columns_by_prefix_or_list(regmix_runs):
    frame = read_table(regmix_runs)
    X, y, cols = weights_and_target(
        frame, "train_the_pile_", "metric/the_pile_pile_cc_val_loss", source="t"
    )
    assert len(cols) == 17 and X.shape == (96, 17) and y is not None
    X2, _, cols2 = weights_and_target(frame, ",".join(cols[:3]), None, source="t")
    assert cols2 == cols[:3] and X2.shape == (96, 3)


def test_bad_tables_give_clear_errors(tmp_path, regmix_runs):
    frame = read_table(regmix_runs)
    with pytest.raises(RunsTableError, match="target column 'loss' not in the table"):
        weights_and_target(frame, "train_the_pile_", "loss", source="t")
    with pytest.raises(RunsTableError, match="no column is named or starts with 'w_'"):
        weights_and_target(frame, "w_", None, source="t")
    with pytest.raises(RunsTableError, match=r"weight column\(s\) \['nope'\] not in the table"):
        weights_and_target(frame, "train_the_pile_arxiv,nope", None, source="t")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(RunsTableError, match="cannot read runs table"):
        read_table(empty)
    with pytest.raises(RunsTableError, match="runs table not found"):
        read_table(tmp_path / "missing.csv")
    corrupt = tmp_path / "x.parquet"
    corrupt.write_bytes(b"PAR1 not really")
    with pytest.raises(RunsTableError, match="cannot read runs table"):
        read_table(corrupt)


def test_trial_rows_round_trip_through_parquet(tmp_path):
    trial = Trial("t0001", 1, {"a": 0.25, "b": 0.75}, seed=0, status=TrialStatus.COMPLETED)
    trial.result = {
        "metrics": {"val_loss/a": 3.0, "val_loss/b": 2.0},
        "objective": 2.5,
        "tokens": 10,
    }
    path = tmp_path / "runs.parquet"
    write_runs([trial_row(trial, job="j", fidelity="dense:tiny:10", data_hash="h")], path)
    frame = pd.read_parquet(path)
    row = frame.iloc[0]
    assert row["weight/b"] == 0.75 and row["val_loss/a"] == 3.0 and row["objective"] == 2.5
    assert row["status"] == "completed" and row["data_hash"] == "h"
    assert not list(tmp_path.glob("*.tmp"))
