"""From trial results to the laws' rows: the early evaluations left out, clear errors."""

import numpy as np
import pytest

from mixopt.predictors.scaling import ScalingDataError
from mixopt.predictors.scaling.rows import EARLY_SHARE, curve_rows, late_enough, stack_runs

DOMAINS = ["code", "prose"]


def _result(total=1000, evals=(100, 250, 500, 750), n_params=5000):
    def metrics(tokens):
        return {f"val_loss/{d}": 3.0 + i + 100.0 / tokens for i, d in enumerate(DOMAINS)}

    return {
        "n_params": n_params,
        "tokens": total,
        "metrics": metrics(total),
        "evals": [{"tokens": t, "metrics": metrics(t)} for t in evals],
    }


def test_a_run_gives_its_late_evaluations_and_its_final_point():
    X, Y = curve_rows(_result(), {"code": 0.3, "prose": 0.7}, DOMAINS)
    kept = [t for t in (100, 250, 500, 750) if t >= EARLY_SHARE * 1000] + [1000]
    assert X[:, -1].tolist() == kept  # the early transient is not fitted; the final point last
    np.testing.assert_allclose(X[:, :2], [[0.3, 0.7]] * len(kept))
    assert set(X[:, -2]) == {5000}
    np.testing.assert_allclose(Y[:, 1], 4.0 + 100.0 / np.array(kept))
    assert late_enough([0, 1000 * EARLY_SHARE, 1000], 1000).tolist() == [False, True, True]


def test_stacking_runs_and_what_is_refused():
    X, Y = stack_runs([_result(), _result(n_params=9000)], [[0.5, 0.5], [0.2, 0.8]], DOMAINS)
    assert len(X) == len(Y) == 2 * len(curve_rows(_result(), [0.5, 0.5], DOMAINS)[0])
    with pytest.raises(ScalingDataError, match="not among the domains"):
        curve_rows(_result(), {"code": 0.5, "math": 0.5}, DOMAINS)
    broken = _result()
    del broken["evals"][-1]["metrics"]["val_loss/prose"]
    with pytest.raises(ScalingDataError, match="at 750 tokens has no val_loss/prose"):
        curve_rows(broken, [0.5, 0.5], DOMAINS)
    with pytest.raises(ScalingDataError, match="one mixture per result"):
        stack_runs([_result()], [], DOMAINS)
