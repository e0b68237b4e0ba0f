"""Repetition caps: the formula, infeasible budgets, and that sampling and proposing obey them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mixopt.data.caps import apply_caps, epochs_consumed, repetition_caps
from mixopt.errors import InfeasibleSpaceError, MixoptError
from mixopt.proposers import RandomProposer, RegMixProposer
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace

DOMAINS = ("web", "code", "math", "books")
TOKENS = {"web": 9_000_000, "code": 600_000, "math": 300_000, "books": 100_000}


def test_caps_formula_and_per_domain_epochs() -> None:
    caps = repetition_caps(TOKENS, 4_000_000, max_epochs=4, epochs={"books": 10, "code": None})
    assert caps.caps == pytest.approx(
        {"web": 1.0, "code": 0.6, "math": 0.3, "books": 0.25}  # 600k*4/4M, 300k*4/4M, 100k*10/4M
    )
    assert caps.epochs == {"web": 4.0, "code": 4.0, "math": 4.0, "books": 10.0}
    assert caps.supply == 9_000_000 * 4 + 600_000 * 4 + 300_000 * 4 + 100_000 * 10
    assert "books: 100,000 tokens x 10 epochs -> max weight 0.25" in caps.describe()
    with pytest.raises(ValueError, match="target_tokens must be > 0"):
        repetition_caps(TOKENS, 0)


def test_capped_space_lowers_upper_bounds_only() -> None:
    space = MixtureSpace.from_bounds(DOMAINS, {"code": (0.05, 0.5)})
    capped = apply_caps(space, repetition_caps(TOKENS, 4_000_000))
    np.testing.assert_allclose(capped.upper, [1.0, 0.5, 0.3, 0.1])
    np.testing.assert_allclose(capped.lower, space.lower)
    assert apply_caps(space, None) is space


def test_a_budget_the_domains_cannot_supply_is_an_error() -> None:
    space = MixtureSpace.from_bounds(DOMAINS)
    supply = sum(TOKENS.values()) * 4
    with pytest.raises(
        InfeasibleSpaceError,
        match=r"target\.tokens = 40,000,001 cannot be reached: within their epoch limits the "
        r"domains supply at most 40,000,000 tokens \(web 9,000,000 x 4, code 600,000 x 4, .*"
        r"lower target\.tokens to at most 40,000,000",
    ):
        apply_caps(space, repetition_caps(TOKENS, supply + 1))
    # exactly enough pins every weight to its cap: nothing is left to search
    with pytest.raises(InfeasibleSpaceError, match=r"leaves no room to search: .* sum to 1,"):
        apply_caps(space, repetition_caps(TOKENS, supply))
    apply_caps(space, repetition_caps(TOKENS, supply * 0.99))


def test_bounds_that_contradict_the_caps_name_the_domain() -> None:
    space = MixtureSpace.from_bounds(DOMAINS, {"books": (0.2, 0.5)})
    with pytest.raises(
        InfeasibleSpaceError,
        match=r"books >= 0\.2 but its repetition cap is 0\.1; .*target\.tokens = 4,000,000",
    ):
        apply_caps(space, repetition_caps(TOKENS, 4_000_000))
    fixed = MixtureSpace.from_bounds(DOMAINS, fixed={"math": 0.4})
    with pytest.raises(InfeasibleSpaceError, match=r"math >= 0\.4 but its repetition cap is 0\.3"):
        apply_caps(fixed, repetition_caps(TOKENS, 4_000_000))
    # the supply suffices, but an upper bound on the big domain leaves too little room
    bounded = MixtureSpace.from_bounds(DOMAINS, {"web": (0.0, 0.2)})
    with pytest.raises(
        InfeasibleSpaceError,
        match=r"with the repetition caps the maximum weights sum to 0\.8667 < 1 \(web<=0\.2, "
        r"code<=0\.4 \(repetition cap\)",
    ):
        apply_caps(bounded, repetition_caps(TOKENS, 6_000_000))


def test_with_caps_rejects_unknown_domains() -> None:
    with pytest.raises(MixoptError, match=r"unknown domain\(s\) \['nope'\]"):
        MixtureSpace.from_bounds(DOMAINS).with_caps({"nope": 0.5})


def test_epochs_consumed() -> None:
    epochs = epochs_consumed({"web": 0.5, "code": 0.5}, 1_200_000, {**TOKENS, "empty": 0})
    assert epochs == pytest.approx(
        {"web": 600_000 / 9e6, "code": 1.0, "math": 0.0, "books": 0.0, "empty": 0.0}
    )
    assert epochs_consumed({"empty": 1.0}, 10, {"empty": 0})["empty"] == float("inf")


token_counts = st.lists(st.integers(1_000, 10_000_000), min_size=4, max_size=4)


@settings(max_examples=40, deadline=None)
@given(
    counts=token_counts,
    budget_share=st.floats(0.05, 0.98),  # 1.0 pins the mixture (tested above)
    epochs=st.lists(st.sampled_from([None, 1.0, 2.0, 8.0]), min_size=4, max_size=4),
    lower=st.lists(st.floats(0.0, 0.1), min_size=4, max_size=4),
    seed=st.integers(0, 10_000),
)
# caps summing to 1.03: projections of draws pile up on a few vertices of the space
@example(
    counts=[20816, 1000, 205787, 144677],
    budget_share=0.96875,
    epochs=[None, None, None, None],
    lower=[0.0, 0.0, 0.0, 0.0],
    seed=0,
)
def test_every_sampled_and_proposed_mixture_obeys_bounds_and_caps(
    counts: list[int],
    budget_share: float,
    epochs: list[float | None],
    lower: list[float],
    seed: int,
) -> None:
    tokens = dict(zip(DOMAINS, counts, strict=True))
    per_domain = dict(zip(DOMAINS, epochs, strict=True))
    supply = sum(n * (e or 4.0) for n, e in zip(counts, epochs, strict=True))
    caps = repetition_caps(tokens, supply * budget_share, 4.0, per_domain)
    space = MixtureSpace.from_bounds(
        DOMAINS, {d: (lo, 1.0) for d, lo in zip(DOMAINS, lower, strict=True)}
    )
    try:
        capped = apply_caps(space, caps)
    except InfeasibleSpaceError as error:
        # only when a lower bound exceeds its cap (the supply suffices by construction), or the
        # budget takes (almost) all the supply, which pins the mixture to the caps
        room = sum(caps.caps.values()) - 1
        assert any(lo > caps.caps[d] for d, lo in zip(DOMAINS, lower, strict=True)) or (
            room < 1e-3 and "leaves no room to search" in str(error)
        )
        return
    cap_vector = np.array([caps.caps[d] for d in DOMAINS])
    lower_vector = np.array(lower)
    natural = np.array(counts, dtype=float) / sum(counts)
    sampler = DirichletSampler(capped, natural)
    rng = np.random.default_rng(seed)
    proposer = RegMixProposer(sampler, predictor="linear", candidates=500, top_k=16, seed=seed)
    samples = sampler.sample(8, rng)
    proposer.tell(samples, samples @ rng.normal(size=4))
    random = RandomProposer(sampler, seed=seed)
    random.tell(samples, samples[:, 0])
    batches = {
        "sample": samples,
        "candidates": sampler.candidates(300, rng),
        "ask": proposer.ask(3),
        "recommend": proposer.recommend().weights[None],
        "random": random.ask(3),
    }
    for name, w in batches.items():
        assert np.all(w <= cap_vector + 1e-6), name
        assert np.all(w >= lower_vector - 1e-6), name
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6, err_msg=name)
