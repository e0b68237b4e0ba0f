"""The capacity-allocation law of "Explaining Data Mixing Scaling Laws", for all domains at once.

Per validation domain i (the m training domains, in order):
``L_i(h, N, D) = c_i·x_i*(h)^(-b_i) + A_i·(D·(h_i + ε))^(-a_i) + E_i``, where x*(h) splits the
model's capacity across domains: the minimiser of ``Σ_k h_k c_k x_k^(-b_k)`` subject to
``Σ_k x_k = N + (m-1)·H`` and ``x_k >= H``. Its KKT conditions give
``x_k = max(H, (h_k c_k b_k / λ)^(1/(b_k+1)))`` with λ set by the budget (safeguarded Newton on
log λ: the sum falls monotonically in λ). The inner problem couples the domains, so the law is
fitted jointly: 5m + 1 parameters, L-BFGS-B from several starts on the summed Huber loss of log
residuals, with gradients through the KKT split by the implicit function theorem, N and D in
units of their geometric means. ``ε`` (default 1e-3)
keeps a weight of 0 finite. ``Y`` is (n, m), column i the loss on domain i; ``predict`` returns
the objective (``target_weights``, default the mean), ``predict_targets`` the (n, m) losses.
With two sizes each b_i is tied to a_i (see ``mixopt.predictors.scaling.base``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from mixopt.predictors.scaling.base import (
    ScalingDataError,
    bootstrap_rng,
    check_size,
    check_target,
    huber,
    one_blas_thread,
    resample_runs,
    run_ids,
    size_mode,
    split_inputs,
)
from mixopt.predictors.scaling.joint import EXPONENT_BOUNDS

NEWTON_STEPS = 200


def allocate(h: np.ndarray, n: np.ndarray, c: Any, b: Any, H: float) -> np.ndarray:
    """x*(h) (r, m) for mixtures h (r, m) at sizes exp(n) (r,): the KKT capacity split.

    Safeguarded Newton on μ = log λ for log(Σ_k x_k) = log(budget): the sum falls monotonically
    in μ, so a bracket is kept and a step that leaves it is replaced by bisection. Domains with
    h_k = 0 sit at their floor H.
    """
    budget = np.exp(n) + (h.shape[1] - 1) * H  # (r,)
    used = h > 0
    log_g = np.where(used, np.log(np.where(used, h * c * b, 1.0)), -np.inf)  # (r, m)
    power = 1.0 / (b + 1.0)
    # every used x >= budget at lo; every x at its floor H at hi
    lo = np.min(np.where(used, log_g - (b + 1.0) * np.log(budget)[:, None], np.inf), axis=1) - 1
    hi = np.max(np.where(used, log_g - (b + 1.0) * np.log(H), -np.inf), axis=1) + 1
    mu = 0.5 * (lo + hi)
    for _ in range(NEWTON_STEPS):
        x = np.exp((log_g - mu[:, None]) * power)
        active = x > H
        total = np.where(active, x, H).sum(axis=1)
        gap = np.log(total / budget)  # falls as mu grows
        lo = np.where(gap > 0, mu, lo)
        hi = np.where(gap > 0, hi, mu)
        if np.all(np.abs(gap) <= 1e-13):
            break
        slope = np.sum(active * x * power, axis=1) / total  # -d gap / d mu
        step = mu + gap / np.maximum(slope, 1e-300)
        mu = np.where((step > lo) & (step < hi), step, 0.5 * (lo + hi))
    return np.maximum(H, np.exp((log_g - mu[:, None]) * power))


def allocation_jacobian(
    x: np.ndarray, b: np.ndarray, H: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """d log x* / d (log c_j, b_j, log H) by the implicit function theorem on the budget.

    On the active set (x_k > H) log x_k = p_k (log g_k - log λ) with p_k = 1/(b_k + 1) and
    g_k = h_k c_k b_k; the budget Σ x_k = N + (m-1)H fixes d log λ. Returns (r, m, m), (r, m, m)
    and (r, m): [run, k, j] is d log x_k / d θ_j.
    """
    m = x.shape[1]
    active = x > H * (1 + 1e-9)  # (r, m)
    p = 1.0 / (b + 1.0)
    log_x = np.log(x)
    spread = np.maximum(np.sum(active * x * p, axis=1), 1e-300)  # (r,)  Σ_A x_k p_k
    eye = np.eye(m)
    # explicit parts q[run, j] (only own k = j), then dμ = Σ_A x_k q_k / spread
    q_c = active * p  # (r, m)
    q_b = active * (p / b - p * log_x)
    mu_c = x * q_c / spread[:, None]  # (r, j)
    mu_b = x * q_b / spread[:, None]
    mu_h = -H * ((m - 1) - np.sum(~active, axis=1)) / spread  # (r,)
    jac_c = active[:, :, None] * (eye * q_c[:, None, :] - p[None, :, None] * mu_c[:, None, :])
    jac_b = active[:, :, None] * (eye * q_b[:, None, :] - p[None, :, None] * mu_b[:, None, :])
    jac_h = np.where(active, -p * mu_h[:, None], 1.0)
    return jac_c, jac_b, jac_h


class CapacityLaw(RegressorMixin, BaseEstimator):
    def __init__(
        self,
        target_weights: Sequence[float] | None = None,
        eps: float = 1e-3,
        n_starts: int = 6,
        n_bootstrap: int = 16,
        huber_delta: float = 1e-3,
        tie_exponents: bool | None = None,
        random_state: int = 0,
    ) -> None:
        self.target_weights = target_weights
        self.eps = eps
        self.n_starts = n_starts
        self.n_bootstrap = n_bootstrap
        self.huber_delta = huber_delta
        self.tie_exponents = tie_exponents
        self.random_state = random_state

    @property
    def has_std(self) -> bool:
        return self.n_bootstrap > 1

    # -- parameters: per domain log_c, b, log_A, a, E (b dropped when tied), then log_H --------
    def _unpack(self, x: np.ndarray, m: int) -> dict[str, Any]:
        per = 4 if self.mode_ == "tied" else 5
        blocks = x[: per * m].reshape(m, per)
        a = blocks[:, 3 if per == 5 else 2]
        return {
            "log_c": blocks[:, 0],
            "b": a if per == 4 else blocks[:, 1],
            "log_A": blocks[:, 2 if per == 5 else 1],
            "a": a,
            "E": blocks[:, -1],
            "H": float(np.exp(x[-1])),
        }

    def _law(self, x: np.ndarray, W: Any, n: Any, d: Any, runs: Any) -> np.ndarray:
        return self._law_grad(x, W, n, d, runs, None)[0]

    def _law_grad(
        self, x: np.ndarray, W: Any, n: Any, d: Any, runs: Any, dloss: Any
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The law (n, m) and, given ``dloss(pred)`` (d loss / d prediction), its gradient."""
        m = W.shape[1]
        p = self._unpack(x, m)
        c, H = np.exp(p["log_c"]), p["H"]
        labels, first, lookup = np.unique(runs, return_index=True, return_inverse=True)
        alloc = allocate(W[first], n[first], c, p["b"], H)  # (r, m): x* depends on (h, N)
        capacity = c * alloc ** (-p["b"])  # (r, m)
        log_share = d[:, None] + np.log(W + self.eps)  # (n, m)
        data = np.exp(p["log_A"] - p["a"] * log_share)
        pred = capacity[lookup] + data + p["E"]
        if dloss is None:
            return pred, None
        dpred = dloss(pred)  # (n, m)
        per_run = np.zeros((len(labels), m))
        np.add.at(per_run, lookup.reshape(-1), dpred)  # d loss / d capacity (r, m)
        jac_c, jac_b, jac_h = allocation_jacobian(alloc, p["b"], H)
        weight = per_run * capacity  # (r, i)
        g_log_c = weight.sum(axis=0) - np.einsum("ri,i,rij->j", weight, p["b"], jac_c)
        g_b = -(weight * np.log(alloc)).sum(axis=0) - np.einsum(
            "ri,i,rij->j", weight, p["b"], jac_b
        )
        g_log_h = -np.einsum("ri,i,ri->", weight, p["b"], jac_h) * 1.0
        g_log_A = (dpred * data).sum(axis=0)
        g_a = -(dpred * data * log_share).sum(axis=0)
        g_E = dpred.sum(axis=0)
        if self.mode_ == "tied":
            blocks = [g_log_c, g_log_A, g_a + g_b, g_E]
        else:
            blocks = [g_log_c, g_b, g_log_A, g_a, g_E]
        return pred, np.concatenate([np.column_stack(blocks).reshape(-1), [g_log_h]])

    def _loss(
        self, x: np.ndarray, W: Any, n: Any, d: Any, runs: Any, logY: Any
    ) -> tuple[float, np.ndarray]:
        """Mean Huber loss of the log residuals in units of delta², and its gradient."""
        delta = self.huber_delta

        def dloss(pred: np.ndarray) -> np.ndarray:
            r = np.log(np.maximum(pred, 1e-300)) - logY
            return np.clip(r, -delta, delta) / (r.size * delta**2) / np.maximum(pred, 1e-300)

        pred, grad = self._law_grad(x, W, n, d, runs, dloss)
        r = np.log(np.maximum(pred, 1e-300)) - logY
        assert grad is not None
        return float(np.mean(huber(r, delta))) / delta**2, grad

    def _bounds(self, m: int, Z: np.ndarray, n_min: float) -> list[tuple[float, float]]:
        per = []
        for i in range(m):
            e = (0.0, float(Z[:, i].max()))
            exps = [EXPONENT_BOUNDS] * (1 if self.mode_ == "tied" else 2)
            block = [(-20.0, 5.0), *exps[:-1], (-20.0, 5.0), exps[-1], e]
            per.extend(block)
        return [*per, (-12.0, n_min + np.log(0.5))]  # H below half the smallest size

    def _start(self, m: int, Z: np.ndarray, n_min: float, rng: Any) -> np.ndarray:
        x = []
        for i in range(m):
            low = Z[:, i].min()
            block = [np.log(rng.uniform(0.05, 0.5) * low)]
            if self.mode_ != "tied":
                block.append(rng.uniform(0.1, 1.0))
            block += [np.log(rng.uniform(0.05, 0.5) * low), rng.uniform(0.1, 1.0)]
            x.extend([*block, rng.uniform(0.3, 0.9) * low])
        return np.array([*x, n_min + np.log(rng.uniform(0.001, 0.1))])

    def _minimise(self, starts: list[np.ndarray], W: Any, n: Any, d: Any, runs: Any, Z: Any) -> Any:
        best = None
        for x0 in starts:
            result = minimize(
                self._loss, x0, args=(W, n, d, runs, np.log(Z)), jac=True, method="L-BFGS-B",
                bounds=self.bounds_, options={"maxiter": 3000},
            )  # fmt: skip
            if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
                best = result
        if best is None:
            raise ScalingDataError("CapacityLaw: no start gave a finite fit")
        return np.asarray(best.x)

    def fit(self, X: Any, Y: Any) -> CapacityLaw:
        with one_blas_thread():
            return self._fit(X, Y)

    def _fit(self, X: Any, Y: Any) -> CapacityLaw:
        W, N, D = split_inputs(X)
        Y = np.asarray(Y, dtype=float)
        m = W.shape[1]
        if Y.ndim != 2 or Y.shape != (len(W), m):
            raise ScalingDataError(
                f"CapacityLaw: Y must be (n, m) = ({len(W)}, {m}), column i the loss on training "
                f"domain i (the capacity split couples all domains); got shape {Y.shape}"
            )
        for i in range(m):
            check_target(Y[:, i], len(W), where=f"Y[:, {i}]")
        if not self.eps > 0:
            raise ValueError(f"CapacityLaw: eps must be > 0, got {self.eps}")
        runs = run_ids(W, N)
        if len(np.unique(runs)) < 3:
            raise ScalingDataError("CapacityLaw: a scaling law needs at least 3 runs")
        weights = np.full(m, 1.0 / m) if self.target_weights is None else self.target_weights
        self.weights_ = np.asarray(weights, dtype=float)
        if self.weights_.shape != (m,):
            raise ScalingDataError(f"CapacityLaw: target_weights must have {m} entries")
        self.n_features_in_ = m + 2
        self.mode_ = size_mode(N, self.tie_exponents)
        self.sizes_ = np.unique(N)
        self.n_ref_, self.d_ref_ = float(np.exp(np.log(N).mean())), float(np.exp(np.log(D).mean()))
        self.y_ref_ = np.median(Y, axis=0)  # (m,)
        Z = Y / self.y_ref_
        n, d = np.log(N / self.n_ref_), np.log(D / self.d_ref_)
        self.bounds_ = self._bounds(m, Z, float(n.min()))
        rng = np.random.default_rng(self.random_state)
        starts = [self._start(m, Z, float(n.min()), rng) for _ in range(max(1, self.n_starts))]
        self.theta_ = self._minimise(starts, W, n, d, runs, Z)
        boots, draws = [], bootstrap_rng(self.random_state)
        for _ in range(self.n_bootstrap if self.n_bootstrap > 1 else 0):
            rows = resample_runs(runs, N, draws)
            boots.append(
                self._minimise([self.theta_], W[rows], n[rows], d[rows], runs[rows], Z[rows])
            )
        self.boot_thetas_ = np.array(boots).reshape(len(boots), len(self.theta_))
        return self

    def refit(self, X: Any, Y: Any) -> CapacityLaw:
        from sklearn.base import clone

        return clone(self).fit(X, Y)

    # -- prediction ----------------------------------------------------------------------------
    def _targets(self, x: np.ndarray, X: Any) -> np.ndarray:
        W, N, D = split_inputs(X)
        if W.shape[1] + 2 != self.n_features_in_:
            raise ScalingDataError(
                f"X has {W.shape[1]} mixture weights; the law was fitted with "
                f"{self.n_features_in_ - 2}"
            )
        check_size(self.mode_, self.sizes_, N, "CapacityLaw")
        n, d = np.log(N / self.n_ref_), np.log(D / self.d_ref_)
        out = self.y_ref_ * self._law(x, W, n, d, run_ids(W, N))
        if not np.all(np.isfinite(out)):
            raise FloatingPointError("CapacityLaw: a prediction is not finite")
        return out

    def predict_targets(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "theta_")
        with one_blas_thread():
            return self._targets(self.theta_, X)  # (n, m)

    def predict_boot(self, X: Any) -> np.ndarray:
        """(B, n): the objective under each bootstrap fit."""
        check_is_fitted(self, "theta_")
        with one_blas_thread():
            rows = [self._targets(x, X) @ self.weights_ for x in self.boot_thetas_]
        return np.array(rows).reshape(len(rows), len(np.asarray(X)))

    def predict(self, X: Any, return_std: bool = False) -> Any:
        mean = self.predict_targets(X) @ self.weights_
        if not return_std:
            return mean
        boots = self.predict_boot(X)
        return mean, boots.std(axis=0) if len(boots) > 1 else np.full(len(mean), np.nan)
