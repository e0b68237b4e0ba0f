"""Each scale-aware law recovers its own parameters, extrapolates, and has honest intervals.

Data come from each law's own form (``scaling_data``) with run-level and point-level noise; the
laws are fitted on the three smaller sizes and judged at the largest, as they are used.
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from mixopt.predictors import available_predictors, make_predictor
from mixopt.predictors.scaling import (
    BiMixLaw,
    CapacityLaw,
    JointLaw,
    NestedLaw,
    ScalingDataError,
    ScalingObjective,
    make_law,
)
from mixopt.predictors.scaling.capacity import allocate
from tests.mixopt.predictors.scaling_data import (
    BIMIX,
    CAPACITY,
    JOINT,
    N_REF,
    NESTED,
    SIZES,
    M,
    bimix_truth,
    capacity_truth,
    joint_truth,
    make_grid,
    nested_truth,
)

LARGEST = SIZES[-1]
MULTI_TARGET = {"scale_auto", "scale_capacity", "scale_objective"}
CHEAP = {
    "scale_auto": {"candidates": ("joint", "nested"), "n_bootstrap": 4},
    "scale_bimix": {"n_bootstrap": 4, "n_starts": 2},
    "scale_capacity": {"n_bootstrap": 4, "n_starts": 2},
    "scale_joint": {"n_bootstrap": 4, "n_starts": 2},
    "scale_nested": {"n_bootstrap": 4},
    "scale_objective": {"law_params": {"n_bootstrap": 4, "n_starts": 2}},
}


@pytest.mark.parametrize("name", available_predictors(scale_aware=True))
def test_estimator_contract(name):
    grid = make_grid(joint_truth, n_mixtures=6, points=4)
    X = grid.X
    Y = grid.Y if name in MULTI_TARGET else grid.Y[:, 0]
    model = make_predictor(name, **CHEAP[name])
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict(X)
    assert model.fit(X, Y) is model
    learned = [k for k in vars(model) if k.endswith("_") and not k.startswith("_")]
    assert learned, "fit must leave learned state in attributes ending in _"
    assert clone(model).get_params() == model.get_params()
    mean, std = model.predict(X[:7], return_std=True)
    assert mean.shape == std.shape == (7,)
    assert np.all(np.isfinite(mean)) and np.all(std >= 0)
    assert np.allclose(model.predict(X[:7]), mean)


def _largest_final(grid):
    rows = grid.rows(LARGEST, final=True)
    return rows, grid.true(rows)


def test_joint_law_recovers_exponents_transfer_and_floor():
    grid = make_grid(joint_truth, n_mixtures=8, points=5)
    train = ~grid.rows(LARGEST)
    for i in range(M):
        law = JointLaw(domain=i, n_bootstrap=0).fit(grid.X[train], grid.Y[train, i])
        p = law.params()
        assert law.mode_ == "free"
        assert p["beta"] == pytest.approx(JOINT["beta"][i], abs=0.03)
        assert p["alpha"] == pytest.approx(JOINT["alpha"][i], abs=0.06)
        assert p["E"] * law.y_ref_ == pytest.approx(JOINT["E"][i], rel=0.05)
        assert np.allclose(law.transfer(), JOINT["v"][i], atol=0.05)
        rows, truth = _largest_final(grid)
        pred = law.predict(grid.X[rows])
        assert np.max(np.abs(pred / truth[:, i] - 1)) < 0.01


def test_bimix_law_recovers_its_exponents():
    grid = make_grid(bimix_truth, n_mixtures=8, points=5)
    train = ~grid.rows(LARGEST)
    for i in range(M):
        law = BiMixLaw(domain=i, n_bootstrap=0).fit(grid.X[train], grid.Y[train, i])
        p = law.params()
        assert p["beta"] == pytest.approx(BIMIX["beta"], abs=0.03)
        assert p["gamma"] == pytest.approx(BIMIX["gamma"], abs=0.05)
        assert p[f"alpha{i}"] == pytest.approx(BIMIX["alpha"][i, i], abs=0.05)
        rows, truth = _largest_final(grid)
        assert np.max(np.abs(law.predict(grid.X[rows]) / truth[:, i] - 1)) < 0.015


def test_capacity_law_recovers_its_exponents_and_split():
    grid = make_grid(capacity_truth, n_mixtures=8, points=5)
    train = ~grid.rows(LARGEST)
    law = CapacityLaw(n_bootstrap=0, n_starts=3).fit(grid.X[train], grid.Y[train])
    p = law._unpack(law.theta_, M)
    assert np.allclose(p["a"], CAPACITY["a"], atol=0.03)
    assert np.allclose(p["b"], CAPACITY["b"], atol=0.1)
    assert np.allclose(p["E"] * law.y_ref_, CAPACITY["E"], rtol=0.15)
    rows, truth = _largest_final(grid)
    error = np.abs(law.predict_targets(grid.X[rows]) / truth - 1)
    assert error.mean() < 0.01 and error.max() < 0.03


def test_capacity_split_meets_the_budget_and_kkt():
    rng = np.random.default_rng(3)
    h = rng.dirichlet(np.full(5, 0.5), size=200)
    h[h < 0.02] = 0.0
    h /= h.sum(axis=1, keepdims=True)
    n = rng.normal(0.0, 1.0, size=200)
    c, b, H = rng.uniform(0.2, 2.0, 5), rng.uniform(0.1, 1.5, 5), 0.005
    x = allocate(h, n, c, b, H)
    assert np.allclose(x.sum(axis=1), np.exp(n) + 4 * H, rtol=1e-9)
    assert np.all(x >= H * (1 - 1e-12))
    # KKT: every domain above its floor has the same marginal value h c b x^(-b-1)
    marginal = h * c * b * x ** (-b - 1)
    for row, above in zip(marginal, x > H * 1.001, strict=True):
        if above.sum() > 1:
            assert np.ptp(np.log(row[above])) < 1e-6


def test_nested_law_recovers_step_exponents_and_mixture_ranking():
    grid = make_grid(nested_truth, n_mixtures=8, points=5)
    train = ~grid.rows(LARGEST)
    law = NestedLaw(n_bootstrap=0).fit(grid.X[train], grid.Y[train, 0])
    assert law.steps_[:, 2].mean() == pytest.approx(NESTED["beta"], abs=0.03)
    mixtures, losses = law.mixture_losses(LARGEST, grid.X[grid.rows(LARGEST)][:, -1].max())
    truth = nested_truth(mixtures, np.full(len(mixtures), LARGEST), np.full(len(mixtures), 8e6))
    error = np.abs(losses / truth[:, 0] - 1)
    assert error.mean() < 0.01 and error.max() < 0.02
    t = law._stage(LARGEST, 8e6)[0].t_
    assert np.corrcoef(t, NESTED["t"])[0, 1] > 0.95  # the mixing law's direction


LAWS = [
    ("joint", joint_truth),
    ("bimix", bimix_truth),
    ("capacity", capacity_truth),
    ("nested", nested_truth),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,truth", LAWS)
def test_intervals_cover_the_truth_at_about_the_nominal_rate(name, truth):
    """Over several noisy grids, the 95% bootstrap interval at the largest size (extrapolated)
    covers the noiseless objective at roughly its rate, and is tight enough to mean something."""
    covered, widths = [], []
    for seed in range(4):
        grid = make_grid(truth, n_mixtures=8, points=5, seed=seed)
        train = ~grid.rows(LARGEST)
        model = make_law(name, n_bootstrap=24).fit(grid.X[train], grid.Y[train])
        rows, clean = _largest_final(grid)
        mean, std = model.predict(grid.X[rows], return_std=True)
        objective = clean.mean(axis=1)
        covered.extend(np.abs(mean - objective) <= 1.96 * std)
        widths.extend(std / objective)
    assert 0.75 <= np.mean(covered) <= 1.0
    assert np.median(widths) < 0.02


def test_objective_shares_bootstrap_draws_across_targets():
    grid = make_grid(joint_truth, n_mixtures=6, points=4)
    model = ScalingObjective("joint", [0.5, 0.3, 0.2], {"n_bootstrap": 6, "n_starts": 2})
    model.fit(grid.X, grid.Y)
    boots = model.predict_boot(grid.X[:5])
    per_target = np.array([m.predict_boot(grid.X[:5]) for m in model.models_])  # (t, B, n)
    assert boots.shape == (6, 5)
    assert np.allclose(boots, np.einsum("j,jbn->bn", [0.5, 0.3, 0.2], per_target))
    assert [m.domain for m in model.models_] == [0, 1, 2]
    _, std = model.predict(grid.X[:5], return_std=True)
    assert np.allclose(std, boots.std(axis=0))


def test_two_sizes_tie_the_exponents_and_still_extrapolate():
    grid = make_grid(joint_truth, sizes=SIZES[1:3] + SIZES[3:], n_mixtures=8, points=5)
    train = ~grid.rows(LARGEST)
    law = JointLaw(domain=0, n_bootstrap=0).fit(grid.X[train], grid.Y[train, 0])
    assert law.mode_ == "tied" and "alpha" not in law.params()
    rows, truth = _largest_final(grid)
    # the truth's alpha (0.35) and beta (0.3) differ: tying costs a little, not the ranking
    pred = law.predict(grid.X[rows])
    assert np.mean(np.abs(pred / truth[:, 0] - 1)) < 0.02
    assert np.corrcoef(pred, truth[:, 0])[0, 1] > 0.98


def test_capacity_law_recovers_its_floor_in_natural_units():
    """H is fitted in units of the geometric-mean size; converted back it is the truth's."""
    grid = make_grid(capacity_truth, n_mixtures=8, points=4)
    law = CapacityLaw(n_bootstrap=0, n_starts=3).fit(grid.X, grid.Y)
    H = law._unpack(law.theta_, M)["H"] * law.n_ref_ / N_REF
    assert CAPACITY["H"] / 2 < H < CAPACITY["H"] * 2


