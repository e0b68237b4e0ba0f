"""The numbers behind predictor quality and domain effects, on a mixing law whose effects are
known: each domain's loss falls with its own weight and depends on nothing else."""

import numpy as np
import pytest

from mixopt.reporting.analysis import (
    domain_effects,
    expert_shares,
    max_load,
    move_weight,
    partial_dependence,
    predictor_quality,
    weight_grid,
)
from mixopt.testing import synthetic_losses

DOMAINS = ["a", "b", "c", "d"]


def _mixtures(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(len(DOMAINS)), size=n)


def _losses(X: np.ndarray) -> dict[str, np.ndarray]:
    rows = [synthetic_losses(dict(zip(DOMAINS, x, strict=True))) for x in X]
    return {f"val_loss/{d}": np.array([r[f"val_loss/{d}"] for r in rows]) for d in DOMAINS}


def test_move_weight_stays_on_the_simplex_and_keeps_proportions():
    X = np.array([[0.2, 0.3, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0]])
    moved = move_weight(X, 3, 0.4)
    np.testing.assert_allclose(moved.sum(axis=1), 1.0)
    np.testing.assert_allclose(moved[:, 3], 0.4)
    np.testing.assert_allclose(moved[0, :3], np.array([0.2, 0.3, 0.5]) * 0.6)
    np.testing.assert_allclose(moved[1, :3], [0.2, 0.2, 0.2])  # nothing to keep: spread evenly


def test_partial_dependence_averages_the_model_over_backgrounds():
    class First:  # predicts the first weight: its partial dependence on that weight is identity
        def predict(self, X):
            return X[:, 0]

    X = _mixtures(20)
    grid = weight_grid(X, 0, 7)
    assert grid[0] == pytest.approx(X[:, 0].min()) and grid[-1] == pytest.approx(X[:, 0].max())
    np.testing.assert_allclose(partial_dependence(First(), X, 0, grid), grid)
    # on another domain's grid, the first weight shrinks in proportion: mean of x0 * (1 - v) / rest
    grid_b = weight_grid(X, 1, 5)
    expected = [np.mean(X[:, 0] * (1 - v) / (1 - X[:, 1])) for v in grid_b]
    np.testing.assert_allclose(partial_dependence(First(), X, 1, grid_b), expected)


def test_domain_effects_recover_the_known_law():
    X = _mixtures(40, seed=1)
    targets = _losses(X)
    y = np.mean([targets[t] for t in targets], axis=0)
    effects = domain_effects(X, y, DOMAINS, targets, predictor="gp")
    assert effects.domains == DOMAINS and effects.targets == list(targets)
    matrix = effects.interaction
    # a domain's own weight lowers its loss; taking weight from others raises theirs
    assert (np.diag(matrix) < 0).all(), matrix
    assert (matrix[~np.eye(len(DOMAINS), dtype=bool)] > 0).all(), matrix
    for i, name in enumerate(DOMAINS):
        assert effects.sensitivity[name] == pytest.approx(np.ptp(effects.dependence[name]))
        lo, hi = X[:, i].min(), X[:, i].max()
        assert effects.grids[name][0] == pytest.approx(lo) and effects.grids[name][
            -1
        ] == pytest.approx(hi)
        true = targets[f"val_loss/{name}"]
        order = np.argsort(X[:, i])
        # the diagonal agrees in size with the loss's own slope over the data (within 50%)
        slope = np.polyfit(X[order, i], true[order], 1)[0] * 0.1
        assert matrix[i, i] == pytest.approx(slope, rel=0.5)


def test_domain_effects_skip_fixed_domains():
    X = _mixtures(12, seed=2)
    X[:, 3] = 0.1
    X[:, :3] = X[:, :3] / X[:, :3].sum(axis=1, keepdims=True) * 0.9
    targets = _losses(X)
    effects = domain_effects(X, targets["val_loss/a"], DOMAINS, targets, predictor="linear")
    assert effects.domains == ["a", "b", "c"]
    assert effects.interaction.shape == (3, 4)


def test_predictor_quality_scores_cross_validated_predictions():
    from mixopt.predictors import make_predictor
    from mixopt.predictors.cv import cross_val_predict, score

    X = _mixtures(30, seed=3)
    y = np.mean(list(_losses(X).values()), axis=0)
    quality = predictor_quality(X, y, predictor="gp", k=5)
    pred, std = cross_val_predict(make_predictor("gp"), X, y, k=5, seed=0)
    np.testing.assert_allclose(quality.predicted, pred, rtol=1e-5)
    assert quality.spearman == pytest.approx(score(y, pred, std).spearman, abs=1e-6)
    assert quality.spearman > 0.8  # a smooth law, 30 trials in 4 dimensions
    z = np.abs(quality.predicted - y) / quality.std
    assert quality.coverage68 == pytest.approx(np.mean(z <= 1.0))
    assert quality.coverage95 == pytest.approx(np.mean(z <= 1.96))
    assert quality.folds == 5


def test_expert_load_numbers():
    counts = [[10, 10, 10, 10], [40, 0, 0, 0]]
    assert max_load(counts) == pytest.approx(4.0)  # worst layer: 40 / mean 10
    np.testing.assert_allclose(expert_shares(counts), [0.625, 0.125, 0.125, 0.125])
    assert max_load([]) is None and expert_shares([]) is None
    assert max_load([[0, 0], [3, 1]]) == pytest.approx(1.5)  # empty layers are skipped
