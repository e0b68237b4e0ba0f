"""Shared machinery of the scale-aware laws: the input convention, runs, robust fits, bootstrap.

Input convention (every law in this package): ``X`` is (n, m + 2), the m mixture weights (each
row on the simplex) then N, the model's non-embedding parameters, then D, its training tokens;
``y`` is one loss per row (a per-domain validation loss, or the objective). Rows with the same
mixture and N are one *run* (the points along one training curve); the bootstrap resamples runs,
not rows, because the points of a curve share their run's noise.

Parametric laws (``ParametricLaw``) fit ``log law(X) ≈ log y`` with a Huber loss (Chinchilla's
robust fit: ``huber_delta`` on log residuals), L-BFGS-B within bounds from several starts, on N and
D divided by their geometric means. Exponents are bounded, so nothing overflows; a prediction
that is not finite raises. Identifiability decides three modes, recorded in ``mode_``:

- ``free``: three or more sizes, every exponent fitted;
- ``tied``: two sizes. Two sizes cannot separate an N-exponent from its amplitude and the
  irreducible loss, so each law ties its N-exponent to its D-exponent (Chinchilla's α ≈ β, i.e.
  compute-optimal N and D grow alike); ``tie_exponents`` forces either choice;
- ``one_size``: the N term cannot be told from the constant and is dropped; predicting at any
  other N raises, naming the size fitted (train at two sizes or more to extrapolate in N).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from mixopt.errors import MixoptError

EXTRA_COLUMNS = ("N", "D")  # after the m mixture weights, in this order
SUM_TOL = 1e-3
MODES = ("free", "tied", "one_size")


class ScalingDataError(MixoptError, ValueError):
    """The data cannot support the law (too few rows, sizes or points along a run)."""


def split_inputs(X: Any, *, where: str = "X") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` (n, m + 2) → weights (n, m), N (n,), D (n,), each checked with a clear error."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] < 4:
        raise ScalingDataError(
            f"{where} must be (n, m + 2): m >= 2 mixture weights, then N (non-embedding "
            f"parameters) and D (training tokens); got shape {X.shape}"
        )
    if len(X) == 0:
        raise ScalingDataError(f"{where} has no rows")
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        row, col = bad[0]
        raise ScalingDataError(f"{where}[{row}, {col}] is {X[row, col]}, not a finite number")
    W, N, D = X[:, :-2], X[:, -2], X[:, -1]
    for name, values in (("N", N), ("D", D)):
        if np.any(values <= 0):
            row = int(np.argmax(values <= 0))
            raise ScalingDataError(f"{where}: {name} must be > 0; row {row} has {values[row]}")
    if np.any(W < -1e-9):
        row, col = np.argwhere(W < -1e-9)[0]
        raise ScalingDataError(f"{where}: mixture weight {col} of row {row} is negative")
    sums = W.sum(axis=1)
    off = np.abs(sums - 1.0) > SUM_TOL
    if np.any(off):
        row = int(np.argmax(off))
        raise ScalingDataError(
            f"{where}: the mixture weights of row {row} sum to {sums[row]:.6g}, not 1 "
            "(columns are the m weights, then N, then D)"
        )
    return np.clip(W, 0.0, None), N, D


def check_target(y: Any, n: int, *, where: str = "y") -> np.ndarray:
    """A positive finite loss per row."""
    y = np.asarray(y, dtype=float)
    if y.ndim != 1 or len(y) != n:
        raise ScalingDataError(f"{where} must be one loss per row of X ({n}), got shape {y.shape}")
    if np.any(~np.isfinite(y)) or np.any(y <= 0):
        row = int(np.argmax(~np.isfinite(y) | (y <= 0)))
        raise ScalingDataError(f"{where}[{row}] is {y[row]}: losses must be finite and > 0")
    return y


def run_ids(W: np.ndarray, N: np.ndarray) -> np.ndarray:
    """A label per row; rows of one mixture at one size share it (one training run)."""
    keys = np.column_stack([np.round(W, 6), np.round(np.log(N), 6)])
    return np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)


def mixture_ids(W: np.ndarray) -> np.ndarray:
    return np.unique(np.round(W, 6), axis=0, return_inverse=True)[1].reshape(-1)


def size_mode(N: np.ndarray, tie: bool | None) -> str:
    sizes = len(np.unique(np.round(np.log(N), 6)))
    if sizes == 1:
        return "one_size"
    if tie is None:
        return "tied" if sizes == 2 else "free"
    return "tied" if tie else "free"


def one_blas_thread() -> Any:
    """Small fits run thousands of tiny matrix products; threaded BLAS on a busy machine makes
    each one wait for its threads (measured: 25x slower at load 8 on 2 cores)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    small = np.abs(r) <= delta
    return np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))


