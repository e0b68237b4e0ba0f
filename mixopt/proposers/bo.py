"""Batch Bayesian optimisation over the constrained simplex (BoTorch).

The GP sees raw weights through a log-weights input transform, so the acquisition is a smooth
function of the mixture and is optimised where the mixture lives: box bounds from the space
(lower/upper per domain, repetition caps included), and the simplex as the equality constraint
``Σ w = 1``. The batch acquisition is q-log-noisy-expected-improvement (proxy losses are
noisy), with the mixtures still being evaluated (``propose``'s ``pending``) pending. The starts
come from the space's own sampler: ``raw_samples`` simulated mixtures are scored once and the best
``4 × num_restarts × n`` are the shortlist. A batch (``batch="joint"``, the default) is the
best single mixture (SLSQP from the shortlist's best ``num_restarts``), then the other
``n - 1`` at once with it pending (one SLSQP over the rest of the batch, started from
shortlist rows picked greedily); ``batch="greedy"`` optimises point by point, each with the
earlier ones pending (slower: one SLSQP per point). SLSQP is capped at ``maxiter``
iterations. Domains with a fixed weight are not searched: the optimiser sees
only the free coordinates. Over a finite candidate set the same acquisition picks rows greedily
(the best row, then the best with the chosen ones pending, as BoTorch's
``optimize_acqf_discrete`` does), so a replayed ``bo`` is the ``bo`` a job runs, with a
discrete optimiser.

The GP is fitted once per proposal (hyperparameters on at most ``fit_rows`` told rows, L-BFGS
capped at ``fit_maxiter``; the GP then conditions on every row), so a propose step takes
seconds at 64 trials and at 512 (``experiments/bench/propose_speed.py``).

Proposals are reproducible: the same options, observations (told in the same order; the search
driver tells them in trial order) and proposal count give the same batch, whatever the
machine's core count (same software stack). Every
torch draw (pruning the baseline, the quasi-Monte-Carlo samples) is seeded from
``(seed, proposal count)`` in a forked generator (the caller's torch state is untouched), GP
work runs on one torch thread below a thousand rows, and the optimiser stops on iterations, not
time. ``timeout_s`` adds a wall-clock cap for callers that prefer a bound to reproducibility
(when it binds, the answer depends on the machine's speed).

``recommend()`` minimises the GP's posterior mean over the same space (the best *predicted*
mixture, not the best observed, which would reward a lucky seed), starting from the best
simulated candidates, and reports the posterior standard deviation there.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixopt.proposers.base import Batch, Candidates, Proposer, Recommendation
from mixopt.proposers.options import ProposerOptions


@dataclass(frozen=True, kw_only=True)
class BOOptions(ProposerOptions):
    num_restarts: int = 1  # SLSQP starts per point (greedy) or per optimisation (joint)
    raw_samples: int = 256  # simulated mixtures scored once; the starts are their best
    candidates: int = 20_000  # simulated mixtures behind the recommendation's fallback
    maxiter: int = 30  # SLSQP iterations of each optimisation (the first point; the rest)
    timeout_s: float | None = None  # wall-clock cap of one proposal's optimisation; None: none
    mc_samples: int = 512  # quasi-Monte-Carlo samples of qLogNEI
    chunk: int = 2048  # candidate rows scored at once over a finite set
    fit_maxiter: int = 100  # L-BFGS iterations of the GP's hyperparameter fit
    fit_rows: int = 256  # told rows the hyperparameters are fitted on (a seeded subset beyond)
    batch: str = "joint"  # joint: the best point, then the rest at once; greedy: point by point

    def __post_init__(self) -> None:
        super().__post_init__()
        names = ("num_restarts", "raw_samples", "candidates", "maxiter", "mc_samples", "chunk")
        for name in (*names, "fit_maxiter", "fit_rows"):
            self._int(name)
        if self.batch not in ("greedy", "joint"):
            self.fail("batch", f"'greedy' or 'joint', got {self.batch!r}")
        if self.timeout_s is not None:
            self._positive("timeout_s")


SHORTLIST = 4  # shortlisted simulated mixtures per point of a starting batch
RECOMMEND_RESTARTS = 8  # SLSQP starts of the recommendation (once per job, not per round)


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
        options = self.options
        return fit_gp(  # BoTorch maximises
            X, -y, seed=options.seed, maxiter=options.fit_maxiter, max_rows=options.fit_rows
        )

    @contextlib.contextmanager
    def _torch(self, seed: int) -> Iterator[None]:
        """Torch seeded with ``seed`` (in a forked generator) and on the threads GP work on
        the told rows takes: what makes a proposal the same on every machine."""
        from mixopt.predictors.gp import gp_threads, seeded_torch, torch_threads

        with seeded_torch(seed), torch_threads(gp_threads(self.n_observed)):
            yield

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

    def _optimize(
        self, acquisition: Any, q: int, rng: np.random.Generator, restarts: int | None = None
    ) -> np.ndarray:
        """The best ``q`` mixtures by ``acquisition`` (SLSQP from ``restarts`` starts, None:
        the options'; ``batch`` says whether point by point or the batch at once)."""
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
        raw = self.sampler.candidates(max(self.options.raw_samples, SHORTLIST * q), rng)
        starts = torch.as_tensor(
            (0.95 * raw + 0.05 * self.space.uniform())[:, free], dtype=torch.float64
        )
        restarts = self.options.num_restarts if restarts is None else restarts
        shortlist = starts[self._best_rows(wrapped, starts, SHORTLIST * restarts * q)]
        with warnings.catch_warnings():
            # SLSQP "failed" line searches are routine at the simplex's faces; the best point
            # found is kept either way, so the warnings only add noise to a job's log
            warnings.simplefilter("ignore", category=RuntimeWarning)
            warnings.simplefilter("ignore", category=UserWarning)
            if self.options.batch == "joint":
                x = self._joint(wrapped, acquisition, bounds, simplex, shortlist, free, q, restarts)
            else:
                x = self._greedy(
                    wrapped, acquisition, bounds, simplex, shortlist, free, q, restarts
                )
        return self._full(free, x.reshape(q, len(free)).numpy())

    def _slsqp(
        self, acquisition: Any, bounds: Any, simplex: Any, initial: Any, timeout: float | None
    ) -> Any:
        """SLSQP from the starting batches ``initial`` (r, q, k): the best batch (q, k)."""
        from botorch.optim import optimize_acqf

        x, _ = optimize_acqf(
            acquisition,
            bounds=bounds,
            q=initial.shape[1],
            num_restarts=len(initial),
            batch_initial_conditions=initial,
            equality_constraints=simplex,  # on each point of the batch
            options={"maxiter": self.options.maxiter},
            timeout_sec=timeout,
        )
        return x.detach()

    def _greedy(
        self,
        wrapped: Any,
        acquisition: Any,
        bounds: Any,
        simplex: Any,
        shortlist: Any,
        free: np.ndarray,
        q: int,
        restarts: int,
    ) -> Any:
        """Point by point, each optimised from the shortlist's best rows with the points chosen
        before pending (rescored: the shortlist is in score order for the first)."""
        import torch

        restarts = min(restarts, len(shortlist))
        timeout = self.options.timeout_s
        points: list[Any] = []
        for i in range(q):
            if i == 0:
                order = torch.arange(restarts)
            else:  # q > 1 only with Monte-Carlo acquisitions, which take pending points
                pending = self._full_tensor(free, torch.cat(points))
                acquisition.set_X_pending(self._pending(pending))
                order = self._best_rows(wrapped, shortlist, restarts)
            initial = shortlist[order].unsqueeze(-2)
            points.append(
                self._slsqp(
                    wrapped, bounds, simplex, initial, None if timeout is None else timeout / q
                )
            )
        if q > 1:
            acquisition.set_X_pending(self._pending(None))
        return torch.cat(points)

    @staticmethod
    def _best_rows(acquisition: Any, rows: Any, k: int) -> Any:
        """Indices of the ``k`` rows (r, d) with the highest acquisition value, each row on its
        own (ties: the earlier row)."""
        import torch

        with torch.no_grad():
            values = acquisition(rows.unsqueeze(-2))
        values = torch.nan_to_num(values, nan=-torch.inf)
        return torch.argsort(values, descending=True, stable=True)[:k]

    def _joint(
        self,
        wrapped: Any,
        acquisition: Any,
        bounds: Any,
        simplex: Any,
        shortlist: Any,
        free: np.ndarray,
        q: int,
        restarts: int,
    ) -> Any:
        """The batch's first point optimised alone (the best single mixture), then the other
        ``q - 1`` at once with it pending: one SLSQP over the rest of the batch."""
        import torch

        timeout = self.options.timeout_s
        share = None if timeout is None else timeout / 2
        first = self._slsqp(wrapped, bounds, simplex, shortlist[:restarts].unsqueeze(-2), share)
        if q == 1:
            return first
        initial = self._greedy_starts(wrapped, acquisition, shortlist, free, q - 1, restarts, first)
        acquisition.set_X_pending(self._pending(self._full_tensor(free, first)))
        rest = self._slsqp(wrapped, bounds, simplex, initial, share)
        acquisition.set_X_pending(self._pending(None))
        return torch.cat([first, rest])

    def _greedy_starts(
        self,
        wrapped: Any,
        acquisition: Any,
        shortlist: Any,
        free: np.ndarray,
        q: int,
        r: int,
        chosen_before: Any,
    ) -> Any:
        """``r`` starting batches (r, q, k) from the shortlist, each chosen greedily with
        ``chosen_before`` (free coordinates) and its own earlier rows pending; an earlier
        batch's rows are taken."""
        import torch

        r = max(1, min(r, len(shortlist) // q))
        taken: list[int] = []
        batches = []
        for _batch in range(r):
            chosen: list[int] = []
            for _ in range(q):
                # q > 1 only with Monte-Carlo acquisitions, which take pending points
                pending = self._full_tensor(free, torch.cat([chosen_before, shortlist[chosen]]))
                acquisition.set_X_pending(self._pending(pending))
                order = self._best_rows(wrapped, shortlist, len(shortlist)).tolist()
                pick = next(int(j) for j in order if int(j) not in taken)
                chosen.append(pick)
                taken.append(pick)
            batches.append(shortlist[chosen])
        acquisition.set_X_pending(self._pending(None))
        return torch.stack(batches)

    def _pending(self, chosen: Any) -> Any:
        """The acquisition's pending points: this proposal's pending mixtures and ``chosen``
        (None: none)."""
        import torch

        parts = [] if self._pending_rows is None else [torch.as_tensor(self._pending_rows)]
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
        seed = self._torch_seed()  # pruning the baseline draws from torch, seeded by _torch
        return qLogNoisyExpectedImprovement(
            model,
            X_baseline=torch.as_tensor(X, dtype=torch.float64),
            prune_baseline=True,
            X_pending=self._pending(None),
            sampler=SobolQMCNormalSampler(torch.Size([self.options.mc_samples]), seed=seed),
        )

    def _propose(self, n: int, rng: np.random.Generator) -> Batch:
        with self._torch(self._torch_seed()):
            return Batch(self._optimize(self._acquisition(), n, rng))

    def _select(self, n: int, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        """Greedy over rows: the best row, then the best with those chosen pending."""
        with self._torch(self._torch_seed()):
            return self._select_rows(n, candidates)

    def _select_rows(self, n: int, candidates: Candidates) -> np.ndarray:
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
        X, y = self._require_observations(2)
        rng = self._recommend_rng()
        with self._torch(int(rng.integers(0, 2**31 - 1))):
            return self._recommend(X, y, rng)

    def _recommend(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Recommendation:
        from botorch.acquisition import PosteriorMean

        from mixopt.predictors.gp import posterior_mean_std

        model = self._fit()
        weights = self._optimize(PosteriorMean(model), 1, rng, RECOMMEND_RESTARTS)[0]
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
