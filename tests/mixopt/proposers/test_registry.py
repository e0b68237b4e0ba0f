"""The strategy registry and the contract every registered proposer keeps: built from its typed
options, proposing continuously and over a candidate set, deterministic, with exact state."""

import json

import numpy as np
import pytest

from mixopt.proposers import (
    STRATEGIES,
    Candidates,
    OptionsError,
    get_strategy,
    make_proposer,
    strategy_names,
)
from mixopt.proposers.bo import BOOptions
from mixopt.proposers.pareto import Constraint, ParetoOptions
from mixopt.proposers.regmix import RegMixOptions
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace
from mixopt.testing import synthetic_losses

DOMAINS = ("a", "b", "c")
WEIGHTS = (1 / 3, 1 / 3, 1 / 3)

# small, fast settings of every registered strategy (a new strategy adds its line here)
OPTIONS: dict[str, dict] = {
    "bo": {"raw_samples": 32, "num_restarts": 2, "candidates": 500, "timeout_s": None},
    "regmix": {"predictor": "linear", "candidates": 2000, "top_k": 16, "n_bootstrap": 2},
    "law": {"candidates": 2000, "n_starts": 2, "n_bootstrap": 2},
    "pareto": {"predictor": "linear", "candidates": 2000, "constraints": (Constraint(0, 9.0),)},
    "mfbo": {"levels": (1.0, 8.0), "candidates": 300},
    "random": {},
}


def test_every_registered_strategy_is_covered_here():
    assert set(OPTIONS) == set(STRATEGIES)


def sampler() -> DirichletSampler:
    return DirichletSampler(MixtureSpace.from_bounds(DOMAINS, {"a": (0.0, 0.8)}), np.full(3, 1 / 3))


def targets(X: np.ndarray) -> np.ndarray:
    rows = [synthetic_losses(dict(zip(DOMAINS, x, strict=True))) for x in X]
    return np.array([[r[f"val_loss/{d}"] for d in DOMAINS] for r in rows])  # (n, 3)


def told(strategy: str, n: int = 10):
    """A proposer of ``strategy`` told ``n`` observations (mfbo: a third at the target)."""
    proposer = make_proposer(
        strategy, sampler(), seed=3, target_weights=WEIGHTS, **OPTIONS[strategy]
    )
    X = sampler().sample(n, np.random.default_rng(0))
    T = targets(X)
    y = T @ np.array(WEIGHTS)
    if proposer.n_levels > 1:
        levels = (np.arange(n) % 3 == 0).astype(int)  # level 1 (the target) every third row
        y = np.where(levels == 1, y, y + 0.4)
        proposer.tell(X, y, T, levels=levels, costs=np.where(levels == 1, 8.0, 1.0))
    else:
        proposer.tell(X, y, T)
    return proposer


def candidate_set(strategy: str) -> Candidates:
    X = sampler().sample(25, np.random.default_rng(11))
    if OPTIONS[strategy].get("levels"):
        return Candidates(X, levels=np.arange(25) % 2)
    return Candidates(X)


# ----------------------------------------------------------------------------------- registry


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(OptionsError, match=r"unknown strategy 'sigopt'; available: bo, regmix"):
        make_proposer("sigopt", sampler())
    with pytest.raises(ValueError, match="unknown strategy"):  # a ValueError for pydantic
        get_strategy("sigopt")


def test_flags_say_what_a_strategy_needs():
    assert strategy_names(fidelities=False, constraints=False) == ["bo", "regmix", "law", "random"]
    assert strategy_names(fidelities=True) == ["mfbo"]
    assert strategy_names(constraints=True) == ["pareto"]
    assert [s.name for s in STRATEGIES.values() if s.takes_predictor] == ["regmix"]
    assert get_strategy("law").proposer_class().__name__ == "LawProposer"


@pytest.mark.parametrize(
    ("strategy", "options", "message"),
    [
        ("bo", {"num_restarts": 0}, r"BOOptions\.num_restarts: must be >= 1, got 0"),
        ("bo", {"timeout_s": -1.0}, r"BOOptions\.timeout_s: must be > 0"),
        ("bo", {"seed": 1.5}, r"BOOptions\.seed: must be an integer"),
        ("bo", {"restarts": 3}, r"BOOptions: unknown option 'restarts'; its options: seed, "),
        ("regmix", {"predictor": "oracle"}, r"RegMixOptions\.predictor: unknown predictor 'orac"),
        ("regmix", {"candidates": 10, "top_k": 20}, r"top_k: 20 exceeds candidates \(10\)"),
        ("law", {"target_weights": []}, r"LawOptions\.target_weights: at least one weight"),
        ("law", {"target_weights": [1.0, np.nan]}, r"target_weights: must be finite"),
        ("pareto", {"constraints": ({"index": 0},)}, r"constraints\.0: must be a Constraint"),
        (
            "pareto",
            {"constraints": (Constraint(3, 1.0),), "target_weights": (0.5, 0.5)},
            r"ParetoOptions\.constraints\.0\.index: 3 out of range for 2 targets",
        ),
        ("mfbo", {"levels": (1.0, 1.0)}, r"MFBOOptions\.levels: every cheaper fidelity"),
        ("mfbo", {"levels": "cheap"}, r"MFBOOptions\.levels: must be a sequence of numbers"),
        ("mfbo", {}, r"MFBOOptions: .*'levels'"),
    ],
)
def test_typed_options_name_what_is_wrong(strategy, options, message):
    with pytest.raises(OptionsError, match=message):
        make_proposer(strategy, sampler(), **options)


