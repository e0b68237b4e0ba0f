"""mixopt replay --fidelity-column on a small multi-fidelity pool: regret at the target fidelity."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mixopt.cli.main import app

cli = CliRunner()
FIDELITIES = (1.0, 2.0, 4.0)


def _pool(path, rng: np.random.Generator, mixtures: int = 24) -> pd.DataFrame:
    """Every mixture at three fidelities; the loss falls with fidelity, its best mixture alike."""
    rows = []
    for w in rng.dirichlet(np.ones(3), size=mixtures):
        for f in FIDELITIES:
            loss = 2.0 + 1.0 / f + (w[0] - 0.5) ** 2 + 0.3 * (w[2] - 0.2) ** 2
            rows.append({"w_a": w[0], "w_b": w[1], "w_c": w[2], "fid": f, "cost": f, "loss": loss})
    frame = pd.DataFrame(rows)
    frame.to_csv(path, index=False)
    return frame


def _args(path, out, strategy: str) -> list[str]:
    args = ["replay", "--runs", str(path), "--weights", "w_", "--target", "loss"]
    args += ["--budget", "10", "--initial", "4", "--batch", "2", "--out", str(out)]
    return [*args, "--strategy", strategy, "--fidelity-column", "fid", "--cost-column", "cost"]


def _reported(output: str) -> tuple[float, float, float]:
    match = re.search(
        r"at the target fidelity 4: best (\S+) \(the pool's best there: (\S+), regret (\S+)\)",
        output,
    )
    assert match, output
    best, pool_best, regret = (float(v) for v in match.groups())
    return best, pool_best, regret


@pytest.mark.parametrize("strategy", ["random", "mfbo"])
def test_replay_reports_regret_at_the_target_fidelity(tmp_path, strategy):
    path, out = tmp_path / "pool.csv", tmp_path / "trace.csv"
    frame = _pool(path, np.random.default_rng(0))
    result = cli.invoke(app, _args(path, out, strategy))
    assert result.exit_code == 0, result.output
    trace = pd.read_csv(out)
    assert list(trace.columns) == ["step", "pool_index", "value", "fidelity", "cost"]
    np.testing.assert_allclose(trace["fidelity"], frame["fid"].to_numpy()[trace["pool_index"]])
    if strategy == "random":  # single-fidelity strategies evaluate target-fidelity rows only
        assert set(trace["fidelity"]) == {4.0}
    else:  # mfbo starts at the cheapest fidelity
        assert trace["fidelity"].iloc[0] == 1.0
    best, pool_best, regret = _reported(result.output)
    at_target = trace[trace["fidelity"] == 4.0]["value"]
    assert best == pytest.approx(at_target.min(), rel=1e-5)
    assert pool_best == pytest.approx(frame[frame["fid"] == 4.0]["loss"].min(), rel=1e-5)
    assert regret == pytest.approx(best - pool_best, abs=1e-5) and regret >= 0


def test_a_missing_fidelity_column_is_clear(tmp_path):
    path, out = tmp_path / "pool.csv", tmp_path / "trace.csv"
    _pool(path, np.random.default_rng(1)).drop(columns="fid").to_csv(path, index=False)
    result = cli.invoke(app, _args(path, out, "random"))
    assert result.exit_code == 2 and "column 'fid' not in the table" in result.output
    assert "Traceback" not in result.output and not out.exists()
    alone = cli.invoke(app, [*_args(path, out, "random")[:-4], "--target-fidelity", "4"])
    assert alone.exit_code == 2 and "--target-fidelity needs --fidelity-column" in alone.output
    _pool(path, np.random.default_rng(1))
    absent = cli.invoke(app, [*_args(path, out, "random"), "--target-fidelity", "3"])
    assert absent.exit_code == 2 and "no pool row has the target fidelity 3" in absent.output
    assert not out.exists()
