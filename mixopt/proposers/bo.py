"""Batch Bayesian optimisation over the constrained simplex (BoTorch).

The GP sees raw weights through a log-weights input transform, so the acquisition is a smooth
function of the mixture and is optimised where the mixture lives: box bounds from the space
(lower/upper per domain, repetition caps included), and the simplex as the equality constraint
``Σ w = 1``. The batch acquisition is q-log-noisy-expected-improvement (proxy losses are
noisy), built greedily: each point is optimised with the earlier ones pending (SLSQP,
capped in iterations and time, so a proposal step stays within seconds), and with the
mixtures still being evaluated (``X_pending_``) pending too.
Domains with a fixed weight are not searched: the optimiser sees only the free coordinates.
Over a finite candidate set the same acquisition picks rows greedily (the best row, then the
best with the chosen ones pending, as BoTorch's ``optimize_acqf_discrete`` does), so a replayed
``bo`` is the ``bo`` a job runs, with a discrete optimiser. The Monte-Carlo samples of the
acquisition are seeded per proposal; with ``timeout_s=None`` a proposal is deterministic (the
time cap, when it binds, stops SLSQP at a point that depends on the machine's speed).

``recommend()`` minimises the GP's posterior mean over the same space (the best *predicted*
mixture, not the best observed, which would reward a lucky seed), starting from the best
simulated candidates, and reports the posterior standard deviation there.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixopt.proposers.base import Batch, Candidates, Proposer, Recommendation
from mixopt.proposers.options import ProposerOptions


@dataclass(frozen=True, kw_only=True)
class BOOptions(ProposerOptions):
    num_restarts: int = 8  # SLSQP starts per point of a batch
    raw_samples: int = 256  # simulated mixtures per point the starts are picked from
    candidates: int = 20_000  # simulated mixtures behind the recommendation's fallback
    maxiter: int = 100  # SLSQP iterations per start
    timeout_s: float | None = 20.0  # time cap of one proposal's optimisation; None: no cap
    mc_samples: int = 512  # quasi-Monte-Carlo samples of qLogNEI
    chunk: int = 2048  # candidate rows scored at once over a finite set

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_restarts", "raw_samples", "candidates", "maxiter", "mc_samples", "chunk"):
            self._int(name)
        if self.timeout_s is not None:
            self._positive("timeout_s")


class BOProposer(Proposer):
    Options = BOOptions
    options: BOOptions
    stream = 3
    takes_pending = True

    @property
    def space(self) -> Any:
        return self.sampler.space

    def _fit(self) -> Any:
        from mixopt.predictors.gp import fit_gp

        X, y = self._require_observations(2)
        return fit_gp(X, -y, seed=self.options.seed)  # BoTorch maximises

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
        raw = self.sampler.candidates(self.options.raw_samples * q, rng)
        starts = (0.95 * raw + 0.05 * self.space.uniform())[:, free]
        with torch.no_grad():
            values = wrapped(torch.as_tensor(starts, dtype=torch.float64).reshape(-1, q, len(free)))
        best = torch.argsort(values, descending=True)[: self.options.num_restarts]
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
                options={"maxiter": self.options.maxiter},
                timeout_sec=None if self.options.timeout_s is None else self.options.timeout_s / q,
            )
            points.append(x.detach())
            if i + 1 < q:  # q > 1 only with Monte-Carlo acquisitions, which take pending points
                pending = torch.cat(points).reshape(-1, len(free))
                acquisition.set_X_pending(self._pending(self._full_tensor(free, pending)))
        if q > 1:
            acquisition.set_X_pending(self._pending(None))
        return points

    def _pending(self, chosen: Any) -> Any:
        """The acquisition's pending points: ``X_pending_`` and ``chosen`` (None: none)."""
        import torch

        parts = [] if self.X_pending_ is None else [torch.as_tensor(self.X_pending_)]
        parts += [] if chosen is None else [torch.as_tensor(chosen, dtype=torch.float64)]
        return torch.cat([p.to(torch.float64) for p in parts]) if parts else None

    def _full_tensor(self, free: np.ndarray, x_free: Any) -> Any:
        import torch

        out = torch.as_tensor(self.space.lower, dtype=torch.float64).repeat(len(x_free), 1)
        out[:, torch.as_tensor(free)] = x_free
        return out

    def _acquisition(self) -> Any:
        """qLogNEI on the GP of what was told, its random draws seeded for this proposal."""
        import torch
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.sampling import SobolQMCNormalSampler

        X, _ = self._require_observations(2)
        model = self._fit()
        seed = self._torch_seed()
        torch.manual_seed(seed)  # pruning the baseline draws its own samples
        return qLogNoisyExpectedImprovement(
            model,
            X_baseline=torch.as_tensor(X, dtype=torch.float64),
            prune_baseline=True,
            X_pending=self._pending(None),
            sampler=SobolQMCNormalSampler(torch.Size([self.options.mc_samples]), seed=seed),
        )

    def _propose(self, n: int, rng: np.random.Generator) -> Batch:
        return Batch(self._optimize(self._acquisition(), n, rng))

    def _select(self, n: int, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        """Greedy over rows: the best row, then the best with those chosen pending."""
        import torch

        acquisition = self._acquisition()
        choices = torch.as_tensor(candidates.X, dtype=torch.float64)
        chunk = self.options.chunk
        available = np.ones(len(choices), dtype=bool)
        chosen: list[int] = []
        for i in range(n):
            with torch.no_grad():
                values = torch.cat(
                    [
                        acquisition(choices[start : start + chunk].unsqueeze(-2))
                        for start in range(0, len(choices), chunk)
                    ]
                ).numpy()
            open_rows = np.flatnonzero(available)
            scores = np.nan_to_num(values[open_rows], nan=-np.inf)
            best = int(open_rows[np.argmax(scores)])
            chosen.append(best)
            available[best] = False
            if i + 1 < n:
                acquisition.set_X_pending(self._pending(choices[chosen]))
        return np.array(chosen)

    def recommend(self) -> Recommendation:
        from botorch.acquisition import PosteriorMean

        from mixopt.predictors.gp import posterior_mean_std

        X, y = self._require_observations(2)
        rng = self._recommend_rng()
        model = self._fit()
        weights = self._optimize(PosteriorMean(model), 1, rng)[0]
        pool = np.vstack([self.sampler.candidates(self.options.candidates, rng), X])
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