def test_options_instances_and_mappings_are_both_accepted():
    regmix = make_proposer("regmix", sampler(), RegMixOptions(top_k=4, candidates=100))
    assert regmix.options == RegMixOptions(top_k=4, candidates=100)
    merged = make_proposer("regmix", sampler(), {"top_k": 4, "candidates": 100}, seed=7)
    assert merged.options == RegMixOptions(top_k=4, candidates=100, seed=7)
    pareto = make_proposer("pareto", sampler(), constraints=[Constraint(0, 1.0)])
    assert isinstance(pareto.options, ParetoOptions) and pareto.options.constraints[0].limit == 1
    with pytest.raises(OptionsError, match="expected LawOptions, got BOOptions"):
        make_proposer("law", sampler(), BOOptions())
    with pytest.raises(AttributeError, match="cannot assign to field 'top_k'"):
        regmix.options.top_k = 8  # nobody configures a proposer after construction


# ----------------------------------------------------------------------------------- contract


@pytest.mark.parametrize("strategy", list(OPTIONS))
def test_continuous_proposals_are_in_the_space_and_deterministic(strategy):
    """Three proposers in the same state (one restored from another's JSON state, one told the
    same observations afresh) propose the same batch, inside the space."""
    first = told(strategy)
    state = json.loads(json.dumps(first.state_dict()))
    restored = make_proposer(
        strategy, sampler(), seed=3, target_weights=WEIGHTS, **OPTIONS[strategy]
    )
    restored.load_state_dict(state)
    assert restored.state_dict() == first.state_dict()
    fresh = told(strategy)
    batches = [p.propose(2) for p in (first, restored, fresh)]
    X = batches[0].X
    assert X.shape == (2, 3) and batches[0].index is None
    assert sampler().space.contains(X, tol=1e-6).all()
    assert (batches[0].levels is None) == (first.n_levels == 1)
    for other in batches[1:]:
        np.testing.assert_array_equal(other.X, X)
        assert (other.levels is None) == (batches[0].levels is None)
        if other.levels is not None:
            assert other.levels.tolist() == batches[0].levels.tolist()  # type: ignore[union-attr]
    assert first.state_dict()["asked"] == state["asked"] + 1


@pytest.mark.parametrize("strategy", list(OPTIONS))
def test_proposals_over_a_candidate_set_are_distinct_rows_of_it(strategy):
    first = told(strategy)
    restored = make_proposer(
        strategy, sampler(), seed=3, target_weights=WEIGHTS, **OPTIONS[strategy]
    )
    restored.load_state_dict(first.state_dict())
    candidates = candidate_set(strategy)
    batch = first.propose(4, candidates=candidates)
    assert batch.index is not None and len(set(batch.index.tolist())) == 4
    np.testing.assert_array_equal(batch.X, candidates.X[batch.index])
    if candidates.levels is not None:
        assert batch.levels is not None
        assert batch.levels.tolist() == candidates.levels[batch.index].tolist()
    again = restored.propose(4, candidates=candidates)
    assert again.index is not None and again.index.tolist() == batch.index.tolist()
    # a set smaller than the batch: all of it, once each
    small = Candidates(
        candidates.X[:2], None if candidates.levels is None else candidates.levels[:2]
    )
    assert sorted(first.propose(4, candidates=small).index.tolist()) == [0, 1]  # type: ignore[union-attr]


def test_single_fidelity_proposers_refuse_other_levels():
    proposer = told("bo")
    X = sampler().sample(2, np.random.default_rng(1))
    with pytest.raises(ValueError, match=r"single-fidelity; .* got level\(s\) \[1\]"):
        proposer.tell(X, np.ones(2), levels=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"candidates: BOProposer is single-fidelity"):
        proposer.propose(1, candidates=Candidates(X, levels=np.array([1, 1])))
    proposer.tell(X, np.ones(2), levels=np.array([0, 0]))  # the target level is fine
    assert proposer.n_observed == 12


def test_bad_tells_and_states_are_clear():
    proposer = make_proposer("random", sampler())
    with pytest.raises(ValueError, match=r"X must be \(2, 3\) for 2 values of y, got \(2, 4\)"):
        proposer.tell(np.full((2, 4), 0.25), np.ones(2))
    with pytest.raises(ValueError, match="3 target column"):
        make_proposer("law", sampler(), target_weights=(1.0, 1.0)).tell(
            np.full((1, 3), 1 / 3), np.ones(1), np.ones((1, 3))
        )
    with pytest.raises(ValueError, match="a BOProposer's state cannot be loaded into a Random"):
        proposer.load_state_dict(told("bo").state_dict())
    with pytest.raises(ValueError, match=r"candidates\.X: 2 columns, the space has 3 domains"):
        proposer.propose(1, candidates=Candidates(np.full((3, 2), 0.5)))
