"""bo answers the same for the same options and observations, and leaves torch's state alone."""

import numpy as np
import pytest
import torch

from mixopt.proposers import make_proposer
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace

DOMAINS = ("a", "b", "c", "d")


def told(seed: int = 0):
    space = MixtureSpace.from_bounds(DOMAINS, {"a": (0.0, 0.6)}, {"d": 0.1})
    sampler = DirichletSampler(space, np.full(4, 0.25))
    X = sampler.sample(12, np.random.default_rng(seed))
    y = np.exp(X @ np.array([-3.0, -1.0, 0.5, 1.0])) + np.sin(5.0 * X[:, 1])
    proposer = make_proposer("bo", sampler, seed=seed)
    proposer.tell(X, y)
    return proposer


def pending(seed: int = 0) -> np.ndarray:
    space = MixtureSpace.from_bounds(DOMAINS, {"a": (0.0, 0.6)}, {"d": 0.1})
    return DirichletSampler(space, np.full(4, 0.25)).sample(2, np.random.default_rng(seed + 1))


def test_same_observations_same_batch_and_recommendation():
    first, second = told(), told()
    batch = first.ask(4, pending=pending())
    np.testing.assert_array_equal(batch, second.ask(4, pending=pending()))
    np.testing.assert_array_equal(first.recommend().weights, second.recommend().weights)
    assert len(np.unique(batch.round(6), axis=0)) == 4
    # the next proposal (seeded by the proposal count) repeats too
    np.testing.assert_array_equal(first.ask(4, pending=pending()), second.ask(4, pending=pending()))


def test_a_proposal_leaves_the_global_torch_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    told().ask(2, pending=pending())
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


def test_pending_mixtures_steer_the_proposal_and_are_checked():
    proposer = told()
    away = pending()
    np.testing.assert_array_equal(proposer.ask(3), told().ask(3))  # no pending: as before
    with_pending = told().ask(3, pending=away)
    assert not np.allclose(with_pending, told().ask(3))  # the pending points changed it
    with pytest.raises(ValueError, match="pending: mixtures of 4 domains"):
        proposer.ask(1, pending=np.ones((1, 3)) / 3)
    with pytest.raises(ValueError, match="finite"):
        proposer.ask(1, pending=np.full((1, 4), np.nan))
    space = MixtureSpace.from_bounds(DOMAINS)
    other = make_proposer("random", DirichletSampler(space, np.full(4, 0.25)), seed=0)
    other.tell(away, np.ones(2))
    with pytest.raises(ValueError, match="does not condition on pending mixtures"):
        other.ask(1, pending=away)
