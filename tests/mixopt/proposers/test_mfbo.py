"""Multi-fidelity BO: the fidelity choice follows cost (given or measured), the recommendation
is for the target fidelity, and the state survives a save/load."""

import numpy as np
import pytest

from mixopt.proposers import Candidates, OptionsError, make_proposer
from mixopt.proposers.mfbo import MFBOOptions, MultiFidelityBOProposer
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace
from mixopt.testing import synthetic_losses

DOMAINS = ("a", "b", "c")
LEVELS = [1.0, 8.0]  # a cheap proxy at 1/8 of the target's compute, then the target


def target_loss(X: np.ndarray) -> np.ndarray:
    rows = [synthetic_losses(dict(zip(DOMAINS, x, strict=True))) for x in X]
    return np.array([np.mean(list(r.values())) for r in rows])


def at_level(X: np.ndarray, level: int) -> np.ndarray:
    """The cheap proxy sees the same landscape, higher and slightly tilted."""
    y = target_loss(X)
    return y if level == 1 else y + 0.5 + 0.05 * X[:, 0]


def sampler() -> DirichletSampler:
    space = MixtureSpace.from_bounds(DOMAINS)
    return DirichletSampler(space, np.full(3, 1 / 3))


def told(n_cheap: int = 12, n_target: int = 3, **options) -> MultiFidelityBOProposer:
    s = sampler()
    proposer = make_proposer("mfbo", s, seed=0, levels=LEVELS, **options)
    assert isinstance(proposer, MultiFidelityBOProposer)
    rng = np.random.default_rng(0)
    X0 = s.sample(n_cheap, rng)
    proposer.tell(X0, at_level(X0, 0), levels=np.zeros(n_cheap, dtype=int))
    if n_target:
        X1 = s.sample(n_target, rng)
        proposer.tell(X1, at_level(X1, 1), levels=np.ones(n_target, dtype=int))
    return proposer


def test_ask_returns_distinct_feasible_mixtures_with_levels():
    proposer = told()
    batch = proposer.propose(4)
    mixtures, levels = batch.X, batch.levels
    assert levels is not None and batch.index is None
    assert mixtures.shape == (4, 3) and levels.shape == (4,)
    np.testing.assert_allclose(mixtures.sum(axis=1), 1.0)
    assert (mixtures >= 0).all()
    assert set(levels.tolist()) <= {0, 1}
    distances = [np.abs(a - b).sum() for i, a in enumerate(mixtures) for b in mixtures[i + 1 :]]
    assert min(distances) >= proposer.options.min_distance


def test_the_choice_of_fidelity_follows_cost():
    """Free target runs: mfbo takes the target; target runs 1000x dearer: the cheap proxy."""
    cheap_target = told(costs=[1.0, 1.0])
    assert cheap_target.propose(3).levels.tolist() == [1, 1, 1]
    dear_target = told(costs=[1.0, 1000.0])
    assert dear_target.propose(3).levels.tolist() == [0, 0, 0]


def test_measured_costs_replace_the_prior_and_drive_the_choice():
    """Costs told with the observations (e.g. wall seconds) take over from the FLOPs prior: a
    level's cost is its mean measured cost; a level without one is the prior scaled by the
    measured/prior ratio of the others."""
    s = sampler()
    rng = np.random.default_rng(0)
    X0, X1 = s.sample(12, rng), s.sample(3, rng)

    def proposer_with(cheap_s: float, target_s: float | None) -> MultiFidelityBOProposer:
        p = make_proposer("mfbo", s, seed=0, levels=LEVELS)
        assert isinstance(p, MultiFidelityBOProposer)
        p.tell(X0, at_level(X0, 0), levels=np.zeros(12, dtype=int), costs=np.full(12, cheap_s))
        costs = np.full(3, np.nan if target_s is None else target_s)
        p.tell(X1, at_level(X1, 1), levels=np.ones(3, dtype=int), costs=costs)
        return p

    unmeasured_target = proposer_with(2.0, None)  # 2 s per cheap run: target ≈ 2 * 8 s
    np.testing.assert_allclose(unmeasured_target.level_costs(), [2.0, 16.0])
    assert proposer_with(5.0, 5.0).propose(3).levels.tolist() == [1, 1, 1]
    dear = proposer_with(1.0, 1000.0)
    np.testing.assert_allclose(dear.level_costs(), [1.0, 1000.0])
    assert dear.propose(3).levels.tolist() == [0, 0, 0]


def test_over_a_candidate_set_each_row_keeps_its_level_and_cost():
    proposer = told()
    rng = np.random.default_rng(5)
    X = np.repeat(sampler().sample(15, rng), 2, axis=0)  # each mixture at both levels
    levels = np.tile([0, 1], 15)
    costs = np.where(levels == 1, 1000.0, 1.0)  # target rows dear: cheap rows win
    batch = proposer.propose(4, candidates=Candidates(X, levels=levels, costs=costs))
    assert batch.index is not None and len(set(batch.index.tolist())) == 4
    np.testing.assert_array_equal(batch.X, X[batch.index])
    assert batch.levels is not None and batch.levels.tolist() == levels[batch.index].tolist()
    assert set(batch.levels.tolist()) == {0}


