"""Hierarchical domains: units, fixed shares, and unit spaces that respect leaf bounds and caps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixopt.data.caps import apply_caps, repetition_caps
from mixopt.data.hierarchy import build_hierarchy, check_groups
from mixopt.errors import InfeasibleSpaceError, SpecError
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace
from mixopt.spec import JobSpec

TOKENS = {"cc_en": 600, "cc_de": 200, "wiki": 200, "py": 300, "js": 100, "books": 100}


def spec(level: str = "groups", depth: int = 1, **extra: dict) -> JobSpec:  # type: ignore[type-arg]
    groups = {
        "cc_en": "web/cc",
        "cc_de": "web/cc",
        "wiki": "web/wiki",
        "py": "code",
        "js": "code",
        "books": None,
    }
    domains = [
        {"name": name, "paths": ["x"], "group": group, **extra.get(name, {})}
        for name, group in groups.items()
    ]
    return JobSpec.model_validate(
        {"name": "h", "domains": domains, "groups": {"level": level, "depth": depth}}
    )


def test_leaves_level_is_the_identity() -> None:
    h = build_hierarchy(spec("leaves"), TOKENS)
    assert h.trivial and h.units == h.leaves
    space = MixtureSpace.from_bounds(h.leaves)
    assert h.unit_space(space) is space


def test_groups_with_natural_shares() -> None:
    h = build_hierarchy(spec(), TOKENS)
    assert h.units == ("web", "code", "books")
    assert h.members("web") == ["cc_en", "cc_de", "wiki"]
    leaves = h.expand_dict(np.array([0.5, 0.3, 0.2]))
    assert leaves == pytest.approx(
        {"cc_en": 0.3, "cc_de": 0.1, "wiki": 0.1, "py": 0.225, "js": 0.075, "books": 0.2}
    )
    w = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(h.collapse(h.expand(w)), w)
    deeper = build_hierarchy(spec(depth=2), TOKENS)
    assert deeper.units == ("web/cc", "web/wiki", "code", "books")
    assert deeper.expand_dict(np.array([0.4, 0.2, 0.2, 0.2]))["cc_de"] == pytest.approx(0.1)


def test_explicit_shares_and_spec_checks() -> None:
    h = build_hierarchy(spec(py={"share": 1.0}, js={"share": 3.0}), TOKENS)
    assert h.expand_dict(np.array([0.0, 1.0, 0.0]))["js"] == pytest.approx(0.75)
    with pytest.raises(SpecError, match=r"unit 'code' gives share to \['py'\] but not to \['js'\]"):
        check_groups(spec(py={"share": 1.0}))
    clash = spec()
    clash.domains[5].name = "code"  # an ungrouped domain named like the group
    with pytest.raises(SpecError, match=r"group 'code' has the name of domain 'code'"):
        check_groups(clash)
    with pytest.raises(ValueError, match="share is the proportion within a group"):
        JobSpec.model_validate(
            {
                "name": "h",
                "domains": [
                    {"name": "a", "paths": ["x"], "share": 1},
                    {"name": "b", "paths": ["y"]},
                ],
            }
        )


def test_unit_space_takes_the_tightest_leaf_bound() -> None:
    h = build_hierarchy(spec(), TOKENS)
    leaf_space = MixtureSpace.from_bounds(h.leaves, {"cc_de": (0.02, 0.1), "js": (0.0, 0.05)})
    units = h.unit_space(leaf_space)
    # web: cc_de share 0.2 -> [0.1, 0.5]; code: js share 0.25 -> [0, 0.2]
    np.testing.assert_allclose(units.lower, [0.1, 0.0, 0.0])
    np.testing.assert_allclose(units.upper, [0.5, 0.2, 1.0])
    contradictory = MixtureSpace.from_bounds(h.leaves, {"cc_en": (0.5, 1.0), "cc_de": (0.0, 0.1)})
    with pytest.raises(InfeasibleSpaceError, match=r"unit 'web' cannot satisfy .*cc_en share 0\.6"):
        h.unit_space(contradictory)


@settings(max_examples=30, deadline=None)
@given(
    budget=st.floats(500, 2000),
    unit_seed=st.integers(0, 1000),
    js_max=st.floats(0.02, 0.3),
)
def test_unit_samples_expand_into_the_capped_leaf_space(
    budget: float, unit_seed: int, js_max: float
) -> None:
    h = build_hierarchy(spec(), TOKENS)
    leaf_space = MixtureSpace.from_bounds(h.leaves, {"js": (0.0, js_max)})
    try:
        capped = apply_caps(leaf_space, repetition_caps(TOKENS, budget, 4.0))
        units = h.unit_space(capped)
    except InfeasibleSpaceError:
        return
    natural = h.collapse(np.array([TOKENS[d] for d in h.leaves], dtype=float))
    sampler = DirichletSampler(units, natural / natural.sum())
    rng = np.random.default_rng(unit_seed)
    for batch in (sampler.sample(6, rng), sampler.candidates(200, rng)):
        leaves = h.expand(batch)
        assert capped.contains(leaves, tol=1e-6).all()
