"""Replay a search on a pool of finished runs: the honest way to compare strategies offline.

A search may learn a pool row's target only by "evaluating" it (adding it to the trace), never
more than ``budget`` rows (and, with a cost column, never more than ``budget_cost``), and never a
row twice. Every strategy starts from ``initial`` random rows, then repeatedly chooses ``batch``
more from the rows not yet evaluated:

- ``random``: a seeded random order.
- ``regmix`` / ``law``: fit a predictor (``auto`` / the mixing law) on what was evaluated and
  take the rows with the best predictions.
- ``bo``: a GP on log-weights and batch log-noisy-expected-improvement (BoTorch), the batch built
  greedily with fantasies over the remaining rows.
- ``mfbo``: multi-fidelity pools (rows at several proxy sizes / token counts, each with a cost):
  a GP over (weights, fidelity), and each row scored by its expected improvement at the *target*
  fidelity, times how much its own fidelity tells about the target (posterior correlation),
  divided by its cost. The initial design is drawn from the cheapest fidelity.

Single-fidelity strategies on a multi-fidelity pool only evaluate target-fidelity rows. The
objective is minimised unless ``maximize``; the trace's ``value`` is always the raw target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixopt.errors import MixoptError
from mixopt.predictors import make_predictor
from mixopt.proposers.mfbo import mf_expected_improvement_per_cost

STRATEGIES = ("random", "regmix", "law", "bo", "mfbo")
DEFAULT_STRATEGY = "bo"


@dataclass(frozen=True)
class ReplayConfig:
    budget: int
    initial: int
    batch: int
    seed: int = 0
    strategy: str = DEFAULT_STRATEGY
    maximize: bool = False
    predictor: str = "auto"
    budget_cost: float | None = None
    target_fidelity: float | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise MixoptError(
                f"unknown strategy {self.strategy!r}; available: {', '.join(STRATEGIES)}"
            )
        if self.budget < 1 or self.initial < 1 or self.batch < 1:
            raise MixoptError("budget, initial and batch must be >= 1")
        if self.budget_cost is not None and self.budget_cost <= 0:
            raise MixoptError("budget_cost must be > 0")


@dataclass
class Pool:
    """The rows a replay may evaluate: weights, target, and optional fidelity and cost."""

    X: np.ndarray  # (n, m)
    y: np.ndarray  # (n,)
    fidelity: np.ndarray | None = None  # (n,)
    cost: np.ndarray | None = None  # (n,)

    def __post_init__(self) -> None:
        n = len(self.y)
        for name, column in (("fidelity", self.fidelity), ("cost", self.cost)):
            if column is not None and (len(column) != n or not np.all(np.isfinite(column))):
                raise MixoptError(f"{name} column must be finite, one value per row")
        if self.cost is not None and np.any(self.cost <= 0):
            raise MixoptError("cost column must be > 0 on every row")

    @property
    def n(self) -> int:
        return len(self.y)

    def row_cost(self, i: int) -> float:
        return 1.0 if self.cost is None else float(self.cost[i])


def replay(
    pool: Pool | np.ndarray, y: np.ndarray | None = None, config: ReplayConfig | None = None
) -> pd.DataFrame:
    """Trace of evaluated rows: ``step``, ``pool_index``, ``value`` (+ ``fidelity``, ``cost``)."""
    if not isinstance(pool, Pool):
        assert y is not None
        pool = Pool(np.asarray(pool, dtype=float), np.asarray(y, dtype=float))
    assert config is not None
    return _Replay(pool, config).run()


class _Replay:
    def __init__(self, pool: Pool, config: ReplayConfig) -> None:
        self.pool = pool
        self.config = config
        self.sign = -1.0 if config.maximize else 1.0
        self.rng = np.random.default_rng(config.seed)
        self.order = self.rng.permutation(pool.n)
        self.target = self._target_fidelity()
        self.eligible = self._eligible()
        self.evaluated: list[int] = []
        self.spent = 0.0

    def _target_fidelity(self) -> float | None:
        if self.pool.fidelity is None:
            return None
        target = self.config.target_fidelity
        if target is None:
            return float(self.pool.fidelity.max())
        if not np.any(np.isclose(self.pool.fidelity, target)):
            raise MixoptError(f"no pool row has the target fidelity {target}")
        return float(target)

    def _eligible(self) -> np.ndarray:
        """Rows the strategy may pick: all for mfbo, else the target fidelity's."""
        if self.pool.fidelity is None or self.target is None or self.config.strategy == "mfbo":
            return np.ones(self.pool.n, dtype=bool)
        return np.isclose(self.pool.fidelity, self.target)

    # --------------------------------------------------------------------------------- loop

    def run(self) -> pd.DataFrame:
        self._take(self._initial())
        while self._affordable().size:
            chosen = self._choose(min(self.config.batch, self.config.budget - len(self.evaluated)))
            if not chosen:
                break
            self._take(chosen)
        return self._trace()

    def _remaining(self) -> np.ndarray:
        mask = self.eligible.copy()
        mask[self.evaluated] = False
        return np.flatnonzero(mask)

    def _affordable(self) -> np.ndarray:
        if len(self.evaluated) >= self.config.budget:
            return np.array([], dtype=int)
        remaining = self._remaining()
        if self.config.budget_cost is None or self.pool.cost is None:
            return remaining
        left = self.config.budget_cost - self.spent
        return remaining[self.pool.cost[remaining] <= left + 1e-12]

    def _take(self, rows: list[int]) -> None:
        for i in rows:
            if len(self.evaluated) >= self.config.budget:
                return
            cost = self.pool.row_cost(i)
            if (
                self.config.budget_cost is not None
                and self.spent + cost > self.config.budget_cost + 1e-12
            ):
                continue
            self.evaluated.append(int(i))
            self.spent += cost

    def _initial(self) -> list[int]:
        """Random rows to start from (model-based strategies need at least two)."""
        if self.config.strategy == "random":
            k = self.config.budget  # random search is the initial design, all the way
        else:
            k = min(self.config.budget, max(2, self.config.initial))
        candidates = [int(i) for i in self.order if self.eligible[i]]
        if self.config.strategy == "mfbo" and self.pool.fidelity is not None:
            cheapest = self.pool.fidelity.min()
            candidates = [i for i in candidates if np.isclose(self.pool.fidelity[i], cheapest)]
        return candidates[:k]

    def _choose(self, take: int) -> list[int]:
        remaining = self._affordable()
        if take <= 0 or remaining.size == 0:
            return []
        strategy = self.config.strategy
        if strategy == "random":
            left = set(remaining.tolist())
            return [int(i) for i in self.order if i in left][:take]
        X, y = self.pool.X[self.evaluated], self.sign * self.pool.y[self.evaluated]
        if strategy in ("regmix", "law"):
            name = "mixing_law" if strategy == "law" else self.config.predictor
            predicted = make_predictor(name).fit(X, y).predict(self.pool.X[remaining])
            return [int(i) for i in remaining[np.argsort(predicted, kind="stable")[:take]]]
        if strategy == "bo":
            return _bo_choose(X, y, self.pool.X, remaining, take, seed=self.config.seed)
        return self._mfbo_choose(remaining, take)

    def _mfbo_choose(self, remaining: np.ndarray, take: int) -> list[int]:
        assert self.pool.fidelity is not None and self.target is not None
        rows = np.array(self.evaluated)
        scores = mf_expected_improvement_per_cost(
            X=self.pool.X[rows],
            fidelity=self.pool.fidelity[rows],
            y=self.sign * self.pool.y[rows],
            candidates=self.pool.X[remaining],
            candidate_fidelity=self.pool.fidelity[remaining],
            candidate_cost=(
                self.pool.cost[remaining]
                if self.pool.cost is not None
                else self.pool.fidelity[remaining]
            ),
            target_fidelity=self.target,
            seed=self.config.seed,
        )
        return [int(i) for i in remaining[np.argsort(-scores, kind="stable")[:take]]]

    def _trace(self) -> pd.DataFrame:
        rows = np.array(self.evaluated, dtype=int)
        trace = pd.DataFrame(
            {"step": np.arange(len(rows)), "pool_index": rows, "value": self.pool.y[rows]}
        )
        if self.pool.fidelity is not None:
            trace["fidelity"] = self.pool.fidelity[rows]
        if self.pool.cost is not None:
            trace["cost"] = self.pool.cost[rows]
        return trace


# ------------------------------------------------------------------------------ acquisition


def _bo_choose(
    X: np.ndarray, y: np.ndarray, pool: np.ndarray, remaining: np.ndarray, take: int, *, seed: int
) -> list[int]:
    """Greedy batch of qLogNEI over the remaining rows (GP fitted to the negated objective)."""
    import torch
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.optim import optimize_acqf_discrete

    from mixopt.predictors.gp import fit_gp

    torch.manual_seed(seed)
    model = fit_gp(X, -y, seed=seed)  # BoTorch maximises
    choices = torch.as_tensor(pool[remaining], dtype=torch.float64)
    acquisition = qLogNoisyExpectedImprovement(
        model, X_baseline=torch.as_tensor(X, dtype=torch.float64), prune_baseline=True
    )
    chosen, _ = optimize_acqf_discrete(acquisition, q=take, choices=choices, unique=True)
    picked: list[int] = []
    for row in chosen.numpy():
        index = int(np.argmin(np.abs(pool[remaining] - row).sum(axis=1)))
        if int(remaining[index]) not in picked:
            picked.append(int(remaining[index]))
    return picked
