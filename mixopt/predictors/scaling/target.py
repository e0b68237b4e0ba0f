"""Use a fitted scale-aware law at the target scale: predict there, and find the best mixture there.

``predict_at(model, W, N, D)`` evaluates mixtures W (k, m) at one target size N and token count
D. ``optimal_mixture_at(model, space, N, D)`` minimises the predicted objective over a
:class:`~mixopt.space.MixtureSpace` at that target: the best of a Dirichlet pool (or of the
given candidates, e.g. a sampler's) start SLSQP runs inside the space's bounds and the simplex
(``mixopt.proposers.law.minimize_over_space``). The answer carries the predicted objective and,
for a law with a bootstrap, its standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mixopt.predictors.scaling.base import ScalingDataError


def at_scale(W: Any, N: float, D: float) -> np.ndarray:
    """Rows of the laws' input convention: mixtures W (k, m), then N and D."""
    W = np.atleast_2d(np.asarray(W, dtype=float))
    if not (np.isfinite(N) and np.isfinite(D) and N > 0 and D > 0):
        raise ScalingDataError(f"target scale must be finite and > 0; got N={N}, D={D}")
    return np.column_stack([W, np.full(len(W), float(N)), np.full(len(W), float(D))])


def predict_at(model: Any, W: Any, N: float, D: float, *, return_std: bool = False) -> Any:
    """The model's prediction for mixtures W at target size N and tokens D."""
    return model.predict(at_scale(W, N, D), return_std=return_std)


@dataclass(frozen=True)
class TargetOptimum:
    weights: np.ndarray  # (m,)
    predicted: float
    predicted_std: float | None
    n_params: float
    tokens: float


def optimal_mixture_at(
    model: Any,
    space: Any,
    N: float,
    D: float,
    *,
    candidates: np.ndarray | None = None,
    n_candidates: int = 20_000,
    n_starts: int = 4,
    seed: int = 0,
) -> TargetOptimum:
    """The mixture in ``space`` with the lowest predicted objective at (N, D)."""
    from mixopt.proposers.law import minimize_over_space

    if candidates is None:
        rng = np.random.default_rng(seed)
        candidates = space.project(rng.dirichlet(np.ones(space.dim), size=n_candidates))
    pool = np.vstack([np.atleast_2d(candidates), space.uniform()[None]])  # (k, m)
    if pool.shape[1] != space.dim:
        raise ScalingDataError(
            f"candidates have {pool.shape[1]} weights; the space has {space.dim} domains"
        )

    def objective(W: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(at_scale(W, N, D)))

    starts = pool[np.argsort(objective(pool))[: max(1, n_starts)]]
    weights = minimize_over_space(objective, space, starts)
    std = None
    if getattr(model, "has_std", False):
        std = float(model.predict(at_scale(weights, N, D), return_std=True)[1][0])
    return TargetOptimum(weights, float(objective(weights[None])[0]), std, float(N), float(D))
