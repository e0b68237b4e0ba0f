"""Data Mixing Laws' nested pipeline: extrapolate each run in D, each mixture in N, then mix.

1. Step law per run (the points along one training curve): ``L(D) = c + (D0/D)^α``, fitted as
   ``c + exp(k − α·log D)``; it extrapolates the run to the target tokens D*.
2. Size law per mixture across its sizes: ``L(N) = c + (N0/N)^α`` on the step-extrapolated
   losses; it extrapolates the mixture to the target size N*. c and N0 are the mixture's, α is
   shared by all mixtures (fitted jointly: with three sizes, three free parameters per mixture
   would pass exactly through its three points and extrapolate its noise). With two sizes α
   cannot be told from N0 and c and is tied to the mean step exponent (as the other laws tie N-
   to D-exponents; ``tie_exponents``). With one size only that size can be predicted.
3. The mixing law ``c + k·exp(t·w)`` (``mixopt.predictors.law``) on the mixtures' losses at
   (N*, D*), which predicts any mixture there.

Stages 1 and 2 depend on (N*, D*), so ``predict`` fits the mixing law once per distinct target
(N*, D*) asked for and caches it. The interval: the mixing law refitted on mixtures drawn with
replacement (``n_bootstrap`` times), the same draws for every target of one objective.
Every run needs at least 3 points along its curve (evaluate during training: ``eval_every``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from mixopt.predictors.scaling.base import (
    ScalingDataError,
    check_size,
    check_target,
    huber,
    mixture_ids,
    one_blas_thread,
    run_ids,
    size_mode,
    split_inputs,
)
from mixopt.predictors.scaling.joint import EXPONENT_BOUNDS

MIN_POINTS = 3


def fit_power_laws(
    t: np.ndarray,
    y: np.ndarray,
    group: np.ndarray,
    *,
    delta: float,
    exponent: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """``y ≈ c_g + exp(k_g − α·t)`` for groups g = 0..G-1 sharing α (fixed if ``exponent``).

    Huber loss on log residuals, L-BFGS-B with analytic gradients, three starts.
    Returns c (G,), k (G,), α.
    """
    G = int(group.max()) + 1
    low = np.array([y[group == g].min() for g in range(G)])
    mean_t = np.array([t[group == g].mean() for g in range(G)])
    mean_y = np.array([y[group == g].mean() for g in range(G)])

    def unpack(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        return x[:G], x[G : 2 * G], float(x[-1] if exponent is None else exponent)

    def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        c, k, alpha = unpack(x)
        term = np.exp(k[group] - alpha * t)
        pred = c[group] + term
        r = np.log(pred) - np.log(y)
        psi = np.clip(r, -delta, delta) / (len(y) * delta**2) / pred
        grad = [np.bincount(group, psi, G), np.bincount(group, psi * term, G)]
        if exponent is None:
            grad.append(np.array([-(psi * term * t).sum()]))
        return float(np.mean(huber(r, delta))) / delta**2, np.concatenate(grad)

    bounds = [(0.0, float(v) * (1 - 1e-9)) for v in low]
    bounds += [(-30.0, float(np.log(y.max())) + 5.0)] * G
    bounds += [EXPONENT_BOUNDS] if exponent is None else []
    best = None
    for share, alpha in ((0.5, 0.3), (0.9, 0.7), (0.1, 0.1)):
        a0 = alpha if exponent is None else exponent
        c0 = share * low
        k0 = np.log(np.maximum(mean_y - c0, 1e-12)) + a0 * mean_t
        x0 = np.concatenate([c0, k0, [a0] if exponent is None else []])
        result = minimize(loss, x0, jac=True, method="L-BFGS-B", bounds=bounds)
        if best is None or result.fun < best.fun:
            best = result
    assert best is not None
    return unpack(best.x)


class NestedLaw(RegressorMixin, BaseEstimator):
    def __init__(
        self,
        n_starts: int = 8,
        n_bootstrap: int = 32,
        huber_delta: float = 1e-3,
        tie_exponents: bool | None = None,
        random_state: int = 0,
    ) -> None:
        self.n_starts = n_starts
        self.n_bootstrap = n_bootstrap
        self.huber_delta = huber_delta
        self.tie_exponents = tie_exponents
        self.random_state = random_state

    @property
    def has_std(self) -> bool:
        return self.n_bootstrap > 1

    def fit(self, X: Any, y: Any) -> NestedLaw:
        with one_blas_thread():
            return self._fit(X, y)

    def _fit(self, X: Any, y: Any) -> NestedLaw:
        W, N, D = split_inputs(X)
        y = check_target(y, len(W))
        runs = run_ids(W, N)
        self.n_features_in_ = W.shape[1] + 2
        self.mode_ = size_mode(N, self.tie_exponents)
        self.sizes_ = np.unique(N)
        self.n_ref_, self.d_ref_ = float(np.exp(np.log(N).mean())), float(np.exp(np.log(D).mean()))
        labels = np.unique(runs)
        self.run_w_ = np.array([W[runs == r][0] for r in labels])  # (R, m)
        self.run_n_ = np.array([N[runs == r][0] for r in labels])  # (R,)
        steps = []
        for r in labels:
            rows = runs == r
            if len(np.unique(D[rows])) < MIN_POINTS:
                raise ScalingDataError(
                    f"NestedLaw: the run of mixture {np.round(W[rows][0], 4).tolist()} at "
                    f"N={N[rows][0]:.4g} has {len(np.unique(D[rows]))} distinct token counts; "
                    f"the step law needs at least {MIN_POINTS} points along each run "
                    "(evaluate during training: eval_every)"
                )
            t = np.log(D[rows] / self.d_ref_)
            one = np.zeros(len(t), dtype=int)
            c, k, alpha = fit_power_laws(t, y[rows], one, delta=self.huber_delta)
            steps.append([c[0], k[0], alpha])
        self.steps_ = np.array(steps)  # (R, 3): c, k, alpha of each run's step law
        self.run_mixture_ = mixture_ids(self.run_w_)
        if self.run_mixture_.max() + 1 < 3:
            raise ScalingDataError("NestedLaw: the mixing law needs at least 3 distinct mixtures")
        self.stages_: dict[tuple[float, float], tuple[Any, list[Any]]] = {}
        return self

    # -- stages 1 and 2 at one target (N*, D*) ---------------------------------------------------
    def mixture_losses(self, n_target: float, d_target: float) -> tuple[np.ndarray, np.ndarray]:
        """The mixtures (M, m) and their extrapolated losses (M,) at (N*, D*)."""
        check_is_fitted(self, "steps_")
        t = np.log(d_target / self.d_ref_)
        at_d = self.steps_[:, 0] + np.exp(self.steps_[:, 1] - self.steps_[:, 2] * t)  # (R,)
        target = np.log(n_target / self.n_ref_)
        sizes = np.log(self.run_n_ / self.n_ref_)  # (R,)
        exact = np.abs(sizes - target) < 1e-6
        mixes = np.unique(self.run_mixture_)
        of = [self.run_mixture_ == g for g in mixes]
        n_sizes = np.array([len(np.unique(np.round(sizes[rows], 6))) for rows in of])
        hit = np.array([exact[rows].any() for rows in of])
        losses = {
            int(g): float(at_d[rows & exact].mean())
            for g, rows, h in zip(mixes, of, hit, strict=True)
            if h
        }
        extrapolate = mixes[~hit & (n_sizes >= 2)]
        if len(extrapolate):
            runs = np.isin(self.run_mixture_, extrapolate)
            group = np.searchsorted(extrapolate, self.run_mixture_[runs])
            tie = self.mode_ == "tied" or len(np.unique(np.round(sizes, 6))) == 2
            exponent = float(self.steps_[runs, 2].mean()) if tie else None
            c, k, alpha = fit_power_laws(
                sizes[runs], at_d[runs], group, delta=self.huber_delta, exponent=exponent
            )
            for g, ci, ki in zip(extrapolate, c, k, strict=True):
                losses[int(g)] = float(ci + np.exp(ki - alpha * target))
        if len(losses) < 3:
            raise ScalingDataError(
                f"NestedLaw: only {len(losses)} mixture(s) can be extrapolated to "
                f"N={n_target:.4g}; the mixing law needs 3 (each at two sizes or more)"
            )
        order = sorted(losses)
        first = [int(np.flatnonzero(self.run_mixture_ == g)[0]) for g in order]
        return self.run_w_[first], np.array([losses[g] for g in order])

    def _stage(self, n_target: float, d_target: float) -> tuple[Any, list[Any]]:
        key = (round(float(np.log(n_target)), 9), round(float(np.log(d_target)), 9))
        if key not in self.stages_:
            from mixopt.predictors.law import MixingLawPredictor

            mixtures, losses = self.mixture_losses(n_target, d_target)
            law = MixingLawPredictor(n_starts=self.n_starts, random_state=self.random_state)
            rng = np.random.default_rng(self.random_state)
            boots = []
            for _ in range(self.n_bootstrap if self.n_bootstrap > 1 else 0):
                rows = rng.integers(0, len(losses), size=len(losses))
                boots.append(
                    MixingLawPredictor(n_starts=2, random_state=self.random_state).fit(
                        mixtures[rows], losses[rows]
                    )
                )
            self.stages_[key] = (law.fit(mixtures, losses), boots)
        return self.stages_[key]

    # -- prediction ----------------------------------------------------------------------------
    def _groups(self, X: Any) -> tuple[np.ndarray, list[tuple[np.ndarray, float, float]]]:
        check_is_fitted(self, "steps_")
        W, N, D = split_inputs(X)
        if W.shape[1] + 2 != self.n_features_in_:
            raise ScalingDataError(
                f"X has {W.shape[1]} mixture weights; the law was fitted with "
                f"{self.n_features_in_ - 2}"
            )
        check_size(self.mode_, self.sizes_, N, "NestedLaw")
        keys = np.column_stack([np.round(np.log(N), 9), np.round(np.log(D), 9)])
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        return W, [(inverse == g, float(N[i]), float(D[i])) for g, i in enumerate(first)]

    def predict_boot(self, X: Any) -> np.ndarray:
        """(B, n): the prediction of each bootstrap mixing law."""
        W, groups = self._groups(X)
        out = np.empty((self.n_bootstrap if self.n_bootstrap > 1 else 0, len(W)))
        with one_blas_thread():
            for rows, n_target, d_target in groups:
                for b, law in enumerate(self._stage(n_target, d_target)[1]):
                    out[b, rows] = law.predict(W[rows])
        return out

    def predict(self, X: Any, return_std: bool = False) -> Any:
        W, groups = self._groups(X)
        mean = np.empty(len(W))
        with one_blas_thread():
            for rows, n_target, d_target in groups:
                mean[rows] = self._stage(n_target, d_target)[0].predict(W[rows])
        if not np.all(np.isfinite(mean)):
            raise FloatingPointError("NestedLaw: a prediction is not finite")
        if not return_std:
            return mean
        boots = self.predict_boot(X)
        return mean, boots.std(axis=0) if len(boots) > 1 else np.full(len(mean), np.nan)

    def refit(self, X: Any, y: Any) -> NestedLaw:
        from sklearn.base import clone

        return clone(self).fit(X, y)