def test_recommendation_is_at_the_target_fidelity_and_near_the_optimum():
    proposer = told(n_cheap=20, n_target=8)
    rec = proposer.recommend()
    assert rec.method.startswith("mfbo:") and "(8 at the target)" in rec.method
    np.testing.assert_allclose(rec.weights.sum(), 1.0)
    # the predicted value is on the target's scale, not the cheap proxy's (+0.5 higher)
    truth = float(target_loss(rec.weights[None])[0])
    assert rec.predicted == pytest.approx(truth, abs=0.1)
    assert rec.predicted_std is not None and rec.predicted_std > 0
    # better than most mixtures
    pool = sampler().sample(200, np.random.default_rng(1))
    assert truth <= np.quantile(target_loss(pool), 0.1)
    assert len(rec.evidence) == 28


def test_state_round_trip():
    proposer = told()
    proposer.propose(2)
    state = proposer.state_dict()
    again = make_proposer("mfbo", sampler(), seed=0, levels=LEVELS)
    again.load_state_dict(state)
    assert again.levels_.tolist() == proposer.levels_.tolist()
    assert again.state_dict() == state
    a, b = proposer.propose(2), again.propose(2)
    np.testing.assert_allclose(a.X, b.X)
    assert a.levels.tolist() == b.levels.tolist()


def test_bad_levels_and_observations():
    s = sampler()
    with pytest.raises(ValueError, match="at least two positive fidelities"):
        MultiFidelityBOProposer(s, levels=[1.0])
    with pytest.raises(ValueError, match="must cost less than the target"):
        MultiFidelityBOProposer(s, levels=[8.0, 1.0])
    with pytest.raises(ValueError, match="one positive cost per level"):
        MultiFidelityBOProposer(s, levels=[1.0, 2.0], costs=[1.0])
    with pytest.raises(OptionsError, match=r"MFBOOptions: .*levels"):
        make_proposer("mfbo", s)  # the levels are required
    assert MFBOOptions(levels=[1, 2]).levels == (1.0, 2.0)
    proposer = MultiFidelityBOProposer(s, levels=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"level\(s\) \[2\] out of range; levels are 0\.\.1"):
        proposer.tell(np.full((2, 3), 1 / 3), np.ones(2), levels=np.array([0, 2]))
    with pytest.raises(ValueError, match="costs must be one positive value"):
        proposer.tell(np.full((2, 3), 1 / 3), np.ones(2), costs=np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="needs at least 2 finished trials"):
        proposer.propose(1)
    # a plain tell is at the target; non-finite rows are dropped with their levels
    proposer.tell(np.full((2, 3), 1 / 3), np.array([1.0, np.nan]))
    assert proposer.levels_.tolist() == [1]


def test_co_kriging_learns_how_the_cheap_level_relates_to_the_target():
    """The cheap level is the target shifted up by 0.5 and slightly tilted: the fitted rho is
    near 1, and the prediction at the target, on the target's loss level, follows the truth at
    mixtures no trial saw."""
    proposer = told(n_cheap=30, n_target=8)
    model, means, scale = proposer._fit()
    rho = float(model.covar_module.rho.detach()[0])
    assert 0.5 < rho < 1.5
    X = sampler().sample(100, np.random.default_rng(3))
    rec_mean = means[1] - scale * model.posterior(proposer._at(X, 1).unsqueeze(-2)).mean
    pred = rec_mean.detach().numpy().reshape(-1)
    truth = target_loss(X)
    assert np.corrcoef(pred, truth)[0, 1] > 0.9
    assert np.mean(np.abs(pred - truth)) < 0.1


def test_a_target_share_of_the_cost_goes_to_the_target():
    """Cheap trials explore; at least ``target_share`` of the cost spent runs at the target."""
    proposer = told(n_cheap=12, n_target=0, costs=[1.0, 8.0], target_share=0.5)
    batch = proposer.propose(3)
    assert batch.levels is not None and batch.levels.tolist()[0] == 1  # 0 of 12 spent: short
    none = told(n_cheap=12, n_target=0, costs=[1.0, 8.0], target_share=0.0)
    free = none.propose(3).levels
    assert free is not None and 0 in free.tolist()


@pytest.mark.slow
def test_mfbo_beats_bo_at_equal_cost_on_a_correlated_cheap_fidelity():
    """A pool of mixtures at two fidelities (the cheap one: the target shifted and slightly
    tilted, at 1/10 of the cost): at the same spent cost, mfbo's best target trial is on
    average at least as good as single-fidelity bo's."""
    from mixopt.replay import Pool, ReplayConfig, replay, target_regret

    X = sampler().sample(120, np.random.default_rng(7))
    pool = Pool(
        np.vstack([X, X]),
        np.concatenate([at_level(X, 1), at_level(X, 0)]),
        fidelity=np.repeat([1.0, 0.1], len(X)),
        cost=np.repeat([1.0, 0.1], len(X)),
    )
    regrets: dict[str, list[float]] = {"bo": [], "mfbo": []}
    for seed in range(3):
        for name in regrets:
            config = ReplayConfig(
                budget=1000, initial=4, batch=2, strategy=name, seed=seed, budget_cost=5.0
            )
            result = target_regret(pool, replay(pool, config=config), config)
            assert result is not None and result.regret is not None
            regrets[name].append(result.regret)
    assert np.mean(regrets["mfbo"]) <= np.mean(regrets["bo"]) + 1e-9
