"""Replay a search on a pool of finished runs: the honest way to compare strategies offline.

A search may learn a pool row's target only by "evaluating" it (adding it to the trace), never
more than ``budget`` rows (and, with a cost column, never more than ``budget_cost``), and never a
row twice. Every strategy starts from ``initial`` random rows (at least the two a model needs),
then repeatedly proposes ``batch`` more with the *real* proposer a job runs (built through the
strategy registry), asked to choose among the rows not yet evaluated that the budget still
affords (``propose(n, candidates=...)``); the chosen rows are told back with their fidelity
level and cost. So a replayed ``bo`` is the job's ``bo`` (same GP, same qLogNEI, same seeding),
with a discrete optimiser over the pool's rows instead of SLSQP over the simplex.

Multi-fidelity pools (rows at several proxy sizes / token counts, each with a cost): strategies
that need fidelities (``mfbo``) see every row up to the target fidelity as (mixture, level) and
start from the cheapest fidelity; the others only evaluate target-fidelity rows. Strategies that
need constraints on per-target values (``pareto``) cannot replay a pool of one target. The
objective is minimised unless ``maximize``; the trace's ``value`` is always the raw target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixopt.errors import MixoptError
from mixopt.proposers.base import Candidates, Proposer
from mixopt.proposers.registry import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    get_strategy,
    make_proposer,
    strategy_names,
)
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace


def replay_strategies() -> list[str]:
    """Strategies a pool of one target can replay (not those that need constraints)."""
    return strategy_names(constraints=False)


@dataclass(frozen=True)
class ReplayConfig:
    budget: int
    initial: int
    batch: int
    seed: int = 0
    strategy: str = DEFAULT_STRATEGY
    maximize: bool = False
    predictor: str = "auto"  # for strategies that take the user's predictor (regmix)
    budget_cost: float | None = None
    target_fidelity: float | None = None

    def __post_init__(self) -> None:
        available = ", ".join(replay_strategies())
        if self.strategy not in STRATEGIES:
            raise MixoptError(f"unknown strategy {self.strategy!r}; available: {available}")
        if get_strategy(self.strategy).needs_constraints:
            raise MixoptError(
                f"strategy {self.strategy!r} needs constraints on per-target values, which a "
                f"replay pool (one target) lacks; available: {available}"
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
        self.strategy = get_strategy(config.strategy)
        self.multi_fidelity = self.strategy.needs_fidelities
        self.sign = -1.0 if config.maximize else 1.0
        self.order = np.random.default_rng(config.seed).permutation(pool.n)
        self.target = self._target_fidelity()
        self.fidelities, self.level = self._levels()
        self.eligible = self._eligible()
        self.proposer = self._build()
        self.evaluated: list[int] = []
        self.spent = 0.0

    def _target_fidelity(self) -> float | None:
        if self.pool.fidelity is None:
            if self.multi_fidelity:
                raise MixoptError(f"strategy {self.strategy.name} needs a fidelity column")
            return None
        target = self.config.target_fidelity
        if target is None:
            return float(self.pool.fidelity.max())
        if not np.any(np.isclose(self.pool.fidelity, target)):
            raise MixoptError(f"no pool row has the target fidelity {target}")
        return float(target)

    def _levels(self) -> tuple[np.ndarray, np.ndarray]:
        """The fidelities up to the target (the target last), and each row's level index
        (-1 above the target); one level when the strategy is single-fidelity."""
        if self.pool.fidelity is None or self.target is None or not self.multi_fidelity:
            return np.zeros(1), np.zeros(self.pool.n, dtype=int)
        fidelity = self.pool.fidelity
        values = np.unique(fidelity[(fidelity < self.target) & ~np.isclose(fidelity, self.target)])
        fidelities = np.append(values, self.target)
        if len(fidelities) < 2 or fidelities[0] <= 0:
            raise MixoptError(
                f"strategy {self.strategy.name} needs rows at two or more positive fidelities "
                f"up to the target ({self.target:g}); the pool has {sorted(set(fidelity))}"
            )
        level = np.full(self.pool.n, -1)
        for i, value in enumerate(fidelities):
            level[np.isclose(fidelity, value)] = i
        return fidelities, level

    def _eligible(self) -> np.ndarray:
        """Rows the strategy may pick: every level's for multi-fidelity strategies, else the
        target fidelity's."""
        if self.pool.fidelity is None or self.target is None:
            return np.ones(self.pool.n, dtype=bool)
        if self.multi_fidelity:
            return self.level >= 0
        return np.isclose(self.pool.fidelity, self.target)

    def _build(self) -> Proposer:
        """The strategy's proposer over the pool's columns (as domains of an open simplex)."""
        X = self.pool.X
        space = MixtureSpace.from_bounds([f"w{j}" for j in range(X.shape[1])])
        natural = np.clip(X.mean(axis=0), 0.0, None) if len(X) else np.ones(X.shape[1])
        sampler = DirichletSampler(space, natural if natural.sum() > 0 else np.ones(X.shape[1]))
        options: dict[str, object] = {"seed": self.config.seed}
        if self.strategy.takes_predictor:
            options["predictor"] = self.config.predictor
        if self.multi_fidelity:
            options["levels"] = tuple(self.fidelities.tolist())
        return make_proposer(self.strategy.name, sampler, options)

    # --------------------------------------------------------------------------------- loop

    def run(self) -> pd.DataFrame:
        self._tell(self._take(self._initial()))
        while self.proposer.n_observed >= self.proposer.min_observations:
            affordable = self._affordable()
            if affordable.size == 0:
                break
            take = min(self.config.batch, self.config.budget - len(self.evaluated))
            batch = self.proposer.propose(take, candidates=self._candidates(affordable))
            assert batch.index is not None
            taken = self._take(affordable[batch.index].tolist())
            if not taken:
                break
            self._tell(taken)
        return self._trace()

    def _candidates(self, rows: np.ndarray) -> Candidates:
        return Candidates(
            self.pool.X[rows],
            levels=self.level[rows] if self.multi_fidelity else None,
            costs=None if self.pool.cost is None else self.pool.cost[rows],
        )

    def _tell(self, rows: list[int]) -> None:
        if not rows:
            return
        index = np.array(rows)
        self.proposer.tell(
            self.pool.X[index],
            self.sign * self.pool.y[index],
            levels=self.level[index] if self.multi_fidelity else None,
            costs=None if self.pool.cost is None else self.pool.cost[index],
        )

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

    def _take(self, rows: list[int]) -> list[int]:
        """Evaluate ``rows`` in order while the budgets allow; the rows evaluated."""
        taken = []
        for i in rows:
            if len(self.evaluated) >= self.config.budget:
                break
            cost = self.pool.row_cost(i)
            if (
                self.config.budget_cost is not None
                and self.spent + cost > self.config.budget_cost + 1e-12
            ):
                continue
            self.evaluated.append(int(i))
            taken.append(int(i))
            self.spent += cost
        return taken

    def _initial(self) -> list[int]:
        """Random rows to start from (at least as many as the proposer needs); the cheapest
        fidelity's for multi-fidelity strategies."""
        k = min(self.config.budget, max(self.proposer.min_observations, self.config.initial))
        candidates = [int(i) for i in self.order if self.eligible[i]]
        if self.multi_fidelity:
            candidates = [i for i in candidates if self.level[i] == 0]
        return candidates[:k]

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


@dataclass(frozen=True)
class TargetRegret:
    """How far a trace's best row at the target fidelity is from the pool's best there."""

    fidelity: float
    best: float | None  # None: the trace evaluated no row at the target fidelity
    pool_best: float
    regret: float | None


def target_regret(pool: Pool, trace: pd.DataFrame, config: ReplayConfig) -> TargetRegret | None:
    """The regret at the target fidelity (the config's, or the pool's highest); None without a
    fidelity column. Regret is measured in the target's units, >= 0 in either direction."""
    if pool.fidelity is None:
        return None
    target = (
        float(pool.fidelity.max()) if config.target_fidelity is None else config.target_fidelity
    )
    at_target = np.isclose(pool.fidelity, target)
    pick = np.max if config.maximize else np.min
    pool_best = float(pick(pool.y[at_target]))
    rows = trace["pool_index"].to_numpy(dtype=int)
    told = pool.y[rows][at_target[rows]]
    if len(told) == 0:
        return TargetRegret(target, None, pool_best, None)
    best = float(pick(told))
    return TargetRegret(target, best, pool_best, abs(pool_best - best))
