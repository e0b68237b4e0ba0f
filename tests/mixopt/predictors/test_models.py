"""Behaviour specific to each predictor family."""

import numpy as np
import pytest

from mixopt.predictors import make_predictor
from mixopt.predictors.cv import cross_val_predict, score
from mixopt.predictors.features import log_weights, pairwise_products

from .test_contract import synthetic


def test_log_weights_map_the_unit_interval_onto_itself():
    x = np.array([[0.0, 1.0, 0.5]])
    out = log_weights(x)
    assert out[0, 0] == pytest.approx(0.0) and out[0, 1] == pytest.approx(1.0)
    assert 0.8 < out[0, 2] < 1.0  # log scale stretches the small weights
    assert pairwise_products(np.array([[1.0, 2.0, 3.0]])).tolist() == [[1, 2, 3, 4, 6, 9]]


def test_mixing_law_recovers_its_own_parameters():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(4), size=200)
    t = np.array([-3.0, 0.5, 0.2, 0.0])
    y = 2.0 + 1.5 * np.exp(X @ t)
    law = make_predictor("mixing_law").fit(X, y)
    np.testing.assert_allclose(law.predict(X), y, atol=2e-3)
    # t is identified only up to a constant shift (Σw = 1 folds it into k)
    np.testing.assert_allclose(law.t_ - law.t_.mean(), t - t.mean(), atol=0.05)


def test_mixing_law_shrugs_off_a_diverged_run():
    X, y = synthetic(80)
    spoiled = y.copy()
    spoiled[3] = 50.0  # one proxy diverged
    clean = make_predictor("mixing_law").fit(X, y).predict(X)
    robust = make_predictor("mixing_law").fit(X, spoiled).predict(X)
    assert np.median(np.abs(robust - clean)) < 0.05


def test_gp_intervals_are_calibrated_on_held_out_rows():
    X, y = synthetic(150)
    pred, std = cross_val_predict(make_predictor("gp"), X, y, k=5)
    scores = score(y, pred, std)
    assert 0.5 < scores.coverage68 < 0.9
    assert scores.coverage95 > 0.85


def test_gp_uncertainty_grows_away_from_the_data():
    X, y = synthetic(60)
    gp = make_predictor("gp").fit(X, y)
    _, near = gp.predict(X[:5], return_std=True)
    corner = np.eye(5)[[0]]
    _, far = gp.predict(corner, return_std=True)
    assert far[0] > near.mean()


def test_auto_explains_its_choice_and_beats_linear():
    X, y = synthetic(80)
    auto = make_predictor("auto").fit(X, y)
    assert set(auto.cv_scores_) >= {"gp", "loglinear", "lightgbm", "mixing_law"}
    best_single = max(v for k, v in auto.cv_scores_.items() if "+" not in k)
    assert auto.cv_scores_[auto.choice_] >= best_single
    assert sum(auto.weights_.values()) == pytest.approx(1.0)
    X_test, y_test = synthetic(100, seed=2)
    auto_rho = score(y_test, auto.predict(X_test)).spearman
    linear_rho = score(y_test, make_predictor("linear").fit(X, y).predict(X_test)).spearman
    assert auto_rho > linear_rho


def test_auto_with_too_few_rows_falls_back_to_the_gp():
    X, y = synthetic(6)
    auto = make_predictor("auto").fit(X, y)
    assert auto.choice_ == "gp" and auto.cv_scores_ == {}
    mean, std = auto.predict(X, return_std=True)
    assert mean.shape == std.shape == (6,)


def test_ensemble_weights_follow_cross_validated_rank_correlation():
    X, y = synthetic(60)
    ensemble = make_predictor("ensemble", candidates=("gp", "linear")).fit(X, y)
    assert ensemble.weights_["gp"] > ensemble.weights_["linear"]
    assert sum(ensemble.weights_.values()) == pytest.approx(1.0)


def test_ridge_loo_penalty_matches_brute_force_leave_one_out():
    from mixopt.predictors.linear import ALPHA_GRID

    X, y = synthetic(40)
    chosen = make_predictor("quadratic").fit(X, y).alpha_

    def loo_error(alpha: float) -> float:
        errors = []
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            model = make_predictor("quadratic", alpha=alpha).fit(X[keep], y[keep])
            errors.append((model.predict(X[i : i + 1])[0] - y[i]) ** 2)
        return float(np.mean(errors))

    # the closed form refits the standardisation once, brute force per row: compare choices
    brute = min(ALPHA_GRID, key=loo_error)
    assert loo_error(chosen) <= loo_error(brute) * 1.02
    assert make_predictor("quadratic", alpha=0.5).fit(X, y).alpha_ == 0.5
    with pytest.raises(ValueError, match="alpha must be a number >= 0 or 'loo'"):
        make_predictor("quadratic", alpha="best").fit(X, y)
