"""mixopt predict at scale: a law fitted on runs at three sizes predicts a larger one."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from mixopt.cli.main import app

cli = CliRunner()


def _loss(w: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    share = w @ np.array([0.5, 0.3, 0.2])
    return 1.5 + 10.0 * n**-0.3 + 2.0 * (d * share) ** -0.3


def _table(rng: np.random.Generator, sizes: list[float], runs: int) -> pd.DataFrame:
    rows = []
    for n in sizes:
        for w in rng.dirichlet(np.ones(3), size=runs):
            for d in (2e5, 4e5, 8e5, 1.6e6):
                rows.append({"w_a": w[0], "w_b": w[1], "w_c": w[2], "N": n, "D": d})
    frame = pd.DataFrame(rows)
    w = frame[["w_a", "w_b", "w_c"]].to_numpy()
    noise = rng.normal(0, 0.002, len(frame))
    frame["loss"] = _loss(w, frame["N"].to_numpy(), frame["D"].to_numpy()) + noise
    return frame


def test_predict_at_each_rows_own_size_and_tokens(tmp_path):
    rng = np.random.default_rng(0)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    _table(rng, [3e4, 1e5, 3e5], 8).to_csv(train, index=False)
    larger = _table(rng, [3e6], 6)  # 10x beyond the largest size fitted on
    larger.drop(columns="loss").to_csv(test, index=False)
    out = tmp_path / "pred.csv"
    args = ["predict", "--train", str(train), "--test", str(test), "--weights", "w_"]
    args += ["--target", "loss", "--out", str(out), "--params-column", "N", "--tokens-column", "D"]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(out)["prediction"].to_numpy()
    truth = larger["loss"].to_numpy()
    assert np.mean(np.abs(predicted - truth) / truth) < 0.02
    # a scale-blind predictor cannot see the size: it misses the larger model's level
    blind = tmp_path / "blind.csv"
    blind_args = ["predict", "--train", str(train), "--test", str(test), "--weights", "w_"]
    blind_args += ["--target", "loss", "--out", str(blind), "--predictor", "linear"]
    assert cli.invoke(app, blind_args).exit_code == 0
    blind_error = np.mean(np.abs(pd.read_csv(blind)["prediction"].to_numpy() - truth) / truth)
    assert blind_error > 2 * np.mean(np.abs(predicted - truth) / truth)


def test_scale_columns_must_come_together_and_be_positive(tmp_path):
    rng = np.random.default_rng(1)
    frame = _table(rng, [3e4, 1e5, 3e5], 4)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    base = ["predict", "--train", str(path), "--test", str(path), "--weights", "w_"]
    base += ["--target", "loss", "--out", str(tmp_path / "o.csv")]
    one = cli.invoke(app, [*base, "--params-column", "N"])
    assert one.exit_code == 2 and "give both --params-column and --tokens-column" in one.output
    frame.loc[3, "N"] = -1
    frame.to_csv(path, index=False)
    bad = cli.invoke(app, [*base, "--params-column", "N", "--tokens-column", "D"])
    assert (
        bad.exit_code == 2 and "column 'N' (model size) must be finite and > 0; row 3" in bad.output
    )
    assert not (tmp_path / "o.csv").exists()
