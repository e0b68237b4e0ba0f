import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

from mixopt.cli.main import app

TARGET = "metric/the_pile_pile_cc_val_loss"
cli = CliRunner()


def test_predict_writes_one_prediction_per_test_row_in_order(tmp_path, regmix_runs):
    frame = pd.read_csv(regmix_runs)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    frame.iloc[:64].to_csv(train, index=False)
    frame.iloc[64:].drop(columns=[TARGET]).to_csv(test, index=False)
    out = tmp_path / "pred.csv"
    args = ["predict", "--train", str(train), "--test", str(test), "--weights", "train_the_pile_"]
    result = cli.invoke(app, [*args, "--target", TARGET, "--out", str(out)])
    assert result.exit_code == 0, result.output
    pred = pd.read_csv(out)
    assert list(pred.columns) == ["prediction"] and len(pred) == 32
    truth = frame.iloc[64:][TARGET].to_numpy()
    assert pd.Series(pred["prediction"]).corr(pd.Series(truth), method="spearman") > 0.5


def test_predict_with_missing_target_fails_cleanly(tmp_path, regmix_runs):
    out = tmp_path / "pred.csv"
    out.write_text("keep me")
    args = ["predict", "--train", str(regmix_runs), "--test", str(regmix_runs)]
    result = cli.invoke(
        app, [*args, "--weights", "train_the_pile_", "--target", "loss", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "target column 'loss' not in the table" in result.output
    assert "Traceback" not in result.output
    assert out.read_text() == "keep me"


def test_replay_trace(tmp_path, regmix_runs):
    out = tmp_path / "trace.csv"
    args = [
        "replay",
        "--runs",
        str(regmix_runs),
        "--weights",
        "train_the_pile_",
        "--target",
        TARGET,
    ]
    result = cli.invoke(
        app, [*args, "--budget", "12", "--initial", "4", "--batch", "4", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    trace = pd.read_csv(out)
    assert list(trace.columns) == ["step", "pool_index", "value"]
    assert len(trace) == 12 and trace["pool_index"].is_unique


def test_dry_run_prints_the_resolved_spec(tmp_path):
    spec = {
        "name": "x",
        "domains": [{"name": "a", "paths": ["a.txt"]}, {"name": "b", "paths": ["b"]}],
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = cli.invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load(result.output)
    assert resolved["domains"][0]["paths"] == [str(tmp_path / "a.txt")]
    assert resolved["search"]["strategy"] == "bo"
    assert not (tmp_path / "runs").exists()


def test_infeasible_spec_exits_nonzero_naming_the_problem(tmp_path):
    spec = {
        "name": "x",
        "domains": [{"name": "a", "paths": ["a"]}, {"name": "b", "paths": ["b"]}],
        "space": {"bounds": {"a": [0.0, 0.3], "b": [0.0, 0.3]}},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "maximum weights sum to 0.6 < 1" in result.output


def test_export_of_unfinished_or_missing_job(tmp_path):
    result = cli.invoke(app, ["export", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a job directory" in result.output
    result = cli.invoke(app, ["export", str(tmp_path)])
    assert result.exit_code == 2 and "the job has not finished" in result.output


def test_export_formats_round_trip(tmp_path):
    rec = {"job": "j", "weights": {"a": 0.25, "b": 0.75}, "predicted_objective": 3.1}
    (tmp_path / "recommendation.json").write_text(json.dumps(rec))
    as_json = cli.invoke(app, ["export", str(tmp_path), "--format", "json"])
    as_yaml = cli.invoke(app, ["export", str(tmp_path), "--format", "yaml"])
    assert json.loads(as_json.output)["mixture"] == rec["weights"]
    assert yaml.safe_load(as_yaml.output)["mixture"] == rec["weights"]
    bad = cli.invoke(app, ["export", str(tmp_path), "--format", "toml"])
    assert bad.exit_code == 2 and "available: json, yaml" in bad.output


def test_console_script_reports_errors_without_traceback(tmp_path):
    exe = shutil.which("mixopt", path=str(Path(sys.executable).parent))
    assert exe is not None, "the mixopt console script is installed with the package"
    proc = subprocess.run(
        [exe, "run", str(tmp_path / "missing.yaml")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "spec file not found" in proc.stderr and "Traceback" not in proc.stderr
