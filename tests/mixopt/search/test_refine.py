"""Refining discovered domains: the plan prunes the harmful cluster and merges the duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import MixoptError
from mixopt.search.refine import plan_refinement

DOMAINS = [f"cluster_{i:02d}" for i in range(5)]


def synthetic(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trials where cluster_02 only hurts, cluster_01 and cluster_03 are the same text (one
    centroid, one role), and cluster_00 and cluster_04 each have an interior optimum."""
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(5), size=n)
    y = (
        3.0
        + 1.5 * W[:, 2]
        + 4 * (W[:, 0] - 0.3) ** 2
        + 4 * (W[:, 4] - 0.3) ** 2
        + 4 * (W[:, 1] + W[:, 3] - 0.4) ** 2
        + rng.normal(0, 0.002, n)
    )
    C = rng.normal(size=(5, 16))
    C[3] = C[1] + rng.normal(0, 0.05, 16)  # near-duplicates
    return W, y, C


@pytest.mark.parametrize("predictor", ["auto", "quadratic"])
def test_plan_prunes_the_harmful_cluster_and_merges_the_duplicates(predictor: str) -> None:
    W, y, C = synthetic()
    plan = plan_refinement(W, y, DOMAINS, centroids=C, predictor=predictor)
    assert plan.pruned == ["cluster_02"]
    assert plan.merged == [["cluster_01", "cluster_03"]]
    assert plan.names == ["cluster_00", "cluster_01-cluster_03", "cluster_04"]
    by_name = {d.cluster: d for d in plan.decisions}
    assert by_name["cluster_02"].reason.startswith("harmful")
    assert "centroid cosine similarity" in by_name["cluster_03"].reason
    assert by_name["cluster_01"].into == by_name["cluster_03"].into == "cluster_01-cluster_03"
    assert {by_name[n].action for n in ("cluster_00", "cluster_04")} == {"keep"}
    assert plan.optimum["cluster_02"] < min(plan.optimum[n] for n in ("cluster_00", "cluster_04"))


def test_carry_over_sums_merged_weights_and_drops_trials_heavy_on_pruned() -> None:
    W, y, C = synthetic()
    W[0] = [0.2, 0.2, 0.0, 0.3, 0.3]  # nothing on the pruned cluster: kept exactly
    W[1] = [0.2, 0.1, 0.5, 0.1, 0.1]  # half on it: dropped
    plan = plan_refinement(W, y, DOMAINS, centroids=C, predictor="quadratic")
    new, values, kept = plan.carry_over(W, y)
    assert kept[0] and not kept[1]
    np.testing.assert_allclose(new[0], [0.2, 0.5, 0.3])
    assert kept.sum() == len(new) == len(values)
    assert np.all(W[kept][:, 2] <= plan.drop_above + 1e-12)
    np.testing.assert_allclose(new.sum(axis=1), 1.0)
    np.testing.assert_array_equal(values, y[kept])


def test_effect_merging_joins_clusters_of_the_same_role() -> None:
    W, y, _ = synthetic()
    plan = plan_refinement(W, y, DOMAINS, predictor="quadratic", merge_effect=0.03)
    assert plan.merged == [["cluster_01", "cluster_03"]]  # not 00 and 04: same role, not swappable
    assert any("near-identical effect" in d.reason for d in plan.decisions if d.action == "merge")
    without = plan_refinement(W, y, DOMAINS, predictor="quadratic")  # no centroids, no effect
    assert without.merged == []


def test_a_negligible_cluster_is_pruned_and_two_domains_always_remain() -> None:
    rng = np.random.default_rng(1)
    W = rng.dirichlet(np.ones(3), size=60)
    y = 2.0 + 3 * (W[:, 0] - 0.6) ** 2 + 3 * (W[:, 1] - 0.4) ** 2 + 0.4 * W[:, 2]
    plan = plan_refinement(W, y, DOMAINS[:3], predictor="quadratic")
    assert plan.pruned == ["cluster_02"]
    # everything harmful but one: still two domains
    y_bad = 2.0 - W[:, 0] + 0 * W[:, 1]
    plan = plan_refinement(W, y_bad, DOMAINS[:3], predictor="quadratic")
    assert len(plan.groups) >= 2
    kept = [d for d in plan.decisions if d.action == "keep"]
    assert kept and all("harmful" not in d.reason or "kept" in d.reason for d in kept)


def test_bad_input_is_named() -> None:
    W, y, C = synthetic(n=20)
    with pytest.raises(MixoptError, match="too few"):
        plan_refinement(W[:6], y[:6], DOMAINS)
    with pytest.raises(MixoptError, match=r"weights must be \(trials, 4 domains\)"):
        plan_refinement(W, y, DOMAINS[:4])
    with pytest.raises(MixoptError, match="centroids: expected one row per domain"):
        plan_refinement(W, y, DOMAINS, centroids=C[:3], predictor="quadratic")
    with pytest.raises(MixoptError, match=r"merge_above must be in \[0, 1\]"):
        plan_refinement(W, y, DOMAINS, merge_above=2.0)
    with pytest.raises(MixoptError, match="unknown predictor"):
        plan_refinement(W, y, DOMAINS, predictor="nope")
