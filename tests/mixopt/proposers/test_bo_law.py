"""BO and law proposers: constraints always hold, and both find a known law's optimum."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixopt.proposers import make_proposer
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace

DOMAINS = ("a", "b", "c", "d")
T = np.array([-4.0, -1.0, 0.5, 1.5])


def law(X: np.ndarray) -> np.ndarray:
    """A convex mixing law whose optimum on the simplex is interior: mean of two exp laws."""
    X = np.atleast_2d(X)
    return 2.0 + np.exp(X @ T) + 0.8 * np.exp(-3.0 * X[:, 1])


def optimum(space: MixtureSpace) -> float:
    """Brute force over a fine random sample of the space."""
    sampler = DirichletSampler(space, np.full(4, 0.25), alpha_min=0.3, alpha_max=30)
    return float(law(sampler.candidates(400_000, np.random.default_rng(9))).min())


def targets(X: np.ndarray) -> np.ndarray:
    """The two per-domain laws whose sum is ``law`` (what a job measures per domain)."""
    X = np.atleast_2d(X)
    return np.column_stack([1.0 + np.exp(X @ T), 1.0 + 0.8 * np.exp(-3.0 * X[:, 1])])


@pytest.mark.parametrize("strategy", ["bo", "law"])
def test_finds_the_optimum_of_a_known_law(strategy):
    space = MixtureSpace.from_bounds(DOMAINS, {"a": (0.0, 0.7)})
    sampler = DirichletSampler(space, np.full(4, 0.25))
    proposer = make_proposer(strategy, sampler, seed=0, target_weights=(1.0, 1.0))  # law = T @ 1
    X = sampler.sample(24, np.random.default_rng(0))
    proposer.tell(X, law(X), targets=targets(X))
    for _ in range(2):
        batch = proposer.ask(4)
        proposer.tell(batch, law(batch), targets=targets(batch))
    rec = proposer.recommend()
    best = optimum(space)
    assert space.contains(rec.weights[None]).all()
    assert law(rec.weights)[0] - best < 0.02 * (np.median(law(X)) - best)
    assert rec.predicted == pytest.approx(law(rec.weights)[0], abs=0.05)


bounds_strategy = st.fixed_dictionaries(
    {
        "a": st.tuples(st.just(0.0), st.floats(0.2, 0.6)),
        "b": st.tuples(st.floats(0.0, 0.2), st.just(1.0)),
    }
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bounds=bounds_strategy, fixed=st.booleans(), seed=st.integers(0, 1000))
def test_bo_proposals_respect_bounds_and_fixed_weights(bounds, fixed, seed):
    space = MixtureSpace.from_bounds(DOMAINS, bounds, {"d": 0.1} if fixed else {})
    sampler = DirichletSampler(space, np.full(4, 0.25))
    proposer = make_proposer("bo", sampler, seed=seed)
    X = sampler.sample(10, np.random.default_rng(seed))
    proposer.tell(X, law(X))
    batch = proposer.ask(3)
    assert batch.shape == (3, 4)
    assert space.contains(batch, tol=1e-6).all()
    if fixed:
        np.testing.assert_allclose(batch[:, 3], 0.1, atol=1e-9)
    rec = proposer.recommend()
    assert space.contains(rec.weights[None], tol=1e-6).all()
    assert rec.predicted_std is not None and rec.predicted_std >= 0


def test_law_proposer_on_the_objective_alone_finds_a_single_law_optimum():
    space = MixtureSpace.from_bounds(DOMAINS, {"a": (0.0, 0.6)})
    sampler = DirichletSampler(space, np.full(4, 0.25))
    proposer = make_proposer("law", sampler, seed=0)

    def single(X: np.ndarray) -> np.ndarray:
        return 2.0 + np.exp(np.atleast_2d(X) @ T)

    X = sampler.sample(20, np.random.default_rng(2))
    proposer.tell(X, single(X))
    rec = proposer.recommend()
    # exp(tᵀw) is smallest with a at its cap (t_a lowest) and the rest on b (t_b next)
    np.testing.assert_allclose(rec.weights, [0.6, 0.4, 0.0, 0.0], atol=0.02)


def test_law_proposals_respect_the_space():
    space = MixtureSpace.from_bounds(DOMAINS, {"c": (0.2, 0.5)}, {"d": 0.05})
    sampler = DirichletSampler(space, np.full(4, 0.25))
    proposer = make_proposer("law", sampler, seed=1)
    X = sampler.sample(16, np.random.default_rng(1))
    proposer.tell(X, law(X))
    batch = proposer.ask(3)
    assert space.contains(batch, tol=1e-6).all()
    np.testing.assert_allclose(batch[:, 3], 0.05, atol=1e-6)
