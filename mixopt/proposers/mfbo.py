"""Multi-fidelity, cost-aware Bayesian optimisation (ADMIRE-BayesOpt's setting).

Trials run at several fidelities: cheaper proxies (fewer tokens, a smaller preset) and the
*target* fidelity, the proxy the recommendation is for; ``levels`` are their training compute,
the target last.

Why the first version lost to single-fidelity ``bo`` at equal cost (RegMix replay, a cheap
proxy at 1/10 of the cost): (1) its GP took the fidelity as one more input of a product kernel,
so every level shared one noise and one signal variance: the noisy cheap level blurred the
target, and how far a cheap trial informs the target was one lengthscale, the same wherever the
cheap runs already were; (2) its score, EI at the target x posterior correlation x cost ratio,
paid a cheap trial ten times a target one at any correlation above 0.1, so nearly the whole
budget went to cheap trials and few target trials (the only ones that count) were run, late;
(3) it had no notion of how much target evidence a recommendation needs.

Now (the model in :mod:`mixopt.proposers.mfgp`): linear autoregressive co-kriging, f_target =
rho * f_cheap + delta, chained over the levels, each with its own mean and noise, fitted
jointly on every trial. A proposal scores each candidate (mixture, level) by

    log EI of the mixture at the *target* (over the best posterior mean of a mixture told)
      + log (share of the target's posterior variance at that mixture that one trial at the
             level would remove: cov(f_target, y_level)^2 / (var f_target * var y_level))
      - log (cost of the level / cost of the target),

so a cheap trial wins while the cheap level still explains much of what is unknown about the
target there, and stops winning as the cheap runs saturate (what is left is delta, which only
target trials see). At least ``target_share`` of the cost spent goes to target trials: below
it, the next trial is a target one, at the best posterior mean at the target (the cheap trials
explore; a target trial, dear, exploits what they found). A level's cost is the mean measured
cost (e.g. wall seconds) of its trials; a level without one is its prior cost (``costs``, by default
``levels``) times the measured/prior ratio of the levels that have one. ``recommend()``
minimises posterior mean + ``caution`` x std *at the target* and reports it on the target's
loss level.

Over a finite candidate set (``mixopt.replay``'s pools) each row is scored the same way at its
own level and cost. A batch is chosen greedily, its mixtures ``min_distance`` apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mixopt.proposers.base import Batch, Candidates, Proposer, Recommendation
from mixopt.proposers.options import ProposerOptions


@dataclass(frozen=True, kw_only=True)
class MFBOOptions(ProposerOptions):
    levels: tuple[float, ...]  # training compute of a trial per fidelity (FLOPs), target last
    costs: tuple[float, ...] | None = None  # prior cost per level until measured; None: levels
    candidates: int = 2000  # simulated mixtures scored (at every level) per proposal
    min_distance: float = 0.05  # L1 distance between the mixtures of one batch
    caution: float = 1.0  # recommend() minimises mean + caution * std at the target
    target_share: float = 0.3  # at least this share of the cost spent goes to target trials

    def __post_init__(self) -> None:
        super().__post_init__()
        levels = self._floats("levels", self.levels)
        if len(levels) < 2 or any(v <= 0 for v in levels):
            self.fail("levels", "at least two positive fidelities, the target last")
        if max(levels[:-1]) >= levels[-1]:
            self.fail("levels", "every cheaper fidelity must cost less than the target")
        self._set("levels", levels)
        if self.costs is not None:
            costs = self._floats("costs", self.costs)
            if len(costs) != len(levels) or any(c <= 0 for c in costs):
                self.fail("costs", "one positive cost per level")
            self._set("costs", costs)
        self._int("candidates")
        self._positive("min_distance", allow_zero=True)
        self._positive("caution", allow_zero=True)
        if not 0.0 <= self.target_share <= 1.0:
            self.fail("target_share", "a share of the cost in [0, 1]")


class MultiFidelityBOProposer(Proposer):
    """Ask/tell over (mixture, fidelity): ``tell`` takes each row's level (index into
    ``levels``) and measured cost, a proposal returns the level to run each mixture at."""

    Options = MFBOOptions
    options: MFBOOptions
    stream = 5

    @property
    def n_levels(self) -> int:
        return len(self.options.levels)

    @property
    def levels(self) -> np.ndarray:
        return np.asarray(self.options.levels, dtype=float)

    def level_costs(self) -> np.ndarray:
        """Cost of one trial per level: measured where told, else the prior scaled (see top)."""
        prior = np.asarray(self.options.costs or self.options.levels, dtype=float)
        measured = {
            level: float(np.mean(self.costs_[rows]))
            for level in range(self.n_levels)
            if (rows := (self.levels_ == level) & np.isfinite(self.costs_)).any()
        }
        if not measured:
            return prior
        ratio = float(np.mean([measured[level] / prior[level] for level in measured]))
        return np.array([measured.get(level, ratio * prior[level]) for level in range(len(prior))])

    def spent(self) -> tuple[float, float]:
        """Cost spent so far: at the target, and in all (unmeasured rows at their level's)."""
        costs = np.where(np.isfinite(self.costs_), self.costs_, self.level_costs()[self.levels_])
        return float(costs[self.levels_ == self.target_level].sum()), float(costs.sum())

    def _fit(self) -> Any:
        from mixopt.proposers.mfgp import fit_cokriging, scaled_by_level

        X, y = self._require_observations(2)
        z, means, scale = scaled_by_level(y, self.levels_, self.n_levels)
        # BoTorch maximises: the model sees -z
        model = fit_cokriging(X, self.levels_, -z, self.n_levels, seed=self.options.seed)
        return model, means, scale

    def _target_scores(self, model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean (-z: higher is a lower loss) and log EI at the target, per row; the
        incumbent is the best posterior mean at the target over the mixtures told."""
        import torch
        from botorch.acquisition.analytic import LogExpectedImprovement

        X_, _ = self._require_observations(2)
        with torch.no_grad():
            incumbent = model.posterior(self._at(X_, self.target_level).unsqueeze(-2)).mean.max()
            acquisition = LogExpectedImprovement(model, best_f=incumbent)
            mean, log_ei = [], []
            for start in range(0, len(X), 2048):
                rows = self._at(X[start : start + 2048], self.target_level).unsqueeze(-2)
                mean.append(model.posterior(rows).mean.reshape(-1).numpy())
                log_ei.append(acquisition(rows).numpy())
        return np.concatenate(mean), np.nan_to_num(np.concatenate(log_ei), nan=-np.inf)

    def _information(self, model: Any, X: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Share of var f_target(x) one observation at (x, level) removes, per row."""
        import torch

        pairs = torch.stack([self._at(X, self.target_level), self._at(X, levels)], dim=-2)
        noise = model.likelihood.noise_covar.noise.detach().numpy()
        out = []
        with torch.no_grad():
            for start in range(0, len(X), 2048):
                cov = model.posterior(pairs[start : start + 2048]).distribution.covariance_matrix
                out.append(cov.numpy())
        cov = np.concatenate(out) if out else np.zeros((0, 2, 2))
        var_t, var_o = np.maximum(cov[:, 0, 0], 1e-12), cov[:, 1, 1] + noise[levels]
        return cov[:, 0, 1] ** 2 / (var_t * np.maximum(var_o, 1e-12))

    def _at(self, X: np.ndarray, level: Any) -> Any:
        import torch

        column = np.broadcast_to(np.asarray(level, dtype=float), (len(X),))
        return torch.as_tensor(np.column_stack([X, column]), dtype=torch.float64)

    def _greedy(self, X: np.ndarray, levels: np.ndarray, costs: np.ndarray, n: int) -> list[int]:
        """``n`` rows chosen one by one: the best score among the rows allowed (target rows
        only while the target's share of the cost spent, chosen rows included, is short),
        ``min_distance`` from the mixtures chosen before where the rows allow."""
        model, _, _ = self._fit()
        mean, log_ei = self._target_scores(model, X)
        information = np.maximum(self._information(model, X, levels), 1e-12)
        target_cost = self.level_costs()[self.target_level]
        gain = log_ei + np.log(information) - np.log(costs / target_cost)
        on_target, everything = self.spent()
        chosen: list[int] = []
        open_rows = np.ones(len(X), dtype=bool)
        for _ in range(n):
            short = on_target < self.options.target_share * everything
            # a target trial the share calls for exploits: the best mean at the target (the
            # cheap trials explore); otherwise the rows compete by improvement x information
            score = mean if short else gain
            allowed = open_rows & ((levels == self.target_level) | (not short))
            if chosen:
                far = np.abs(X[:, None, :] - X[chosen][None]).sum(-1).min(axis=1)
                if (allowed & (far >= self.options.min_distance)).any():
                    allowed &= far >= self.options.min_distance
            if not allowed.any():
                allowed = open_rows
            pick = int(np.flatnonzero(allowed)[np.argmax(score[allowed])])
            chosen.append(pick)
            open_rows[pick] = False
            everything += costs[pick]
            on_target += costs[pick] if levels[pick] == self.target_level else 0.0
        return chosen

    def _propose(self, n: int, rng: np.random.Generator) -> Batch:
        pool = self.sampler.candidates(self.options.candidates, rng)  # (c, m)
        c, k = len(pool), self.n_levels
        X = np.repeat(pool, k, axis=0)
        levels = np.tile(np.arange(k), c)
        chosen = self._greedy(X, levels, np.tile(self.level_costs(), c), n)
        return Batch(X[chosen], levels[chosen])

    def _select(self, n: int, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        levels = (
            np.full(len(candidates), self.target_level)
            if candidates.levels is None
            else candidates.levels
        )
        costs = self.level_costs()[levels] if candidates.costs is None else candidates.costs
        return np.array(self._greedy(candidates.X, levels, costs, n))

    def recommend(self) -> Recommendation:
        import torch

        X, y = self._require_observations(2)
        model, means, scale = self._fit()
        rng = self._recommend_rng()
        pool = np.vstack([self.sampler.candidates(max(self.options.candidates, 5000), rng), X])
        with torch.no_grad():
            posterior = model.posterior(self._at(pool, self.target_level).unsqueeze(-2))
            mean = means[self.target_level] - scale * posterior.mean.reshape(-1).numpy()
            std = scale * posterior.variance.clamp_min(0).sqrt().reshape(-1).numpy()
        # pessimistic: the lowest mean + std, so a mixture the target runs barely cover does not
        # win on the cheap runs' word alone (they may rank mixtures differently)
        caution = self.options.caution
        best = int(np.argmin(mean + caution * std))
        on_target = int(np.sum(self.levels_ == self.target_level))
        level_note = "" if on_target else "; no target trial: on the nearest level's loss scale"
        return Recommendation(
            weights=pool[best],
            predicted=float(mean[best]),
            predicted_std=float(std[best]),
            evidence=list(range(len(y))),
            nearest=self._nearest(pool[best]),
            method=(
                f"mfbo: lowest posterior mean + {caution:g} std at the target fidelity, "
                f"{len(y)} trials ({on_target} at the target){level_note}"
            ),
        )

    # transitional, for the search driver that branches on this class; to be removed once it
    # calls propose/tell with levels and costs

    @property
    def costs(self) -> np.ndarray:
        return self.level_costs()

    @costs.setter
    def costs(self, value: Any) -> None:
        from dataclasses import replace

        self.options = replace(self.options, costs=tuple(np.asarray(value, dtype=float).tolist()))

    def ask_with_fidelity(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        batch = self.propose(n)
        assert batch.levels is not None
        return batch.X, batch.levels

    def tell_at(
        self, X: np.ndarray, y: np.ndarray, level: np.ndarray, targets: np.ndarray | None = None
    ) -> None:
        self.tell(X, y, targets, levels=level)
