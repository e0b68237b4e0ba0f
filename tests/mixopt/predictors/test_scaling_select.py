"""The law selector, the target-scale optimum, and the errors bad input gets."""

import numpy as np
import pytest

from mixopt.errors import MixoptError
from mixopt.predictors.scaling import (
    CapacityLaw,
    JointLaw,
    NestedLaw,
    ScalingDataError,
    ScalingLawSelector,
    ScalingObjective,
    extrapolation_split,
    optimal_mixture_at,
    predict_at,
)
from mixopt.space import MixtureSpace
from tests.mixopt.predictors.scaling_data import (
    SIZES,
    TOKENS,
    M,
    bimix_truth,
    capacity_truth,
    joint_truth,
    make_grid,
    nested_truth,
)

TRUTHS = {
    "joint": joint_truth,
    "bimix": bimix_truth,
    "capacity": capacity_truth,
    "nested": nested_truth,
}


@pytest.mark.slow
@pytest.mark.parametrize("form", list(TRUTHS))
def test_selector_picks_the_form_the_data_came_from(form):
    grid = make_grid(TRUTHS[form], n_mixtures=8, points=5)
    selector = ScalingLawSelector(n_bootstrap=0, combine="select").fit(grid.X, grid.Y)
    assert selector.choice_ == form, selector.scores_
    assert selector.members_ == {form: 1.0}
    assert "largest" in selector.split_
    # averaged, the form the data came from carries the weight (the others err far more)
    average = ScalingLawSelector(n_bootstrap=0).fit(grid.X, grid.Y)
    assert next(iter(average.members_)) == form, average.scores_
    assert average.members_[form] > 0.5
    if form == "nested":  # one target: the capacity law needs every domain's loss
        assert "Y must be (n, m)" in selector.scores_["capacity"]["error"]


def test_average_weighs_members_by_inverse_squared_held_out_error():
    grid = make_grid(joint_truth, n_mixtures=6, points=4)
    noisy = grid.Y * np.exp(0.01 * np.random.default_rng(3).normal(size=grid.Y.shape))
    selector = ScalingLawSelector(candidates=("joint", "bimix"), n_bootstrap=4)
    selector.fit(grid.X, noisy)
    members = selector.members_
    assert set(members) <= {"joint", "bimix"} and sum(members.values()) == pytest.approx(1.0)
    assert list(members.values()) == sorted(members.values(), reverse=True)
    inverse = {n: selector.scores_[n]["mape"] ** -2.0 for n in ("joint", "bimix")}
    for name in members:
        assert members[name] == pytest.approx(inverse[name] / sum(inverse.values()))
        assert selector.scores_[name]["weight"] == members[name]
    X = grid.X[:5]
    expected = sum(w * selector.models_[n].predict(X) for n, w in members.items())
    mean, std = selector.predict(X, return_std=True)
    np.testing.assert_allclose(mean, expected)
    np.testing.assert_allclose(selector.predict_targets(X) @ np.full(M, 1 / M), expected)
    boots = selector.predict_boot(X)
    # draws from the members' mixture: each member's own fits, in proportion to its weight
    expected_draws = sum(max(1, round(w * 4 * len(members))) for w in members.values())
    assert boots.shape == (expected_draws, 5)
    np.testing.assert_allclose(std, boots.std(axis=0))
    assert np.all(np.isfinite(std))
    if len(members) == 2:  # the disagreement between the members is in the spread
        a, b = (selector.models_[n].predict(X) for n in members)
        assert np.all(std >= 0.5 * np.abs(a - b) * min(members.values()) - 1e-12)
    with pytest.raises(ScalingDataError, match="combine must be one of average, select"):
        ScalingLawSelector(combine="vote").fit(grid.X, grid.Y)


def test_extrapolation_split_holds_out_the_largest_scale():
    grid = make_grid(joint_truth, n_mixtures=4, points=4)
    train, test, how = extrapolation_split(grid.X)
    assert np.all(grid.X[test, -2] == SIZES[-1]) and not np.any(grid.X[train, -2] == SIZES[-1])
    two = make_grid(joint_truth, sizes=SIZES[:2], n_mixtures=4, points=4)
    train, test, how = extrapolation_split(two.X)
    assert np.all(two.X[test, -2] == SIZES[1]) and np.any(two.X[train, -2] == SIZES[1])
    assert np.all(two.X[test, -1] > TOKENS[SIZES[1]] / 2) and "later half" in how
    one = make_grid(joint_truth, sizes=SIZES[:1], n_mixtures=4, points=4)
    train, test, how = extrapolation_split(one.X)
    assert test.any() and train.any() and "one size" in how


def test_selector_reports_candidates_the_data_cannot_support():
    grid = make_grid(joint_truth, n_mixtures=5, points=4)
    rows = np.arange(len(grid.X)) % 4 >= 2  # the last two points of every run
    selector = ScalingLawSelector(candidates=("joint", "nested"), n_bootstrap=0)
    selector.fit(grid.X[rows], grid.Y[rows])
    assert selector.choice_ == "joint" and selector.members_ == {"joint": 1.0}
    assert "at least 3 points along each run" in selector.scores_["nested"]["error"]
    with pytest.raises(ScalingDataError, match="unknown candidate"):
        ScalingLawSelector(candidates=("joint", "magic")).fit(grid.X, grid.Y)


