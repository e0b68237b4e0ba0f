"""The paired verdict: seeds shared by the mixtures are compared pairwise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mixopt.verdict import compare, verdict


def _summary(values: dict[int, float]) -> dict:
    v = list(values.values())
    return {
        "objective": float(np.mean(v)),
        "objective_std": float(np.std(v, ddof=1)) if len(v) > 1 else None,
        "seeds": len(v),
        "by_seed": {str(k): x for k, x in values.items()},
    }


def test_pairing_finds_a_gain_the_seed_spread_hides():
    # the seeds move every mixture together by +-0.1; the recommendation is 0.02 better on each
    offsets = {0: 0.0, 1: 0.1, 2: -0.1, 3: 0.05}
    mine = _summary({s: 4.00 + o for s, o in offsets.items()})
    other = _summary({s: 4.02 + o + 0.001 * s for s, o in offsets.items()})
    found = compare(mine, other, "minimize", "uniform")
    assert found is not None and found.paired and found.seeds == 4
    assert found.outcome == "beats" and found.ci is not None and found.ci[0] > 0
    diffs = np.array([0.02 + 0.001 * s for s in offsets])
    expected = stats.ttest_1samp(diffs, 0.0)
    assert found.p_value == pytest.approx(expected.pvalue)
    assert found.gain == pytest.approx(diffs.mean())
    # the unpaired rule calls the same numbers a tie
    unpaired = {k: v for k, v in mine.items() if k != "by_seed"}
    assert compare(unpaired, other, "minimize", "uniform").outcome == "ties"
    text = verdict({"recommended": mine, "uniform": other}, "minimize")
    assert text.startswith("recommended beats uniform by +0.0215") and "paired over 4 seeds" in text


def test_a_loss_and_a_tie_are_called_so():
    mine = _summary({0: 4.10, 1: 4.21, 2: 4.05})
    worse = _summary({0: 4.00, 1: 4.10, 2: 3.96})
    assert compare(mine, worse, "minimize", "natural").outcome == "loses"
    noisy = _summary({0: 4.12, 1: 4.18, 2: 4.07})
    found = compare(mine, noisy, "minimize", "natural")
    assert found.outcome == "ties" and found.ci[0] < 0 < found.ci[1]
    assert "includes 0" in found.sentence()
    assert compare(mine, worse, "maximize", "natural").outcome == "beats"


def test_missing_values_are_not_compared():
    assert compare({"objective": None}, _summary({0: 1.0, 1: 1.1}), "minimize") is None
    assert verdict({"recommended": {"objective": None}}, "minimize") == "not validated"
