"""Synthetic multi-scale grids drawn from each scale-aware law's own form, with known parameters.

A grid is mixtures × sizes, each run evaluated at several token counts (the points along its
curve), in the laws' input convention: X (n, m + 2) = weights, N, D. Noise is multiplicative and
mostly per run (a seed's offset shared by the points of one curve), a little per point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mixopt.predictors.scaling.capacity import allocate

M = 3
SIZES = (1e5, 4e5, 1.6e6, 6.4e6)
TOKENS = {1e5: 1e6, 4e5: 2e6, 1.6e6: 4e6, 6.4e6: 8e6}  # a run's final token count per size
N_REF, D_REF = 1e6, 3e6

# truth of each form (natural units), m = 3 domains
JOINT = {
    "E": np.array([1.8, 2.4, 1.2]),
    "A": np.array([0.6, 0.9, 0.7]),
    "alpha": np.array([0.35, 0.3, 0.4]),
    "B": np.array([0.8, 1.1, 0.9]),
    "beta": np.array([0.3, 0.35, 0.45]),
    "v": np.array([[0.85, 0.15, 0.0], [0.1, 0.9, 0.0], [0.0, 0.2, 0.8]]),  # row i: target i
}
BIMIX = {
    "F": np.array([[1.2, 0.1, 0.1], [0.2, 1.6, 0.1], [0.1, 0.1, 0.9]]),
    "alpha": np.array([[0.12, 0.02, 0.01], [0.03, 0.1, 0.02], [0.01, 0.02, 0.15]]),
    "B": 0.5,
    "beta": 0.3,
    "A": 0.4,
    "gamma": 0.35,
}
CAPACITY = {
    "c": np.array([0.6, 0.9, 0.7]),
    "b": np.array([0.3, 0.4, 0.35]),
    "A": np.array([0.5, 0.8, 0.6]),
    "a": np.array([0.3, 0.35, 0.4]),
    "E": np.array([1.5, 2.0, 1.0]),
    "H": 0.01,
    "eps": 1e-3,
}
NESTED = {
    "E": 1.5,
    "A": 0.6,
    "alpha": 0.35,
    "k": 0.9,
    "t": np.array([-2.0, 0.5, -0.8]),
    "beta": 0.4,
}


def joint_truth(W: np.ndarray, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    p = JOINT
    share = W @ p["v"].T  # (n, targets)
    return (
        p["E"]
        + p["A"] * (N[:, None] / N_REF) ** -p["alpha"]
        + p["B"] * (D[:, None] / D_REF * share) ** -p["beta"]
    )


def bimix_truth(W: np.ndarray, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    p = BIMIX
    level = np.einsum("ij,nij->ni", p["F"], (W[:, None, :] + 1e-3) ** -p["alpha"][None])
    volume = 1 + p["B"] * (D / D_REF) ** -p["beta"] + p["A"] * (N / N_REF) ** -p["gamma"]
    return level * volume[:, None]


def capacity_truth(W: np.ndarray, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    p = CAPACITY
    x = allocate(W, np.log(N / N_REF), p["c"], p["b"], p["H"])
    capacity = p["c"] * x ** -p["b"]
    return capacity + p["A"] * (D[:, None] / D_REF * (W + p["eps"])) ** -p["a"] + p["E"]


def nested_truth(W: np.ndarray, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """One target whose every stage is the nested pipeline's own form."""
    p = NESTED
    mix = p["k"] * np.exp(W @ p["t"])
    loss = p["E"] + p["A"] * (N / N_REF) ** -p["alpha"] + mix * (D / D_REF) ** -p["beta"]
    return loss[:, None]


@dataclass
class Grid:
    X: np.ndarray  # (n, m + 2)
    Y: np.ndarray  # (n, targets), noisy
    truth: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

    def rows(self, size: float, final: bool = False) -> np.ndarray:
        at = np.isclose(self.X[:, -2], size)
        if final:
            at &= np.isclose(self.X[:, -1], TOKENS[size])
        return at

    def true(self, rows: np.ndarray) -> np.ndarray:
        X = self.X[rows]
        return self.truth(X[:, :-2], X[:, -2], X[:, -1])


def make_grid(
    truth: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    *,
    sizes: tuple[float, ...] = SIZES,
    n_mixtures: int = 10,
    points: int = 6,
    run_noise: float = 0.003,
    point_noise: float = 0.001,
    seed: int = 0,
) -> Grid:
    rng = np.random.default_rng(seed)
    mixtures = np.vstack([np.full(M, 1 / M), rng.dirichlet(np.ones(M), size=n_mixtures - 1)])
    rows = []
    for w in mixtures:
        for size in sizes:
            for tokens in np.geomspace(TOKENS[size] / 8, TOKENS[size], points):
                rows.append([*w, size, tokens])
    X = np.array(rows)
    clean = truth(X[:, :M], X[:, M], X[:, M + 1])
    runs = np.unique(X[:, : M + 1], axis=0, return_inverse=True)[1].reshape(-1)
    offsets = rng.normal(0.0, run_noise, size=(runs.max() + 1, clean.shape[1]))
    noise = offsets[runs] + rng.normal(0.0, point_noise, size=clean.shape)
    return Grid(X, clean * np.exp(noise), truth)
