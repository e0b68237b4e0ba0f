"""What ``--out`` (and a study file) points at is written, never destroyed: a symbolic link is
written through and stays a link, a FIFO is written to and stays a FIFO, a directory is refused.
(Reproduced in a temporary folder: never on /dev.)"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mixopt.cli.main import app

TARGET = "metric/the_pile_pile_cc_val_loss"
cli = CliRunner()


def finished_job(tmp_path: Path) -> Path:
    job = tmp_path / "job"
    job.mkdir()
    rec = {"job": "j", "weights": {"a": 0.25, "b": 0.75}, "predicted_objective": 3.1}
    (job / "recommendation.json").write_text(json.dumps(rec))
    return job


def predict(regmix_runs: Path) -> Callable[[Path], list[str]]:
    def args(out: Path) -> list[str]:
        return [
            "predict",
            "--train",
            str(regmix_runs),
            "--test",
            str(regmix_runs),
            "--weights",
            "train_the_pile_",
            "--target",
            TARGET,
            "--predictor",
            "linear",
            "--out",
            str(out),
        ]

    return args


def export(tmp_path: Path) -> Callable[[Path], list[str]]:
    job = finished_job(tmp_path)
    return lambda out: ["export", str(job), "--format", "json", "--out", str(out)]


def replay(regmix_runs: Path) -> Callable[[Path], list[str]]:
    def args(out: Path) -> list[str]:
        return [
            "replay",
            "--runs",
            str(regmix_runs),
            "--weights",
            "train_the_pile_",
            "--target",
            TARGET,
            "--budget",
            "6",
            "--initial",
            "4",
            "--batch",
            "2",
            "--strategy",
            "random",
            "--out",
            str(out),
        ]

    return args


@pytest.fixture(params=["predict", "export", "replay"])
def command(request, tmp_path, regmix_runs) -> tuple[Callable[[Path], list[str]], Callable]:
    """(arguments writing to OUT, a check of what was written)."""
    if request.param == "predict":
        return predict(regmix_runs), lambda text: text.startswith("prediction\n")
    if request.param == "replay":
        return replay(regmix_runs), lambda text: text.startswith("step,pool_index,value\n")
    return export(tmp_path), lambda text: json.loads(text)["mixture"] == {"a": 0.25, "b": 0.75}


def test_a_symlinked_out_is_written_through_and_stays_a_link(tmp_path, command):
    args, written = command
    target = tmp_path / "elsewhere" / "real.csv"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    result = cli.invoke(app, args(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert written(target.read_text())


def test_a_fifo_out_is_written_to_and_stays_a_fifo(tmp_path, command):
    args, written = command
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = cli.invoke(app, args(fifo))
    reader.join(60)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # not replaced by a regular file
    assert received and written(received[0].decode())
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_directory_out_is_refused(tmp_path, command):
    args, _ = command
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    result = cli.invoke(app, args(folder))
    assert result.exit_code == 2, result.output
    assert "is a directory" in result.output and "Traceback" not in result.output
    assert (folder / "keep.txt").read_text() == "keep"


def test_a_symlinked_study_file_stays_a_link(tmp_path, regmix_runs):
    real = tmp_path / "studies" / "s.json"
    real.parent.mkdir()
    link = tmp_path / "s.json"
    created = cli.invoke(app, ["study", "new", str(real), "--domains", "a,b,c"])
    assert created.exit_code == 0, created.output
    link.symlink_to(real)
    asked = cli.invoke(app, ["study", "ask", str(link), "-n", "2"])
    assert asked.exit_code == 0, asked.output
    assert link.is_symlink()
    assert len(json.loads(real.read_text())["suggestions"]) == 2


def test_a_symlinked_report_stays_a_link(tmp_path):
    from tests.mixopt.reporting.jobs import shared_finished_job

    target = tmp_path / "kept" / "report.html"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "report.html"
    link.symlink_to(target)
    result = cli.invoke(app, ["report", str(shared_finished_job()), "--out", str(link), "--no-png"])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and "<html" in target.read_text().lower()


def test_predictions_are_never_written_when_the_fit_fails(tmp_path, regmix_runs):
    """The output is untouched by a command that fails (here: a target of 1e308)."""
    frame = pd.read_csv(regmix_runs)
    frame.loc[0, TARGET] = 1e308
    train = tmp_path / "train.csv"
    frame.to_csv(train, index=False)
    out = tmp_path / "out.csv"
    out.write_text("keep me")
    args = predict(train)(out)
    args[args.index("--test") + 1] = str(regmix_runs)
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert out.read_text() == "keep me"
