"""Data Mixing Laws' exponential law: ``L(w) = c + k · exp(Σ_j t_j w_j)`` for one target.

Fitted the way the authors do: several random starts, a Huber loss (robust to the odd diverged
proxy), L-BFGS with analytic gradients, on targets standardised by median and MAD. ``k > 0`` is
kept by fitting ``b = log k``. The law is smooth and convex in ``w`` for ``k > 0``, so the
``law`` proposer can minimise it exactly over the constrained simplex.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data


def _huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss and its derivative, elementwise."""
    small = np.abs(r) <= delta
    loss = np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
    grad = np.where(small, r, delta * np.sign(r))
    return loss, grad


class MixingLawPredictor(RegressorMixin, BaseEstimator):
    def __init__(
        self,
        n_starts: int = 8,
        huber_delta: float = 1.0,
        l2: float = 1e-6,
        random_state: int = 0,
    ) -> None:
        self.n_starts = n_starts
        self.huber_delta = huber_delta
        self.l2 = l2
        self.random_state = random_state

    def _objective(
        self, theta: np.ndarray, X: np.ndarray, z: np.ndarray
    ) -> tuple[float, np.ndarray]:
        c, b, t = theta[0], theta[1], theta[2:]
        e = np.exp(np.clip(b + X @ t, -50, 50))  # (n,)
        loss, dr = _huber(c + e - z, self.huber_delta)
        n = len(z)
        grad = np.empty_like(theta)
        grad[0] = dr.sum() / n
        grad[1] = (dr * e).sum() / n
        grad[2:] = X.T @ (dr * e) / n + 2 * self.l2 * t
        return float(loss.mean() + self.l2 * (t @ t)), grad

    def fit(self, X: np.ndarray, y: np.ndarray) -> MixingLawPredictor:
        X, y = validate_data(self, X, y, y_numeric=True)
        # robust standardisation: one diverged proxy must not squash everyone else's scale
        self.y_mean_ = float(np.median(y))
        self.y_scale_ = float(1.4826 * np.median(np.abs(y - self.y_mean_))) or float(y.std() or 1.0)
        z = (y - self.y_mean_) / self.y_scale_
        rng = np.random.default_rng(self.random_state)
        best: tuple[float, np.ndarray] | None = None
        for _ in range(self.n_starts):
            t0 = rng.normal(0.0, 2.0, size=X.shape[1])
            theta0 = np.concatenate([[z.min() - 0.5, 0.0], t0])
            result = minimize(self._objective, theta0, args=(X, z), jac=True, method="L-BFGS-B")
            if best is None or result.fun < best[0]:
                best = (float(result.fun), result.x)
        assert best is not None
        theta = best[1]
        self.c_ = self.y_mean_ + self.y_scale_ * theta[0]
        self.k_ = self.y_scale_ * float(np.exp(theta[1]))
        self.t_ = theta[2:]
        self.loss_ = best[0]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "t_")
        X = validate_data(self, X, reset=False)
        return self.c_ + self.k_ * np.exp(np.clip(X @ self.t_, -50, 50))
