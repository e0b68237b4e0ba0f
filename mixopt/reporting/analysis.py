"""The numbers behind "predictor quality" and "domain effects", from a job's search trials.

- :func:`predictor_quality`: out-of-fold predictions of the objective (k-fold cross-validation of
  a registered predictor, GP by default: it has a predictive standard deviation), Spearman and
  Pearson correlation, mean absolute error, coverage of the ±1σ and ±1.96σ intervals.
- :func:`partial_dependence`: the predicted objective as one domain's weight moves over the
  range the trials covered, the other domains keeping their proportions among themselves (a
  mixture stays on the simplex), averaged over the trials' mixtures as backgrounds.
- :func:`interactions`: how moving a domain's weight moves each domain's validation loss: for
  every target ``val_loss/<j>`` a predictor is fitted, and cell (i, j) is the change of its
  partial dependence on domain i's weight, per +0.1 of that weight.

All of them are pure functions of arrays, so tests check them on a known mixing law.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_TRIALS = 5  # fewer finished search trials: nothing worth fitting
GRID_POINTS = 15
EFFECT_STEP = 0.1  # interactions are reported per +0.1 of a domain's weight


@dataclass
class Quality:
    predicted: np.ndarray
    std: np.ndarray | None
    spearman: float
    pearson: float
    mae: float
    coverage68: float | None
    coverage95: float | None
    folds: int


def predictor_quality(
    X: np.ndarray, y: np.ndarray, *, predictor: str = "gp", k: int = 5, seed: int = 0
) -> Quality:
    """Cross-validated predictions of ``y`` from the mixtures ``X`` and their scores."""
    from mixopt.predictors import make_predictor
    from mixopt.predictors.cv import cross_val_predict, folds, score

    n_folds = len(folds(len(y), k, seed))
    pred, std = cross_val_predict(make_predictor(predictor), X, y, k=k, seed=seed)
    scores = score(y, pred, std)
    return Quality(
        predicted=pred,
        std=std,
        spearman=scores.spearman,
        pearson=scores.pearson,
        mae=scores.mae,
        coverage68=scores.coverage68,
        coverage95=scores.coverage95,
        folds=n_folds,
    )


def move_weight(X: np.ndarray, i: int, value: float) -> np.ndarray:
    """``X`` with column i set to ``value`` and the other columns rescaled to sum to 1 - value
    (keeping their proportions; spread evenly where they were all zero)."""
    out = np.array(X, dtype=float, copy=True)
    others = np.delete(np.arange(out.shape[1]), i)
    rest = out[:, others].sum(axis=1, keepdims=True)
    even = np.full((1, len(others)), 1.0 / max(1, len(others)))
    share = np.where(rest > 1e-12, out[:, others] / np.maximum(rest, 1e-12), even)
    out[:, others] = share * (1.0 - value)
    out[:, i] = value
    return out


def weight_grid(X: np.ndarray, i: int, points: int = GRID_POINTS) -> np.ndarray:
    """The range of domain i's weight the trials covered (never beyond it: no extrapolation)."""
    lo, hi = float(np.min(X[:, i])), float(np.max(X[:, i]))
    return np.linspace(lo, hi, points)


def partial_dependence(model: Any, X: np.ndarray, i: int, grid: np.ndarray) -> np.ndarray:
    """Mean prediction over the background mixtures ``X`` with domain i's weight at each grid
    value (one batched predict)."""
    batch = np.concatenate([move_weight(X, i, float(v)) for v in grid])
    pred = np.asarray(model.predict(batch), dtype=float)
    return pred.reshape(len(grid), len(X)).mean(axis=1)


@dataclass
class Effects:
    domains: list[str]  # domains whose weight varied (the others are fixed)
    grids: dict[str, np.ndarray]
    dependence: dict[str, np.ndarray]  # predicted objective along each domain's grid
    sensitivity: dict[str, float]  # max - min of the partial dependence (objective units)
    slope: dict[str, float]  # (PD at the top of the range - at the bottom) per +0.1 of weight
    targets: list[str]  # val_loss/<domain> columns of the interaction matrix
    interaction: np.ndarray  # (len(domains), len(targets)): change per +0.1 of the row's weight


def _fit(predictor: str, X: np.ndarray, y: np.ndarray) -> Any:
    from mixopt.predictors import make_predictor

    return make_predictor(predictor).fit(X, y)


def domain_effects(
    X: np.ndarray,
    y: np.ndarray,
    domains: list[str],
    targets: dict[str, np.ndarray],
    *,
    predictor: str = "gp",
    points: int = GRID_POINTS,
) -> Effects:
    """Partial dependence of the objective ``y`` on each domain's weight, and the interaction
    matrix of domain weights on the ``targets`` (name → values, e.g. ``val_loss/code``)."""
    varied = [i for i in range(X.shape[1]) if np.ptp(X[:, i]) > 1e-9]
    model = _fit(predictor, X, y)
    grids, dependence, sensitivity, slope = {}, {}, {}, {}
    for i in varied:
        name = domains[i]
        grid = weight_grid(X, i, points)
        pd_values = partial_dependence(model, X, i, grid)
        grids[name], dependence[name] = grid, pd_values
        sensitivity[name] = float(np.ptp(pd_values))
        slope[name] = float((pd_values[-1] - pd_values[0]) / (grid[-1] - grid[0]) * EFFECT_STEP)
    names = list(targets)
    matrix = np.full((len(varied), len(names)), np.nan)
    for col, target in enumerate(names):
        values = np.asarray(targets[target], dtype=float)
        if not np.all(np.isfinite(values)) or np.ptp(values) == 0:
            continue
        target_model = _fit(predictor, X, values)
        ends = []
        for i in varied:
            lo, hi = float(np.min(X[:, i])), float(np.max(X[:, i]))
            ends.append((i, lo, hi))
        batch = np.concatenate(
            [np.concatenate([move_weight(X, i, lo), move_weight(X, i, hi)]) for i, lo, hi in ends]
        )
        pred = np.asarray(target_model.predict(batch), dtype=float).reshape(len(ends), 2, len(X))
        for row, (_, lo, hi) in enumerate(ends):
            low, high = pred[row].mean(axis=1)
            matrix[row, col] = (high - low) / (hi - lo) * EFFECT_STEP
    return Effects(
        domains=[domains[i] for i in varied],
        grids=grids,
        dependence=dependence,
        sensitivity=sensitivity,
        slope=slope,
        targets=names,
        interaction=matrix,
    )


def max_load(counts: list[list[int]] | np.ndarray) -> float | None:
    """The most loaded expert's share over the mean share, worst layer (1.0 is balance);
    the definition of ``moe/max_load`` in :mod:`proxies.evaluate`."""
    array = np.asarray(counts, dtype=float)
    if array.ndim != 2 or array.size == 0:
        return None
    totals = array.sum(axis=1)
    used = totals > 0
    if not used.any():
        return None
    layers = array[used]
    return float(np.max(layers.max(axis=1) / layers.mean(axis=1)))


def expert_shares(counts: list[list[int]] | np.ndarray) -> np.ndarray | None:
    """Each expert's share of the routed tokens, averaged over layers (sums to 1)."""
    array = np.asarray(counts, dtype=float)
    if array.ndim != 2 or array.size == 0:
        return None
    totals = array.sum(axis=1, keepdims=True)
    used = totals[:, 0] > 0
    if not used.any():
        return None
    return np.asarray((array[used] / totals[used]).mean(axis=0))
