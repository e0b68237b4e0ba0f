import numpy as np
import pytest

from mixopt.errors import InfeasibleSpaceError, MixoptError
from mixopt.space import MixtureSpace

DOMAINS = ("a", "b", "c", "d")


def test_bounds_and_fixed_become_vectors():
    space = MixtureSpace.from_bounds(DOMAINS, {"a": (0.1, 0.5)}, {"d": 0.2})
    assert space.lower.tolist() == [0.1, 0.0, 0.0, 0.2]
    assert space.upper.tolist() == [0.5, 1.0, 1.0, 0.2]


def test_minimums_above_one_are_infeasible_and_named():
    with pytest.raises(
        InfeasibleSpaceError, match=r"minimum weights sum to 1\.2.*a>=0\.6.*b>=0\.6"
    ):
        MixtureSpace.from_bounds(DOMAINS, {"a": (0.6, 1.0), "b": (0.6, 1.0)})


def test_maximums_below_one_are_infeasible():
    bounds = {d: (0.0, 0.2) for d in DOMAINS}
    with pytest.raises(InfeasibleSpaceError, match=r"maximum weights sum to 0\.8"):
        MixtureSpace.from_bounds(DOMAINS, bounds)


def test_unknown_domain_is_named():
    with pytest.raises(MixoptError, match=r"unknown domain\(s\) \['web'\]"):
        MixtureSpace.from_bounds(DOMAINS, {"web": (0.0, 0.5)})


def test_projection_lands_inside_and_keeps_inside_points():
    space = MixtureSpace.from_bounds(DOMAINS, {"a": (0.1, 0.3), "b": (0.0, 0.2)})
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(200, 4))
    projected = space.project(raw)
    assert space.contains(projected).all()
    inside = projected[:5]
    np.testing.assert_allclose(space.project(inside), inside, atol=1e-8)


def test_check_rejects_bad_user_mixtures():
    space = MixtureSpace.from_bounds(DOMAINS)
    with pytest.raises(MixoptError, match=r"sum to 0\.9"):
        space.check({"a": 0.5, "b": 0.4})
    with pytest.raises(MixoptError, match=">= 0"):
        space.check({"a": 1.2, "b": -0.2})
    with pytest.raises(MixoptError, match="unknown domain"):
        space.check({"a": 0.5, "zz": 0.5})
    assert space.check({"a": 0.5, "b": 0.5}).tolist() == [0.5, 0.5, 0.0, 0.0]


def test_uniform_respects_bounds():
    space = MixtureSpace.from_bounds(DOMAINS, {"a": (0.5, 0.6)})
    u = space.uniform()
    assert space.contains(u[None]).all()
    assert u[0] == pytest.approx(0.5)
