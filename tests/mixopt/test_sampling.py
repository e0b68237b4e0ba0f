import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace

DOMAINS = ("a", "b", "c", "d", "e")
NATURAL = np.array([0.5, 0.2, 0.15, 0.1, 0.05])


def test_samples_are_distinct_mixtures_and_deterministic():
    space = MixtureSpace.from_bounds(DOMAINS)
    sampler = DirichletSampler(space, NATURAL)
    a = sampler.sample(64, np.random.default_rng(3))
    b = sampler.sample(64, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (64, 5)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    assert len({tuple(np.round(r, 4)) for r in a}) == 64


def test_centre_follows_natural_distribution():
    space = MixtureSpace.from_bounds(DOMAINS)
    sampler = DirichletSampler(space, NATURAL, alpha_min=50, alpha_max=50, n_alphas=1)
    mean = sampler.sample(400, np.random.default_rng(0)).mean(axis=0)
    centre = NATURAL**0.5 / (NATURAL**0.5).sum()
    np.testing.assert_allclose(mean, centre, atol=0.02)


def test_small_alphas_give_sparse_mixtures_and_zeroes_tiny_weights():
    space = MixtureSpace.from_bounds(DOMAINS)
    sampler = DirichletSampler(space, NATURAL, alpha_min=0.05, alpha_max=0.05, n_alphas=1)
    w = sampler.sample(100, np.random.default_rng(1))
    assert (w == 0).any(axis=1).mean() > 0.5
    assert not ((w > 0) & (w < 2e-4)).any()


def test_exclude_skips_known_mixtures():
    space = MixtureSpace.from_bounds(DOMAINS)
    sampler = DirichletSampler(space, NATURAL)
    first = sampler.sample(10, np.random.default_rng(0))
    again = sampler.sample(10, np.random.default_rng(0), exclude=first)
    assert not {tuple(np.round(r, 4)) for r in first} & {tuple(np.round(r, 4)) for r in again}


bounds_strategy = st.lists(
    st.tuples(st.floats(0.0, 0.3), st.floats(0.05, 0.7)), min_size=5, max_size=5
)


@settings(max_examples=40, deadline=None)
@given(bounds=bounds_strategy, fixed=st.booleans(), seed=st.integers(0, 10_000))
def test_every_sample_and_candidate_respects_the_space(bounds, fixed, seed):
    pairs = {d: (min(lo, hi), max(lo, hi)) for d, (lo, hi) in zip(DOMAINS, bounds, strict=True)}
    lower = sum(lo for lo, _ in pairs.values())
    upper = sum(hi for _, hi in pairs.values())
    if lower > 1 or upper < 1:
        return  # infeasible spaces are rejected elsewhere
    fixed_weights = {}
    if fixed:
        lo, _ = pairs.pop("e")
        fixed_weights = {"e": lo}
        if (
            sum(lo for lo, _ in pairs.values()) + lo > 1
            or sum(h for _, h in pairs.values()) + lo < 1
        ):
            return
    space = MixtureSpace.from_bounds(DOMAINS, pairs, fixed_weights)
    sampler = DirichletSampler(space, NATURAL)
    rng = np.random.default_rng(seed)
    samples = sampler.sample(12, rng)
    candidates = sampler.candidates(500, rng)
    assert samples.shape == (12, 5)
    assert space.contains(samples).all()
    assert space.contains(candidates).all()


def test_a_space_with_one_mixture_is_reported_not_looped_on():
    from mixopt.errors import InfeasibleSpaceError

    space = MixtureSpace.from_bounds(DOMAINS, {d: (0.0, 0.2) for d in DOMAINS})  # only uniform
    sampler = DirichletSampler(space, NATURAL)
    with pytest.raises(InfeasibleSpaceError, match="holds only 1 new distinct mixture"):
        sampler.sample(4, np.random.default_rng(0))
