import numpy as np
import pytest

from mixopt.proposers import RandomProposer, RegMixProposer
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace
from mixopt.testing import synthetic_losses

DOMAINS = ("a", "b", "c", "d")


def _objective(X: np.ndarray) -> np.ndarray:
    return np.array(
        [
            np.mean(list(synthetic_losses(dict(zip(DOMAINS, row, strict=True))).values()))
            for row in X
        ]
    )


def _sampler(bounds=None) -> DirichletSampler:
    space = MixtureSpace.from_bounds(DOMAINS, bounds or {})
    return DirichletSampler(space, np.array([0.4, 0.3, 0.2, 0.1]))


def test_regmix_proposals_are_distinct_and_inside_bounds():
    sampler = _sampler({"a": (0.0, 0.3), "d": (0.05, 0.5)})
    proposer = RegMixProposer(sampler, candidates=5_000, top_k=50, n_bootstrap=2)
    X = sampler.sample(24, np.random.default_rng(0))
    proposer.tell(X, _objective(X))
    proposals = proposer.ask(4)
    assert proposals.shape == (4, 4)
    assert sampler.space.contains(proposals).all()
    assert len({tuple(np.round(p, 4)) for p in proposals}) == 4


def test_regmix_recommendation_beats_the_initial_design():
    sampler = _sampler()
    proposer = RegMixProposer(sampler, candidates=20_000, top_k=64, n_bootstrap=3)
    X = sampler.sample(32, np.random.default_rng(1))
    y = _objective(X)
    proposer.tell(X, y)
    rec = proposer.recommend()
    assert sampler.space.contains(rec.weights[None]).all()
    assert _objective(rec.weights[None])[0] < np.median(y)
    assert rec.predicted_std is not None and rec.predicted_std >= 0
    assert rec.evidence == list(range(32))
    assert len(rec.nearest) == 5


def test_state_round_trip_resumes_identically():
    sampler = _sampler()
    a = RegMixProposer(sampler, candidates=2_000, top_k=20, n_bootstrap=1, seed=5)
    X = sampler.sample(16, np.random.default_rng(2))
    a.tell(X, _objective(X))
    a.ask(2)
    b = RegMixProposer(sampler, candidates=2_000, top_k=20, n_bootstrap=1, seed=5)
    b.load_state_dict(a.state_dict())
    np.testing.assert_allclose(a.ask(3), b.ask(3))


def test_random_proposer_recommends_best_observed_and_never_repeats():
    sampler = _sampler()
    proposer = RandomProposer(sampler, seed=0)
    X = proposer.ask(8)
    y = _objective(X)
    proposer.tell(X, y)
    assert proposer.recommend().predicted == pytest.approx(y.min())
    again = proposer.ask(8)
    assert not {tuple(np.round(r, 4)) for r in X} & {tuple(np.round(r, 4)) for r in again}


def test_nan_observations_are_ignored_and_too_few_is_an_error():
    proposer = RegMixProposer(_sampler(), candidates=1_000, top_k=10)
    proposer.tell(np.eye(4)[:2], np.array([1.0, np.nan]))
    assert proposer.n_observed == 1
    with pytest.raises(ValueError, match="at least 2 finished trials"):
        proposer.ask(1)
