"""Bad input gets one clear line and exit status 2, never a traceback (and never a silently
wrong answer): corrupt job files, and runs tables with infinite or huge values, weights that
are not shares, duplicated columns, too few rows or folds."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mixopt.cli.main import app

TARGET = "metric/the_pile_pile_cc_val_loss"
PREFIX = "train_the_pile_"
cli = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = cli.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: {type(result.exception).__name__}: {result.exception}")
    return result.exit_code, result.output


def assert_clear(args: tuple[str, ...], message: str) -> None:
    code, output = run(*args)
    assert code == 2, output
    assert output.startswith("error: ") and message in output, output
    assert output.count("\n") == 1  # one line


# ------------------------------------------------------------------------------ job files


@pytest.fixture
def job(tmp_path: Path) -> Path:
    from tests.mixopt.reporting.jobs import shared_finished_job

    copy = tmp_path / "job"
    shutil.copytree(shared_finished_job(), copy)
    return copy


CORRUPT_STATUS = [
    b"{not json",
    b"[1, 2, 3]",
    b'{"status": "running", "pid": 99999999999999999999999}',
    b'{"status": "running", "pid": 99999999999999999999999, "host": "{node}"}',
    b'{"status": "running", "pid": -5, "host": "{node}"}',
    b'{"status": "running", "pid": "x", "host": 7}',
    b'{"status": "unheard-of"}',
    b"\xff\xfe\x00garbage",
    b"",
]


@pytest.mark.parametrize("content", CORRUPT_STATUS, ids=range(len(CORRUPT_STATUS)))
def test_a_corrupt_job_json_is_reported_not_a_traceback(job, tmp_path, content):
    (job / "job.json").write_bytes(content.replace(b"{node}", platform.node().encode()))
    (job / "state.json").write_text("[]")  # resume must not start training
    for args in (
        ("status", job, "--json"),
        ("export", job, "--format", "yaml"),
        ("runs", "show", job, "--json"),
        ("report", job, "--out", tmp_path / "r.html", "--no-png"),
        ("resume", job, "--runner", "local"),
    ):
        code, output = run(*args)
        assert code in (0, 2), (args, output)
        if code == 2:
            assert output.startswith("error: "), (args, output)


def test_a_state_json_holding_a_list_is_refused_by_resume(job):
    (job / "job.json").write_text(json.dumps({"job": "x", "status": "failed"}))
    (job / "state.json").write_text("[1, 2]")
    assert_clear(("resume", job, "--runner", "local"), "state.json")


def test_resume_of_a_folder_that_is_no_job(tmp_path):
    assert_clear(("resume", tmp_path / "nothing", "--runner", "local"), "no such job directory")


# ----------------------------------------------------------------------------- runs tables


@pytest.fixture
def runs(regmix_runs: Path) -> pd.DataFrame:
    return pd.read_csv(regmix_runs)


def table(tmp_path: Path, frame: pd.DataFrame, name: str = "runs.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def weight_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(PREFIX)]


def commands(path: Path, out: Path) -> dict[str, tuple[str, ...]]:
    common = ("--weights", PREFIX, "--target", TARGET)
    return {
        "predict": ("predict", "--train", path, "--test", path, *common, "--out", out),
        "cv": ("cv", "--runs", path, *common, "--predictors", "linear"),
        "replay": (
            "replay",
            "--runs",
            path,
            *common,
            "--budget",
            "6",
            "--initial",
            "4",
            "--strategy",
            "random",
            "--out",
            out,
        ),
        "import": ("runs", "import", path, *common, "--study", out.with_suffix(".json")),
    }


def poisoned(runs: pd.DataFrame, how: str) -> pd.DataFrame:
    frame = runs.copy().reset_index(drop=True)
    first = weight_columns(frame)[0]
    if how == "inf weight":
        frame[first] = frame[first].astype(float)
        frame.loc[3, first] = float("inf")
    elif how == "weights sum to 3":
        frame.loc[3, weight_columns(frame)] *= 3
    elif how == "negative weight":
        frame.loc[3, first] = -0.2
    elif how == "1e308 target":
        frame.loc[3, TARGET] = 1e308
    elif how == "inf target":
        frame.loc[3, TARGET] = float("inf")
    return frame


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("inf weight", "non-finite weight in row(s) 3"),
        ("weights sum to 3", "the weights of row(s) 3 sum to more than 1 (row 3: 3.00"),
        ("negative weight", "negative weight in row(s) 3"),
        ("1e308 target", f"target column {TARGET!r} has value(s) beyond +-1e+100 (rows 3)"),
        ("inf target", f"target column {TARGET!r} has 1 missing or non-finite value(s) (rows 3)"),
    ],
)
@pytest.mark.parametrize("command", ["predict", "cv", "replay", "import"])
def test_bad_values_in_a_runs_table_are_refused(tmp_path, runs, how, message, command):
    path = table(tmp_path, poisoned(runs, how))
    out = tmp_path / "out.csv"
    assert_clear(commands(path, out)[command], message)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_study_best_after_a_refused_import_still_answers(tmp_path, runs):
    good = table(tmp_path, runs.iloc[:40], "good.csv")
    bad = table(tmp_path, poisoned(runs.iloc[40:], "1e308 target"), "bad.csv")
    study = tmp_path / "s.json"
    common = ("--weights", PREFIX, "--target", TARGET, "--study", study)
    assert run("runs", "import", good, *common)[0] == 0
    before = study.read_text()
    assert_clear(("runs", "import", bad, *common), "beyond +-1e+100")
    assert study.read_text() == before
    code, output = run("study", "best", study)
    assert code == 0, output
    assert abs(sum(json.loads(output)["weights"].values()) - 1) < 1e-6


def test_a_duplicated_column_is_not_an_extra_domain(tmp_path, runs):
    columns = weight_columns(runs)
    text = table(tmp_path, runs).read_text().splitlines()
    header = text[0].split(",")
    header[header.index(columns[1])] = columns[0]  # the header names a column twice
    path = tmp_path / "dup.csv"
    path.write_text("\n".join([",".join(header), *text[1:]]) + "\n")
    for command in commands(path, tmp_path / "out.csv").values():
        assert_clear(command, f"column(s) [{columns[0]!r}] appear more than once")


def test_cv_needs_folds_and_rows(tmp_path, runs):
    path = table(tmp_path, runs)
    one = table(tmp_path, runs.iloc[:1], "one.csv")
    common = ("--weights", PREFIX, "--target", TARGET, "--predictors", "linear")
    assert_clear(("cv", "--runs", path, *common, "--folds", "0"), "--folds 0: cross-validation")
    assert_clear(("cv", "--runs", path, *common, "--folds", "1"), "at least 2 folds")
    assert_clear(("cv", "--runs", one, *common), "--folds 5: the table has 1 row(s)")
    code, output = run("cv", "--runs", path, *common, "--folds", "3", "--json")
    assert code == 0 and json.loads(output[output.index("{") :])["folds"] == 3


def test_predict_needs_two_rows_and_replay_a_budget_within_the_pool(tmp_path, runs):
    one = table(tmp_path, runs.iloc[:1], "one.csv")
    out = tmp_path / "out.csv"
    assert_clear(commands(one, out)["predict"], "1 row; a predictor needs at least 2")
    small = table(tmp_path, runs.iloc[:5], "small.csv")
    assert_clear(commands(small, out)["replay"], "--budget 6: the pool")


# ------------------------------------------------------------------------------------ export


def test_batch_tokens_is_for_nanotron_on_this_machine(tmp_path):
    args = ("export", tmp_path, "--format", "olmo", "--batch-tokens", "4096")
    assert_clear(args, "--batch-tokens is only used by the nanotron format, not 'olmo'")
    remote = ("export", "job-1", "-f", "nanotron", "--batch-tokens", "4096")
    assert_clear((*remote, "--server", "http://127.0.0.1:9"), "use it without --server")
    code, output = run("export", tmp_path, "-f", "nanotron", "--batch-tokens", "0")
    assert code == 2 and "--batch-tokens" in output  # typer's own range check
