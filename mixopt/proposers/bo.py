"""Batch Bayesian optimisation over the constrained simplex (BoTorch).

The GP sees raw weights through a log-weights input transform, so the acquisition is a smooth
function of the mixture and is optimised where the mixture lives: box bounds from the space
(lower/upper per domain, repetition caps included), and the simplex as the equality constraint
``Σ w = 1``. The batch acquisition is q-log-noisy-expected-improvement (proxy losses are
noisy), built greedily: each point is optimised with the earlier ones pending (SLSQP,
capped in iterations and time, so a proposal step stays within seconds).
Domains with a fixed weight are not searched: the optimiser sees only the free coordinates.

``recommend()`` minimises the GP's posterior mean over the same space (the best *predicted*
mixture, not the best observed, which would reward a lucky seed), starting from the best
simulated candidates, and reports the posterior standard deviation there.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mixopt.proposers.base import Proposer, Recommendation
from mixopt.sampling import DirichletSampler


class BOProposer(Proposer):
    def __init__(
        self,
        sampler: DirichletSampler,
        *,
        num_restarts: int = 8,
        raw_samples: int = 256,
        candidates: int = 20_000,
        maxiter: int = 100,
        timeout_s: float = 20.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.sampler = sampler
        self.num_restarts = num_restarts
        self.raw_samples = raw_samples
        self.maxiter = maxiter
        self.timeout_s = timeout_s
        self.candidates = candidates
        self.seed = seed
        self._asked = 0

    @property
    def space(self) -> Any:
        return self.sampler.space

    def _fit(self) -> Any:
        from mixopt.predictors.gp import fit_gp

        X, y = self._require_observations(2)
        return fit_gp(X, -y, seed=self.seed)  # BoTorch maximises

    def _free_problem(self) -> tuple[np.ndarray, Any, Any, float]:
        """Indices of free domains, their bounds, the simplex constraint on them, fixed mass."""
        import torch

        free = np.flatnonzero(self.space.upper - self.space.lower > 1e-12)
        fixed_mass = float(self.space.lower[~np.isin(np.arange(self.space.dim), free)].sum())
        bounds = torch.tensor(
            np.stack([self.space.lower[free], self.space.upper[free]]), dtype=torch.float64
        )
        k = len(free)
        simplex = [(torch.arange(k), torch.ones(k, dtype=torch.float64), 1.0 - fixed_mass)]
        return free, bounds, simplex, fixed_mass

    def _full(self, free: np.ndarray, x_free: np.ndarray) -> np.ndarray:
        """Free coordinates (q, k) → full mixtures (q, m) with the fixed weights filled in."""
        out = np.tile(self.space.lower, (len(x_free), 1))
        out[:, free] = x_free
        return self.space.project(out)

    def _optimize(self, acquisition: Any, q: int, rng: np.random.Generator) -> np.ndarray:
        import torch

        free, bounds, simplex, _ = self._free_problem()
        if len(free) == 0:
            return np.tile(self.space.lower, (q, 1))
        wrapped = acquisition
        fixed = np.setdiff1d(np.arange(self.space.dim), free)
        if len(fixed):
            from botorch.acquisition import FixedFeatureAcquisitionFunction

            wrapped = FixedFeatureAcquisitionFunction(
                acquisition, self.space.dim, fixed.tolist(), self.space.lower[fixed].tolist()
            )
        # start inside the polytope, off its faces: SLSQP stalls on points at a bound
        raw = self.sampler.candidates(self.raw_samples * q, rng)
        starts = (0.95 * raw + 0.05 * self.space.uniform())[:, free]
        with torch.no_grad():
            values = wrapped(torch.as_tensor(starts, dtype=torch.float64).reshape(-1, q, len(free)))
        best = torch.argsort(values, descending=True)[: self.num_restarts]
        initial = torch.as_tensor(starts, dtype=torch.float64).reshape(-1, q, len(free))[best]
        with warnings.catch_warnings():
            # SLSQP "failed" line searches are routine at the simplex's faces; the best point
            # found is kept either way, so the warnings only add noise to a job's log
            warnings.simplefilter("ignore", category=RuntimeWarning)
            warnings.simplefilter("ignore", category=UserWarning)
            points = self._greedy(wrapped, acquisition, bounds, simplex, initial, free, q)
        return self._full(free, torch.cat(points).reshape(q, len(free)).numpy())

    def _greedy(
        self,
        wrapped: Any,
        acquisition: Any,
        bounds: Any,
        simplex: Any,
        initial: Any,
        free: np.ndarray,
        q: int,
    ) -> list[Any]:
        import torch
        from botorch.optim import optimize_acqf

        points: list[Any] = []
        for i in range(q):  # greedy batch: each point conditioned on the ones chosen before
            x, _ = optimize_acqf(
                wrapped,
                bounds=bounds,
                q=1,
                num_restarts=len(initial),
                batch_initial_conditions=initial[:, i : i + 1, :],
                equality_constraints=simplex,
                options={"maxiter": self.maxiter},
                timeout_sec=self.timeout_s / q,
            )
            points.append(x.detach())
            if i + 1 < q:  # q > 1 only with Monte-Carlo acquisitions, which take pending points
                pending = torch.cat(points).reshape(-1, len(free))
                acquisition.set_X_pending(self._full_tensor(free, pending))
        if q > 1:
            acquisition.set_X_pending(None)
        return points

    def _full_tensor(self, free: np.ndarray, x_free: Any) -> Any:
        import torch

        out = torch.as_tensor(self.space.lower, dtype=torch.float64).repeat(len(x_free), 1)
        out[:, torch.as_tensor(free)] = x_free
        return out

    def ask(self, n: int) -> np.ndarray:
        import torch
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement

        X, _ = self._require_observations(2)
        rng = np.random.default_rng([self.seed, 3, self._asked])
        torch.manual_seed(self.seed + self._asked)
        self._asked += 1
        model = self._fit()
        acquisition = qLogNoisyExpectedImprovement(
            model, X_baseline=torch.as_tensor(X, dtype=torch.float64), prune_baseline=True
        )
        return self._optimize(acquisition, n, rng)

    def recommend(self) -> Recommendation:
        from botorch.acquisition import PosteriorMean

        from mixopt.predictors.gp import posterior_mean_std

        X, y = self._require_observations(2)
        rng = np.random.default_rng([self.seed, 4, self.n_observed])
        model = self._fit()
        weights = self._optimize(PosteriorMean(model), 1, rng)[0]
        pool = np.vstack([self.sampler.candidates(self.candidates, rng), X])
        mean, _ = posterior_mean_std(model, pool, observation_noise=False)
        if mean.max() > posterior_mean_std(model, weights[None], observation_noise=False)[0][0]:
            weights = pool[int(np.argmax(mean))]  # the optimiser stalled: keep the best seen
        mean_w, std_w = posterior_mean_std(model, weights[None], observation_noise=False)
        return Recommendation(
            weights=weights,
            predicted=-float(mean_w[0]),
            predicted_std=float(std_w[0]),
            evidence=list(range(len(y))),
            nearest=self._nearest(weights),
            method=f"bo: GP posterior mean minimised over the space, {len(y)} trials",
        )

    def state_dict(self) -> dict:
        return {**super().state_dict(), "asked": self._asked}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._asked = int(state["asked"])
