"""Every registered predictor honours scikit-learn's estimator contract and ranks mixtures."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from mixopt.errors import MixoptError
from mixopt.predictors import available_predictors, make_predictor


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A mixing-law-like target: falls with log of domain 0's share, rises with domain 1's."""
    rng = np.random.default_rng(seed)
    X = rng.dirichlet(np.full(5, 0.7), size=n)
    y = 3.0 + np.exp(-3 * X[:, 0]) + 0.5 * X[:, 1] ** 2 + 0.01 * rng.normal(size=n)
    return X, y


@pytest.mark.parametrize("name", available_predictors())
def test_estimator_contract(name):
    X, y = synthetic(48)
    model = make_predictor(name)
    # __init__ stores hyperparameters only: get_params round-trips, clone works before fitting
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict(X)
    assert model.fit(X, y) is model
    learned = [k for k in vars(model) if k.endswith("_") and not k.startswith("_")]
    assert learned, "fit must leave learned state in attributes ending in _"
    assert model.predict(X[:7]).shape == (7,)
    assert clone(model).get_params() == model.get_params()  # fitting did not change them
    if getattr(model, "has_std", False):
        mean, std = model.predict(X[:7], return_std=True)
        assert mean.shape == std.shape == (7,)
        assert np.all(std >= 0)


@pytest.mark.parametrize("name", available_predictors())
def test_predictors_rank_held_out_mixtures(name):
    X, y = synthetic(120)
    X_test, y_test = synthetic(80, seed=1)
    predicted = make_predictor(name).fit(X, y).predict(X_test)
    rho = np.corrcoef(np.argsort(np.argsort(predicted)), np.argsort(np.argsort(y_test)))[0, 1]
    floor = 0.6 if name in ("linear", "quadratic") else 0.85
    assert rho > floor


def test_lightgbm_splits_with_a_small_search():
    X, y = synthetic(16)
    model = make_predictor("lightgbm").fit(X, y)
    assert model.min_child_samples_ == 2
    assert np.std(model.predict(X)) > 0  # a constant prediction would mean no split happened


def test_unknown_predictor_and_parameter_are_named():
    with pytest.raises(MixoptError, match="unknown predictor 'xgb'; available: auto, "):
        make_predictor("xgb")
    with pytest.raises(MixoptError, match="predictor 'gp' has no parameter 'depth'"):
        make_predictor("gp", depth=3)