def test_optimum_at_the_target_scale_beats_the_proxy_scale_optimum_there():
    """Small domains are worth more at larger D: the law moves its optimum with the scale, and
    the mixture it recommends for the target is (truly) better there than the proxy's optimum."""
    grid = make_grid(joint_truth, n_mixtures=10, points=5)
    train = ~grid.rows(SIZES[-1])
    model = ScalingObjective("joint", law_params={"n_bootstrap": 8}).fit(
        grid.X[train], grid.Y[train]
    )
    space = MixtureSpace.from_bounds(["a", "b", "c"], {"a": (0.05, 0.8)})
    target = (1e9, 2e10)
    proxy = (SIZES[0], TOKENS[SIZES[0]])
    at_target = optimal_mixture_at(model, space, *target, n_candidates=2000)
    at_proxy = optimal_mixture_at(model, space, *proxy, n_candidates=2000)
    assert space.contains(at_target.weights[None])[0]
    assert at_target.predicted_std is not None and at_target.predicted_std > 0

    def true_objective(w, scale):
        return joint_truth(w[None], np.array([scale[0]]), np.array([scale[1]])).mean()

    # brute force over the space: the law's optimum is (nearly) the true one at the target
    rng = np.random.default_rng(0)
    pool = space.project(rng.dirichlet(np.ones(M), size=20000))
    best = min(true_objective(w, target) for w in pool)
    assert true_objective(at_target.weights, target) <= best + 0.003
    assert true_objective(at_target.weights, target) < true_objective(at_proxy.weights, target)
    assert np.abs(at_target.weights - at_proxy.weights).sum() > 0.02
    mean = predict_at(model, at_target.weights, *target)
    assert mean[0] == pytest.approx(at_target.predicted)


def test_one_size_cannot_extrapolate_in_n():
    grid = make_grid(joint_truth, sizes=SIZES[:1], n_mixtures=6, points=4)
    law = JointLaw(domain=0, n_bootstrap=0).fit(grid.X, grid.Y[:, 0])
    assert law.mode_ == "one_size"
    assert np.all(np.isfinite(law.predict(grid.X)))  # the fitted size, any D: fine
    other = grid.X.copy()
    other[:, -2] = SIZES[1]
    for model in (law, NestedLaw(n_bootstrap=0).fit(grid.X, grid.Y[:, 0])):
        with pytest.raises(ScalingDataError, match="extrapolation in N is impossible"):
            model.predict(other)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda X: X[:, :-1], "weights of row 0 sum to 0.666667"),
        (lambda X: X[:, :3], r"must be \(n, m \+ 2\)"),
        (lambda X: np.where(np.arange(X.shape[1]) == 0, np.nan, X), r"X\[0, 0\] is nan"),
        (lambda X: np.column_stack([X[:, :-2], -X[:, -2], X[:, -1]]), "N must be > 0"),
        (lambda X: np.column_stack([X[:, :-2] * 2, X[:, -2:]]), "row 0 sum to 2"),
    ],
)
def test_bad_inputs_get_clear_errors(change, message):
    grid = make_grid(joint_truth, n_mixtures=4, points=4)
    with pytest.raises(ScalingDataError, match=message):
        JointLaw().fit(change(grid.X), grid.Y[:, 0])
    assert issubclass(ScalingDataError, MixoptError) and issubclass(ScalingDataError, ValueError)


def test_bad_targets_and_too_little_data():
    grid = make_grid(joint_truth, n_mixtures=4, points=4)
    y = grid.Y[:, 0].copy()
    y[3] = -1.0
    with pytest.raises(ScalingDataError, match=r"y\[3\] is -1.0"):
        JointLaw().fit(grid.X, y)
    with pytest.raises(ScalingDataError, match="one loss per row"):
        JointLaw().fit(grid.X, grid.Y[:-1, 0])
    with pytest.raises(ScalingDataError, match="at least 3"):
        JointLaw().fit(grid.X[:4], grid.Y[:4, 0])  # one run
    with pytest.raises(ScalingDataError, match="domain=5"):
        JointLaw(domain=5).fit(grid.X, grid.Y[:, 0])
    with pytest.raises(ScalingDataError, match=r"Y must be \(n, m\)"):
        CapacityLaw().fit(grid.X, grid.Y[:, :2])
    law = JointLaw(n_bootstrap=0, n_starts=1).fit(grid.X, grid.Y[:, 0])
    wider = np.column_stack([grid.X[:, :1] / 2, grid.X[:, :1] / 2, grid.X[:, 1:]])
    with pytest.raises(ScalingDataError, match="4 mixture weights; the law was fitted with 3"):
        law.predict(wider)
    with pytest.raises(ScalingDataError, match="target scale must be finite"):
        predict_at(law, grid.X[:1, :M], 0.0, 1e6)
