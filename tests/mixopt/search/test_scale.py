"""``scale.curves``: each mixture's predicted objective from the search proxy's size to the
target's, with a stand-in law whose predictions are a known function of (w, N, D)."""

import numpy as np
import pytest

from mixopt.errors import MixoptError
from mixopt.search.scale import CURVE_POINTS, curves


class KnownLaw:
    """A law whose objective is a weighted sum of per-domain power laws in N and D."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def value(self, w: np.ndarray, n: float, d: float) -> float:
        floor = np.array([1.5, 2.0, 2.5])
        return float(w @ (floor + 40.0 / n**0.3 + 90.0 / d**0.28))

    def predict(self, W: np.ndarray, n: float, d: float) -> tuple[np.ndarray, np.ndarray]:
        assert W.shape == (1, 3)
        self.calls.append((n, d))
        return np.array([self.value(W[0], n, d)]), np.array([0.01 * np.log10(n)])


MIXTURES = {"a": np.array([0.6, 0.3, 0.1]), "b": np.array([0.1, 0.2, 0.7])}


def test_curves_follow_the_law_from_the_proxy_to_the_target():
    law = KnownLaw()
    start, end = (2e5, 4e6), (1e8, 2e9)
    out = curves(law, MIXTURES, start, end)
    sizes, tokens = np.array(out["params"]), np.array(out["tokens"])
    assert len(sizes) == len(tokens) == CURVE_POINTS
    assert sizes[0] == pytest.approx(start[0]) and sizes[-1] == pytest.approx(end[0])
    assert tokens[0] == pytest.approx(start[1]) and tokens[-1] == pytest.approx(end[1])
    # log-spaced: a constant ratio between neighbours, and D keeps pace with N
    ratios = sizes[1:] / sizes[:-1]
    assert ratios == pytest.approx(np.full(CURVE_POINTS - 1, ratios[0]))
    assert (np.log(tokens) - np.log(tokens[0])) / np.log(end[1] / start[1]) == pytest.approx(
        (np.log(sizes) - np.log(sizes[0])) / np.log(end[0] / start[0])
    )
    assert set(out["objective"]) == set(MIXTURES) == set(out["objective_std"])
    for label, w in MIXTURES.items():
        expected = [law.value(w, n, d) for n, d in zip(sizes, tokens, strict=True)]
        assert out["objective"][label] == pytest.approx(expected)
        assert out["objective_std"][label] == pytest.approx(0.01 * np.log10(sizes))
        assert np.all(np.diff(out["objective"][label]) < 0)  # larger models, lower loss
    assert len(law.calls) == CURVE_POINTS * len(MIXTURES)
    # plain JSON values
    assert all(type(v) is float for v in out["params"] + out["objective"]["a"])


def test_curves_take_the_number_of_points_and_refuse_bad_scales():
    out = curves(KnownLaw(), MIXTURES, (1e6, 1e7), (1e6, 1e7), points=3)
    assert out["params"] == pytest.approx([1e6] * 3)  # a target at the proxy's size: flat
    assert out["objective"]["a"][0] == pytest.approx(out["objective"]["a"][-1])
    with pytest.raises(MixoptError, match="must be positive"):
        curves(KnownLaw(), MIXTURES, (0.0, 1e7), (1e8, 1e9))
    with pytest.raises(MixoptError, match="at least 2"):
        curves(KnownLaw(), MIXTURES, (1e6, 1e7), (1e8, 1e9), points=1)


class _LevelUncertainLaw:
    """Bootstrap fits that disagree on the level (a shift shared by every mixture) much more
    than on the gap between two mixtures."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.shifts = rng.normal(0.0, 0.2, size=64)  # the level: sd 0.2
        self.slopes = rng.normal(1.0, 0.01, size=64)  # the gap: sd ~0.01 x the weight change

    def predict_boot(self, X: np.ndarray) -> np.ndarray:
        first = X[:, 0]
        return self.shifts[:, None] + self.slopes[:, None] * first[None, :]  # (B, n)

    def predict(self, X: np.ndarray, return_std: bool = False):
        boot = self.predict_boot(X)
        return (boot.mean(axis=0), boot.std(axis=0, ddof=1)) if return_std else boot.mean(0)


def test_the_shrink_judges_the_gap_between_mixtures_not_the_shared_level():
    """Two mixtures 0.5 apart in their first weight: the law is sure of the gap (~0.5 +- 0.005)
    although it is unsure of either level (+-0.2): the gap's deviation is what shrinking uses."""
    from mixopt.search.scale import TargetModel

    model = TargetModel(_LevelUncertainLaw(), np.ones(3) / 3, [], "stand-in", ["a", "b", "c"])
    a, b = np.array([0.6, 0.3, 0.1]), np.array([0.1, 0.2, 0.7])
    level = float(model.predict(a[None], 1e8, 1e9)[1][0])
    gap = model.gap_std(a, b, 1e8, 1e9)
    assert level == pytest.approx(0.2, rel=0.3)
    assert gap == pytest.approx(0.5 * np.std(model.law.slopes, ddof=1), rel=1e-6)
    assert gap < level / 10
    assert model.gap_std(a, a, 1e8, 1e9) == pytest.approx(0.0, abs=1e-12)