def bootstrap_rng(seed: int) -> np.random.Generator:
    """The bootstrap's own stream: laws of one objective with one seed draw the same runs."""
    return np.random.default_rng([seed, 0xB007])


def resample_runs(runs: np.ndarray, N: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices of a bootstrap sample: runs drawn with replacement within each size."""
    rows: list[np.ndarray] = []
    size_of = {int(r): float(N[runs == r][0]) for r in np.unique(runs)}
    for size in sorted(set(size_of.values())):
        members = np.array([r for r, s in size_of.items() if s == size])
        for r in rng.choice(members, size=len(members)):
            rows.append(np.flatnonzero(runs == r))
    return np.concatenate(rows)


class ParametricLaw(RegressorMixin, BaseEstimator):
    """A law ``L(w, N, D; θ)`` for one target, fitted robustly, with a bootstrap over runs.

    Subclasses define ``_names(m, mode)`` (the free parameters), ``_bounds``, ``_start`` and
    ``_law_jac(θ, W, n, d)`` (the law and its analytic partial derivatives) with
    n = log(N / N_ref), d = log(D / D_ref).
    """

    domain: int | None
    n_starts: int
    n_bootstrap: int
    huber_delta: float
    tie_exponents: bool | None
    random_state: int

    @property
    def has_std(self) -> bool:
        return self.n_bootstrap > 1

    # -- subclass hooks ------------------------------------------------------------------------
    def _names(self, m: int, mode: str) -> list[str]:
        raise NotImplementedError

    def _bounds(self, names: list[str], y: np.ndarray) -> list[tuple[float, float]]:
        raise NotImplementedError

    def _start(self, names: list[str], y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _law(self, theta: dict[str, Any], W: np.ndarray, n: np.ndarray, d: np.ndarray) -> Any:
        return self._law_jac(theta, W, n, d)[0]

    def _law_jac(
        self, theta: dict[str, Any], W: np.ndarray, n: np.ndarray, d: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The law (n,) and its partial derivative (n,) by each free parameter."""
        raise NotImplementedError

    # -- fitting -------------------------------------------------------------------------------
    def _params(self, x: np.ndarray) -> dict[str, Any]:
        return dict(zip(self.names_, x, strict=True))

    def _loss(
        self, x: np.ndarray, W: np.ndarray, n: np.ndarray, d: np.ndarray, logy: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Mean Huber loss of the log residuals, in units of delta² (the optimiser's tolerances
        are absolute and the residuals tiny), and its gradient."""
        pred, partials = self._law_jac(self._params(x), W, n, d)
        pred = np.maximum(pred, 1e-300)
        r = np.log(pred) - logy
        delta = self.huber_delta
        psi = np.clip(r, -delta, delta) / (len(r) * delta**2)  # d loss / d r
        grad = np.array([float(np.sum(psi * partials[k] / pred)) for k in self.names_])
        return float(np.mean(huber(r, delta))) / delta**2, grad

    def _minimise(self, starts: list[np.ndarray], W: Any, n: Any, d: Any, y: Any) -> np.ndarray:
        logy, best = np.log(y), None
        for x0 in starts:
            result = minimize(
                self._loss, x0, args=(W, n, d, logy), jac=True, method="L-BFGS-B",
                bounds=self.bounds_, options={"maxiter": 2000},
            )  # fmt: skip
            if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
                best = result
        if best is None:
            raise ScalingDataError(f"{type(self).__name__}: no start gave a finite fit")
        return np.asarray(best.x)

    def _prepare(self, X: Any, y: Any) -> tuple[np.ndarray, ...]:
        W, N, D = split_inputs(X)
        y = check_target(y, len(W))
        if self.domain is not None and not 0 <= self.domain < W.shape[1]:
            raise ScalingDataError(
                f"{type(self).__name__}: domain={self.domain} is not a column of the "
                f"{W.shape[1]} mixture weights"
            )
        return W, N, D, y

    def fit(self, X: Any, y: Any) -> ParametricLaw:
        with one_blas_thread():
            return self._fit(X, y)

    def _fit(self, X: Any, y: Any) -> ParametricLaw:
        W, N, D, y = self._prepare(X, y)
        runs = run_ids(W, N)
        if len(np.unique(runs)) < 3:
            raise ScalingDataError(
                f"{type(self).__name__}: {len(np.unique(runs))} run(s) (mixture x size); "
                "a scaling law needs at least 3"
            )
        self.n_features_in_ = W.shape[1] + 2
        self.mode_ = size_mode(N, self.tie_exponents)
        self.sizes_ = np.unique(N)
        self.n_ref_, self.d_ref_ = float(np.exp(np.log(N).mean())), float(np.exp(np.log(D).mean()))
        self.y_ref_ = float(np.median(y))
        self.names_ = self._names(W.shape[1], self.mode_)
        z = y / self.y_ref_
        self.bounds_ = self._bounds(self.names_, z)
        n, d = np.log(N / self.n_ref_), np.log(D / self.d_ref_)
        rng = np.random.default_rng(self.random_state)
        starts = [self._start(self.names_, z, rng) for _ in range(max(1, self.n_starts))]
        self.theta_ = self._minimise(starts, W, n, d, z)
        boots, draws = [], bootstrap_rng(self.random_state)
        for _ in range(self.n_bootstrap if self.n_bootstrap > 1 else 0):
            rows = resample_runs(runs, N, draws)
            boots.append(self._minimise([self.theta_], W[rows], n[rows], d[rows], z[rows]))
        self.boot_thetas_ = np.array(boots).reshape(len(boots), len(self.theta_))
        return self

    def refit(self, X: Any, y: Any) -> ParametricLaw:
        from sklearn.base import clone

        return clone(self).fit(X, y)

    # -- prediction ----------------------------------------------------------------------------
    def params(self) -> dict[str, float]:
        """The fitted parameters by name (in the normalised units of the fit)."""
        check_is_fitted(self, "theta_")
        return {k: float(v) for k, v in self._params(self.theta_).items()}

    def _inputs(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_is_fitted(self, "theta_")
        W, N, D = split_inputs(X)
        if W.shape[1] + 2 != self.n_features_in_:
            raise ScalingDataError(
                f"X has {W.shape[1]} mixture weights; the law was fitted with "
                f"{self.n_features_in_ - 2}"
            )
        check_size(self.mode_, self.sizes_, N, type(self).__name__)
        return W, np.log(N / self.n_ref_), np.log(D / self.d_ref_)

    def _evaluate(self, x: np.ndarray, W: Any, n: Any, d: Any) -> np.ndarray:
        out = self.y_ref_ * np.asarray(self._law(self._params(x), W, n, d), dtype=float)
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(f"{type(self).__name__}: a prediction is not finite")
        return out

    def predict_boot(self, X: Any) -> np.ndarray:
        """(B, n): the law under each bootstrap fit (empty when ``n_bootstrap`` < 2)."""
        W, n, d = self._inputs(X)
        return np.array([self._evaluate(x, W, n, d) for x in self.boot_thetas_]).reshape(
            len(self.boot_thetas_), len(W)
        )

    def predict(self, X: Any, return_std: bool = False) -> Any:
        W, n, d = self._inputs(X)
        mean = self._evaluate(self.theta_, W, n, d)
        if not return_std:
            return mean
        boots = self.predict_boot(X)
        std = boots.std(axis=0) if len(boots) > 1 else np.full(len(mean), np.nan)
        return mean, std


def check_size(mode: str, sizes: np.ndarray, N: np.ndarray, who: str) -> None:
    """One size fitted: any other N is an extrapolation the law cannot make."""
    if mode == "one_size" and np.any(np.abs(np.log(N / sizes[0])) > 1e-6):
        raise ScalingDataError(
            f"{who} was fitted on one model size (N={sizes[0]:.4g}): extrapolation in N is "
            f"impossible (asked for N={float(N[np.argmax(np.abs(N - sizes[0]))]):.4g}); fit on "
            "runs at two or more sizes, or predict at the fitted size"
        )