def test_targets_that_are_not_training_domains_learn_their_share():
    """An eval set is no training domain: its law learns which domains' tokens it feeds on
    (``target_domains`` None), beside a domain's own law; capacity refuses such targets."""
    grid = make_grid(joint_truth, n_mixtures=8, points=4)
    # targets: domain 2's loss, and an "eval set" whose truth is domain 0's loss
    Y = grid.Y[:, [2, 0]]
    model = ScalingObjective("joint", [0.5, 0.5], {"n_bootstrap": 0, "n_starts": 2}, [2, None])
    model.fit(grid.X, Y)
    assert [m.domain for m in model.models_] == [2, None]
    largest = grid.rows(SIZES[-1])
    truth = grid.true(largest)[:, [2, 0]]
    err = np.abs(model.predict_targets(grid.X[largest]) / truth - 1)
    assert err.max() < 0.05
    # the eval set's law found that domain 0's tokens are what it learns from
    assert int(np.argmax(model.models_[1].transfer())) == 0
    with pytest.raises(ScalingDataError, match="models the losses of the training domains"):
        make_law("capacity", [0.5, 0.5], [2, None])
    with pytest.raises(ScalingDataError, match="one training domain index"):
        ScalingObjective("joint", None, None, [0, 7]).fit(grid.X, Y)
