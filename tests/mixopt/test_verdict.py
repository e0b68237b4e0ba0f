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


def _measured(metric: str, values: dict[int, float]) -> dict:
    """A validation summary whose ``metric`` was measured per seed."""
    return {
        **_summary(values),
        "metrics": {metric: float(np.mean(list(values.values())))},
        "metrics_by_seed": {str(s): {metric: v} for s, v in values.items()},
    }


def test_a_relative_guard_rail_is_checked_against_its_baseline_seed_by_seed():
    from mixopt.spec.objective import ConstraintSpec
    from mixopt.verdict import check_guard_rails

    rule = ConstraintSpec(metric="val_loss/code", max_increase=0.01, relative_to="natural")
    offsets = {0: 0.0, 1: 0.2, 2: -0.1}  # the seeds move both mixtures together
    natural = _measured("val_loss/code", {s: 3.0 + o for s, o in offsets.items()})
    mine = _measured("val_loss/code", {s: 3.0 * 1.01 - 0.004 + o for s, o in offsets.items()})
    (check,) = check_guard_rails([rule], {"recommended": mine, "natural": natural})
    assert check.limit == pytest.approx(3.0 * 1.01 + np.mean(list(offsets.values())) * 1.01)
    assert check.excess == pytest.approx(mine["metrics"]["val_loss/code"] - check.limit)
    assert check.held and check.paired and check.seeds == 3
    excess = [
        mine["metrics_by_seed"][s]["val_loss/code"]
        - 1.01 * natural["metrics_by_seed"][s]["val_loss/code"]
        for s in ("0", "1", "2")
    ]
    half = stats.t.ppf(0.975, 2) * np.std(excess, ddof=1) / np.sqrt(3)
    assert check.ci == pytest.approx((np.mean(excess) - half, np.mean(excess) + half))
    assert check.ci is not None and check.ci[1] < 0  # held beyond the seed noise
    assert check.to_dict()["outcome"] == "held" and "at most 1% above natural" in check.rule
    text = verdict({"recommended": mine, "natural": natural}, "minimize", [check])
    assert text.endswith(f"guard rail {check.sentence()}")
    assert "guard rail val_loss/code held" in text


def test_an_absolute_guard_rail_breaks_and_a_missing_baseline_is_not_measured():
    from mixopt.spec.objective import ConstraintSpec
    from mixopt.verdict import check_guard_rails

    mine = _measured("val_loss/code", {0: 3.10, 1: 3.12})
    absolute = ConstraintSpec(metric="val_loss/code", max_value=3.05)
    relative = ConstraintSpec(metric="val_loss/code", max_increase=0.0, relative_to="uniform")
    broken, missing = check_guard_rails([absolute, relative], {"recommended": mine})
    assert broken.limit == 3.05 and broken.excess == pytest.approx(3.11 - 3.05)
    assert broken.held is False and broken.outcome == "broken" and not broken.paired
    assert broken.seeds == 2 and broken.ci is not None and broken.ci[0] < broken.excess
    assert missing.held is None and missing.outcome == "not measured"
    assert "not measured" in missing.sentence() and "uniform" in missing.sentence()
