"""The Pareto strategy: the front is right, and the guard rails hold."""

import numpy as np
import pytest

from mixopt.proposers.pareto import Constraint, ParetoProposer, pareto_mask
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace
from mixopt.testing import synthetic_losses

DOMAINS = ("a", "b", "c")


def test_pareto_mask_keeps_exactly_the_non_dominated_rows():
    values = np.array([[1, 5], [2, 2], [3, 1], [3, 3], [1, 5], [4, 4], [0.5, 6]])
    assert pareto_mask(values).tolist() == [True, True, True, False, True, False, True]
    rng = np.random.default_rng(0)
    random = rng.normal(size=(300, 3))
    mask = pareto_mask(random)
    for i in np.flatnonzero(mask):  # brute force: nobody dominates a kept row
        others = np.delete(random, i, axis=0)
        assert not np.any(np.all(others <= random[i], axis=1) & np.any(others < random[i], axis=1))
    for i in np.flatnonzero(~mask):
        assert np.any(np.all(random <= random[i], axis=1) & np.any(random < random[i], axis=1))


def _targets(X: np.ndarray) -> np.ndarray:
    rows = [synthetic_losses(dict(zip(DOMAINS, x, strict=True))) for x in X]
    return np.array([[r[f"val_loss/{d}"] for d in DOMAINS] for r in rows])


def test_the_recommendation_respects_a_guard_rail_that_binds():
    space = MixtureSpace.from_bounds(DOMAINS)
    sampler = DirichletSampler(space, np.full(3, 1 / 3))
    X = sampler.sample(30, np.random.default_rng(0))
    Y = _targets(X)
    weights = np.full(3, 1 / 3)  # primary: mean loss

    free = ParetoProposer(sampler, seed=0, target_weights=weights)
    free.tell(X, Y @ weights, targets=Y)
    unconstrained = free.recommend().weights
    loss_a = _targets(unconstrained[None])[0, 0]

    limit = loss_a - 0.05  # demand a lower loss on domain a than the free optimum gives
    bound = ParetoProposer(
        sampler, seed=0, target_weights=weights, constraints=[Constraint(0, limit, "val_loss/a")]
    )
    bound.tell(X, Y @ weights, targets=Y)
    rec = bound.recommend()
    true = _targets(rec.weights[None])[0]
    assert true[0] <= limit + 0.02  # the guard rail holds (up to the model's error)
    assert rec.weights[0] > unconstrained[0]  # by giving domain a more weight
    assert true @ weights >= _targets(unconstrained[None])[0] @ weights - 1e-3  # at a price
    assert "within the constraints" in rec.method
    assert len(bound.front_) > 5 and all(len(p["objectives"]) == 2 for p in bound.front_)
    batch = bound.ask(4)
    assert batch.shape == (4, 3) and space.contains(batch).all()


def test_needs_per_target_values():
    sampler = DirichletSampler(MixtureSpace.from_bounds(DOMAINS), np.full(3, 1 / 3))
    proposer = ParetoProposer(sampler)
    X = sampler.sample(5, np.random.default_rng(1))
    proposer.tell(X, np.ones(5))
    with pytest.raises(ValueError, match="per-target values"):
        proposer.ask(1)


def test_the_report_says_which_guard_rail_no_mixture_meets():
    from mixopt.proposers.base import ReportContext

    space = MixtureSpace.from_bounds(DOMAINS)
    sampler = DirichletSampler(space, np.full(3, 1 / 3))
    X = sampler.sample(20, np.random.default_rng(1))
    Y = _targets(X)
    weights = np.full(3, 1 / 3)
    reachable = Constraint(1, float(Y[:, 1].max()) + 1.0, "val_loss/b")
    impossible = Constraint(0, float(Y[:, 0].min()) - 1.0, "val_loss/a")
    proposer = ParetoProposer(
        sampler,
        seed=0,
        target_weights=weights,
        candidates=2000,
        constraints=[reachable, impossible],
    )
    assert proposer.report() == {}  # nothing told yet
    proposer.tell(X, Y @ weights, targets=Y)
    rec = proposer.recommend()
    names = [f"val_loss/{d}" for d in DOMAINS]
    report = proposer.report(ReportContext(names))
    chosen = report["chosen"]
    assert not chosen["feasible"] and chosen["meets"] == [True, False]
    assert chosen["weights"] == pytest.approx(dict(zip(DOMAINS, rec.weights, strict=True)))
    assert chosen["predicted"]["objective"] == pytest.approx(rec.predicted)
    assert chosen["violation"] == pytest.approx(
        chosen["predicted"]["val_loss/a"] - impossible.limit
    )
    assert "no simulated mixture meets val_loss/a <=" in chosen["reason"]
    assert "val_loss/b" not in chosen["reason"]
    assert [g["any_simulated_meets"] for g in report["guard_rails"]] == [True, False]
    # the least violating mixture: the lowest predicted val_loss/a on the front
    front = report["front"]
    assert sum(p["chosen"] for p in front) == 1 and report["feasible_simulated"] == 0
    lowest = min(p["predicted"]["val_loss/a"] for p in front)
    assert next(p for p in front if p["chosen"])["predicted"]["val_loss/a"] == pytest.approx(lowest)
